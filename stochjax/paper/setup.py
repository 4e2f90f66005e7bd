"""What the paper experiments share: keys, data, meshes and trained models.

Every experiment derives its keys from ``config.seed`` here (`run_keys`),
reads its devices from ``config.num_devices`` (`mesh`), and trains or
restores its models here (`trained_model`, `starting_model`,
`train_phase`), so no driver imports another.
"""

import os
import re
from typing import Any, NamedTuple

import jax

from stochjax import (
  checkpoint,
  defenses,
  models,
  prng,
  sharding,
  train,
  workdir,
)
from stochjax import data as data_lib


def run_keys(config, num: int) -> tuple[jax.Array, ...]:
  """`num` independent keys from ``config.seed`` (the run's root key)."""
  return tuple(jax.random.split(prng.root(config.seed), num))


def mesh(config) -> sharding.Mesh | None:
  """The mesh ``config.num_devices`` asks for (1: none, one device; 0: all
  devices; N: the first N)."""
  num = config.get("num_devices", 1)
  if num == 1:
    return None
  return sharding.data_mesh(None if num == 0 else num)


def file_safe(name: str) -> str:
  """`name` (a defense spec, a panel) as a file-name fragment."""
  return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_")


def checkpoint_dir(work: workdir.Workdir, name: str) -> str:
  """Where training run `name` of an experiment keeps its checkpoints."""
  return os.path.join(work.path, "checkpoints", name)


def train_phase(config, work, key, model, train_set, *, name, log=None, **kw):
  """One `train.train` call with the config's recipe, checkpointing under
  ``checkpoints/<name>`` and logging each epoch's metrics with the fields
  `log` (default ``phase=<name>``); `kw` goes to `train.train`."""
  fields = {"phase": name} if log is None else log

  def on_epoch(epoch, metrics):
    work.log_metrics(**fields, epoch=epoch, **metrics)

  return train.train(
    key=key,
    model=model,
    train_set=train_set,
    batch_size=config.train.batch_size,
    mesh=mesh(config),
    learning_rate=config.train.learning_rate,
    weight_decay=config.train.weight_decay,
    checkpoint_dir=checkpoint_dir(work, name),
    on_epoch=on_epoch,
    **kw,
  )


def trained_model(config, work, key, train_set, augment: str,
                  activation: str = "relu"):  # fmt: skip
  """Trains ``config.model`` (resuming) with `activation` (a
  `stochjax.models.activations` spec); returns ``(model, variables)``.

  `augment` is a defense spec applied to training images (randomized
  smoothing models are trained on their own noise, as Cohen et al.'s), or
  "" for clean training.
  """
  model = models.get_model(
    config.model.name,
    num_classes=train_set.num_classes,
    stem=config.model.stem,
    activation=activation,
  )
  name = file_safe(augment) or "clean"
  if activation != "relu":
    name += "_" + file_safe(activation)
  variables = train_phase(
    config, work, key, model, train_set, name=name,
    log=dict(phase="train", model=name),
    defense=defenses.lookup(augment) if augment else None,
    epochs=config.train.epochs,
  )  # fmt: skip
  return model, variables


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
  variables = train_phase(
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
  pretrain_key, finetune_key, eval_key = run_keys(config, 3)
  train_set = data_lib.load(config.dataset, "train", data_dir=config.data_dir)
  test_set = data_lib.load_arrays(
    config.dataset, "test", data_dir=config.data_dir
  )
  eval_set = test_set.subset(slice(config.num_eval))
  model, start = starting_model(config, work, pretrain_key, train_set, eval_set)
  return FineTuning(
    finetune_key, eval_key, train_set, test_set, eval_set, model, start
  )


def fine_tune(config, work, run: FineTuning, *, name: str, defense, **kw):
  """Fine-tunes `run`'s starting model on `defense`'s augmentation for
  ``config.train.epochs`` (resuming); `kw` goes to `train.train`."""
  return train_phase(
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
