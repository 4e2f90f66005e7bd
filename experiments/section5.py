"""Section 5: robust accuracy of the undefended, defended, trained-invariant
and voted classifiers, closed forms (Eqs. 4-8) beside a simulation.

    python -m experiments.section5 --config=configs/section5.py \
        --workdir=runs/section5

Writes config.json, cells.json, results.json, table.md and section5.png.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import app
from stochjax.paper import dry_run, section5

if __name__ == "__main__":
  app.run(dry_run.supporting(section5.run))
