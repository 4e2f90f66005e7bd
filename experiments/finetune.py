"""Fine-tune a classifier on a defense's augmentation, checkpointing per epoch.

    python -m experiments.finetune --config=configs/finetune.py \
        --workdir=runs/finetune [--config.defense="gaussian_noise(sigma=0.5)"]

Writes config.json, metrics.jsonl (per-epoch loss and held-out clean and
defended accuracy), checkpoints/ (one per epoch; a re-run resumes),
results.json and accuracy_by_epoch.png into the workdir.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import app
from stochjax.paper import dry_run, finetune

if __name__ == "__main__":
  app.run(dry_run.supporting(finetune.run))
