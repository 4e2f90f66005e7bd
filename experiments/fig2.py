"""Fig. 2: randomized smoothing (targeted), PGD-k x EOT-m heatmaps.

    python -m experiments.fig2 --config=configs/fig2.py \
        --workdir=runs/fig2

Writes what `experiments.eot_ablation` writes.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from experiments.eot_ablation import main
from stochjax import app

if __name__ == "__main__":
  app.run(main)
