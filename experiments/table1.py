"""Table 1: random rotation, PGD-k x EOT-m at equal budget k x m.

    python -m experiments.table1 --config=configs/table1.py \
        --workdir=runs/table1

Writes what `experiments.eot_ablation` writes, for rotation.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import app
from stochjax.paper import dry_run, section4

if __name__ == "__main__":
  app.run(dry_run.supporting(section4.run))
