"""Fig. 1: BaRT noise injection, PGD-k x EOT-m heatmaps.

    python -m experiments.fig1 --config=configs/fig1.py \
        --workdir=runs/fig1

Writes what `experiments.eot_ablation` writes.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import app
from stochjax.paper import dry_run, section4

if __name__ == "__main__":
  app.run(dry_run.supporting(section4.run))
