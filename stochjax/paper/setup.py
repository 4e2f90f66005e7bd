"""What the fine-tuning experiments (`finetune`, `figs3_4`) share beyond
`stochjax.harness.experiment`: the starting model and its epochs, so no
driver imports another.
"""

from typing import Any, NamedTuple

from stochjax import checkpoint, models
from stochjax.harness import experiment


def starting_model(config, work, key, train_set, eval_set):
  """``(model, variables)``: converted weights if configured (their folder
  names the architecture and normalization), else a clean
  ``config.model`` trained here first (the paper fine-tunes from its clean
  model)."""
  if config.model.weights:
    model, variables = models.load(config.model.weights)
    if model.num_classes != eval_set.num_classes:
      raise ValueError(
        f"{config.model.weights} has {model.num_classes} classes; "
        f"{config.dataset} has {eval_set.num_classes}."
      )
    return model, variables
  model = models.get_model(
    config.model.name, num_classes=eval_set.num_classes, stem=config.model.stem
  )
  variables = experiment.train_phase(
    config, work, key, model, train_set, name="pretrain", eval_set=eval_set,
    defense=None, epochs=config.pretrain_epochs,
  )  # fmt: skip
  return model, variables


class FineTuning(NamedTuple):
  """Keys, data and the starting model of a fine-tuning experiment."""

  finetune_key: Any
  eval_key: Any
  train_set: Any
  test_set: Any
  eval_set: Any
  model: Any
  start: dict


def fine_tuning(config, work) -> FineTuning:
  """Keys, data (the held-out ``config.num_eval`` test images) and the
  starting model of a fine-tuning experiment."""
  pretrain_key, finetune_key, eval_key = experiment.run_streams(
    config, ("pretrain", "finetune", "evaluation")
  )
  train_set = experiment.dataset(config, "train")
  test_set = experiment.dataset(config, "test", arrays=True)
  eval_set = test_set.subset(slice(config.num_eval))
  model, start = starting_model(config, work, pretrain_key, train_set, eval_set)
  return FineTuning(
    finetune_key, eval_key, train_set, test_set, eval_set, model, start
  )


def fine_tune(config, work, run: FineTuning, *, name: str, defense, **kw):
  """Fine-tunes `run`'s starting model on `defense`'s augmentation for
  ``config.train.epochs`` (resuming); `kw` goes to `train.train`."""
  return experiment.train_phase(
    config, work, run.finetune_key, run.model, run.train_set, name=name,
    eval_set=run.eval_set, defense=defense, epochs=config.train.epochs,
    initial_variables=run.start, **kw,
  )  # fmt: skip


def epoch_variables(directory: str, epoch: int) -> dict:
  """``{"params", "batch_stats"}`` of a training run's epoch checkpoint."""
  mngr = checkpoint.manager(directory)
  try:
    state = checkpoint.restore(mngr, epoch, None)
  finally:
    mngr.close()
  return {"params": state["params"], "batch_stats": state["batch_stats"]}
