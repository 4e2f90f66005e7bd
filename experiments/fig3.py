"""Fig. 3: BaRT k = 1..6, before and after fine-tuning on the defense.

    python -m experiments.fig3 --config=configs/fig3.py --workdir=runs/fig3

Writes config.json, metrics.jsonl, cells.json, results.json,
before_after.png and success_by_epoch.png.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import app
from stochjax.paper import dry_run, figs3_4

if __name__ == "__main__":
  app.run(dry_run.supporting(figs3_4.run))
