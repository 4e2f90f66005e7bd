"""Fine-tuning on a defense's augmentation (the paper's Section 5 / Figs. 3-4).

`run` starts from pre-trained weights (converted with ``stochjax.convert``)
or, without them, from a clean model it trains first (the paper fine-tunes
from its clean model), then fine-tunes on images passed through the defense
(a fresh draw per example per step), checkpointing every epoch. Each epoch
records the clean and the defended accuracy on a held-out subset, so the
result shows what augmentation buys. An interrupted run resumes from its
last checkpoint.
"""

import ml_collections

from stochjax import defenses, models, voting
from stochjax.harness import experiment
from stochjax.harness import workdir as workdir_lib
from stochjax.paper import plots, setup


def run(
  config: ml_collections.ConfigDict, workdir: workdir_lib.Workdir
) -> dict:
  """Fine-tunes; returns before/after accuracies and the per-epoch curve."""
  defense = defenses.lookup(config.defense)  # A bad spec fails here.
  run = setup.fine_tuning(config, workdir)
  eval_key = run.eval_key
  train_set, eval_set = run.train_set, run.eval_set
  model, start = run.model, run.start
  mesh = experiment.mesh(config)

  def accuracies(variables):
    logits_fn = models.classifier(model, variables)
    return {
      "clean": voting.accuracy(logits_fn, eval_set, mesh=mesh),
      "defended": voting.accuracy(
        logits_fn, eval_set, defense=defense, key=eval_key, mesh=mesh
      ),
    }

  before = accuracies(start)
  final = setup.fine_tune(
    config, workdir, run, name="finetune", defense=defense, eval_key=eval_key
  )
  after = accuracies(final)
  records = workdir.metrics(phase="finetune")
  by_epoch = {r["epoch"]: r for r in records}  # The last record per epoch.
  curve = [by_epoch[e] for e in sorted(by_epoch)]
  start_point = {
    "epoch": 0,
    "eval_accuracy": before["clean"],
    "eval_defended_accuracy": before["defended"],
  }
  plots.accuracy_by_epoch(
    [start_point, *curve], config.defense, workdir.file("accuracy_by_epoch.png")
  )
  print(
    f"{config.defense}: clean {100 * before['clean']:.1f}% -> "
    f"{100 * after['clean']:.1f}%, defended {100 * before['defended']:.1f}% "
    f"-> {100 * after['defended']:.1f}% ({len(eval_set.labels)} held-out)"
  )
  return {
    "defense": config.defense,
    "num_eval": len(eval_set.labels),
    "before": before,
    "after": after,
    "by_epoch": {
      "epoch": [r["epoch"] for r in curve],
      "clean": [r["eval_accuracy"] for r in curve],
      "defended": [r["eval_defended_accuracy"] for r in curve],
      "train_loss": [r["loss"] for r in curve],
    },
    "checkpoints": "checkpoints",
    "train_examples_seen": int(
      config.train.epochs
      * (len(train_set.labels) // config.train.batch_size)
      * config.train.batch_size
    ),
  }
