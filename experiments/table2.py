"""Table 2: EOT vs no EOT on Guo, Xie, SAP, k-WTA and the odds detector.

    python -m experiments.table2 --config=configs/table2.py \
        --workdir=runs/table2

Writes what `experiments.eot_ablation` writes.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import app
from stochjax.paper import dry_run, section4

if __name__ == "__main__":
  app.run(dry_run.supporting(section4.run))
