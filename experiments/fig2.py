"""Fig. 2: randomized smoothing (targeted), PGD-k x EOT-m heatmaps.

    python -m experiments.fig2 --config=configs/fig2.py \
        --workdir=runs/fig2

Writes what `experiments.eot_ablation` writes.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import app
from stochjax.paper import dry_run, section4

if __name__ == "__main__":
  app.run(dry_run.supporting(section4.run))
