"""Fig. 4: randomized smoothing, before and after fine-tuning on its noise.

    python -m experiments.fig4 --config=configs/fig4.py --workdir=runs/fig4

Writes config.json, metrics.jsonl, cells.json, results.json,
before_after.png and success_by_epoch.png.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import app
from stochjax.paper import dry_run, figs3_4

if __name__ == "__main__":
  app.run(dry_run.supporting(figs3_4.run))
