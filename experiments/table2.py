"""Table 2: Guo et al.'s crop and Xie et al.'s resize-and-pad, EOT vs no EOT.

    python -m experiments.table2 --config=configs/table2.py \
        --workdir=runs/table2

Writes what `experiments.eot_ablation` writes.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import app
from stochjax.paper import section4

if __name__ == "__main__":
  app.run(section4.run)
