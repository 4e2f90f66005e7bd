"""Fine-tuning on a defense's augmentation (the paper's Section 5 / Figs. 3-4).

`run` starts from pre-trained weights (converted with ``stochjax.convert``)
or, without them, from a clean model it trains first (the paper fine-tunes
from its clean model), then fine-tunes on images passed through the defense
(a fresh draw per example per step), checkpointing every epoch. Each epoch
records the clean and the defended accuracy on a held-out subset, so the
result shows what augmentation buys. An interrupted run resumes from its
last checkpoint.
"""

import os
from typing import Any, NamedTuple

import jax
import matplotlib.pyplot as plt
import ml_collections

from stochjax import app, defenses, models, sharding, train
from stochjax import data as data_lib


def _model(config, num_classes: int):
  return models.get_model(
    config.model.name, num_classes=num_classes, stem=config.model.stem
  )


def train_phase(
  config, workdir, key, model, train_set, eval_set, *, name, **kw
):
  """One `train.train` call checkpointing under ``checkpoints/<name>`` and
  logging each epoch's metrics with ``phase=<name>``."""

  def on_epoch(epoch, metrics):
    workdir.log_metrics(phase=name, epoch=epoch, **metrics)

  return train.train(
    key=key,
    model=model,
    train_set=train_set,
    batch_size=config.train.batch_size,
    mesh=sharding.from_config(config),
    learning_rate=config.train.learning_rate,
    weight_decay=config.train.weight_decay,
    checkpoint_dir=os.path.join(train.checkpoint_path(workdir.path), name),
    eval_set=eval_set,
    on_epoch=on_epoch,
    **kw,
  )


def start_variables(config, workdir, key, train_set, eval_set):
  """``(model, variables)``: converted weights if configured (their folder
  names the architecture and normalization), else a clean
  ``config.model`` trained here first."""
  if config.model.weights:
    model, variables = models.load(config.model.weights)
    if model.num_classes != eval_set.num_classes:
      raise ValueError(
        f"{config.model.weights} has {model.num_classes} classes; "
        f"{config.dataset} has {eval_set.num_classes}."
      )
    return model, variables
  model = _model(config, eval_set.num_classes)
  variables = train_phase(
    config,
    workdir,
    key,
    model,
    train_set,
    eval_set,
    name="pretrain",
    defense_spec=None,
    epochs=config.pretrain_epochs,
  )
  return model, variables


class Setup(NamedTuple):
  finetune_key: Any
  eval_key: Any
  train_set: Any
  test_set: Any
  eval_set: Any
  model: Any
  start: dict


def prepare(config, workdir) -> Setup:
  """Keys, data (the held-out `num_eval` test images) and the starting
  model of a fine-tuning experiment (`run` and `stochjax.invariance`)."""
  key = jax.random.key(config.seed)
  pretrain_key, finetune_key, eval_key = jax.random.split(key, 3)
  train_set = data_lib.load(config.dataset, "train", data_dir=config.data_dir)
  test_set = data_lib.load_arrays(
    config.dataset, "test", data_dir=config.data_dir
  )
  eval_set = test_set.subset(slice(config.num_eval))
  model, start = start_variables(
    config, workdir, pretrain_key, train_set, eval_set
  )
  return Setup(finetune_key, eval_key, train_set, test_set, eval_set, model,
               start)  # fmt: skip


def plot(records: list[dict], defense: str, path: str) -> None:
  """Clean and defended held-out accuracy by fine-tuning epoch (0 = the
  starting model)."""
  epochs = [r["epoch"] for r in records]
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for field, label in (
    ("eval_accuracy", "clean"),
    ("eval_defended_accuracy", "defended (one draw)"),
  ):
    ax.plot(epochs, [100 * r[field] for r in records], "o-", label=label)
  ax.set_xlabel("fine-tuning epoch")
  ax.set_ylabel("held-out accuracy (%)")
  ax.set_title(defense, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def run(config: ml_collections.ConfigDict, workdir: app.Workdir) -> dict:
  """Fine-tunes; returns before/after accuracies and the per-epoch curve."""
  defense = defenses.lookup(config.defense)  # A bad spec fails here.
  setup = prepare(config, workdir)
  finetune_key, eval_key = setup.finetune_key, setup.eval_key
  train_set, eval_set = setup.train_set, setup.eval_set
  model, start = setup.model, setup.start

  mesh = sharding.from_config(config)

  def accuracies(variables):
    logits_fn = models.classifier(model, variables)
    return {
      "clean": train.accuracy(logits_fn, eval_set, mesh=mesh),
      "defended": train.accuracy(
        logits_fn, eval_set, defense=defense, key=eval_key, mesh=mesh
      ),
    }

  before = accuracies(start)
  final = train_phase(
    config,
    workdir,
    finetune_key,
    model,
    train_set,
    eval_set,
    name="finetune",
    defense_spec=config.defense,
    epochs=config.train.epochs,
    initial_variables=start,
    eval_key=eval_key,
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
  plot(
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
    "checkpoints": os.path.relpath(
      train.checkpoint_path(workdir.path), workdir.path
    ),
    "train_examples_seen": int(
      config.train.epochs
      * (len(train_set.labels) // config.train.batch_size)
      * config.train.batch_size
    ),
  }
