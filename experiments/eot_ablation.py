"""EOT vs more PGD steps at equal budget k x m, with majority-vote evaluation.

    python -m experiments.eot_ablation --config=configs/eot_ablation.py \
        --workdir=runs/eot_ablation

Writes config.json, metrics.jsonl, cells.json, results.json, table.md and one
heatmap_<defense>.png per defense into the workdir.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import app
from stochjax.paper import dry_run, section4

if __name__ == "__main__":
  app.run(dry_run.supporting(section4.run))
