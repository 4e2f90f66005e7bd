"""Fig. 1: BaRT noise injection, PGD-k x EOT-m heatmaps.

    python -m experiments.fig1 --config=configs/fig1.py \
        --workdir=runs/fig1

Writes what `experiments.eot_ablation` writes.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from experiments.eot_ablation import main
from stochjax import app

if __name__ == "__main__":
  app.run(main)
