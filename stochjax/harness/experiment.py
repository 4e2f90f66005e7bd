"""What every experiment driver shares: keys from the seed, devices, and
models trained (resuming) with checkpoints in the run's workdir.

Every experiment derives its keys from ``config.seed`` here (`run_streams`),
reads its devices from ``config.num_devices`` (`mesh`), and trains its
models here (`trained_model`, `train_phase`): the paper's drivers
(`stochjax.paper`) and the audit (`stochjax.audit.run`) alike.
"""

import os
import re

import numpy as np

from stochjax import data as data_lib
from stochjax import defenses, models, prng, sharding, train
from stochjax.harness import workdir


def run_streams(config, names: tuple[str, ...]) -> tuple:
  """The run's named streams (`prng.streams`) of its root key
  ``prng.root(config.seed)``: its sub-runs (training, evaluation)."""
  return prng.streams(prng.root(config.seed), names)


def dataset(config, split: str, *, arrays: bool = False):
  """Split `split` of ``config.dataset``: for a resplittable dataset the
  partition ``config.seed`` draws (`stochjax.data.splits`), else the
  official one; `arrays` decodes it into memory."""
  seed = config.seed if data_lib.splits.resplittable(config.dataset) else None
  load = data_lib.load_arrays if arrays else data_lib.load
  return load(config.dataset, split, data_dir=config.data_dir, seed=seed)


def test_split(config, num: int) -> dict:
  """The run's calibration / evaluation split of its first `num` test
  images (``config.calibration_size`` calibrate, drawn by ``config.seed``):
  ``{"calibration", "evaluation"}`` index arrays, recorded in results."""
  calibration, evaluation = data_lib.splits.calibration_split(
    num, config.seed, config.calibration_size
  )
  return {"calibration": calibration, "evaluation": evaluation}


def split_record(split: dict) -> dict:
  """A split as results.json keeps it: the indices and their counts."""
  return {
    f"{part}_indices": np.asarray(index).tolist()
    for part, index in split.items()
  } | {f"num_{part}": len(index) for part, index in split.items()}


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
  """One `train.train` call with the config's recipe, keyed by its own
  stream ``prng.stream(key, name)`` (so two models of a run share no
  draws), checkpointing under ``checkpoints/<name>`` and logging each
  epoch's metrics with the fields `log` (default ``phase=<name>``); `kw`
  goes to `train.train`."""
  fields = {"phase": name} if log is None else log

  def on_epoch(epoch, metrics):
    work.log_metrics(**fields, epoch=epoch, **metrics)

  return train.train(
    key=prng.stream(key, name),
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
                  activation: str = "relu", *, noise=(0.0, 0.0),
                  adversarial=None):  # fmt: skip
  """Trains ``config.model`` (resuming) with `activation` (a
  `stochjax.models.activations` spec); returns ``(model, variables)``.

  `augment` is a defense spec applied to training images (randomized
  smoothing models are trained on their own noise, as Cohen et al.'s), or
  "" for clean training. `noise` is Random Self-Ensemble's
  ``(init_sigma, inner_sigma)`` (trained with its noise on);
  `adversarial` ``(name, attacks.Attack)``: Madry et al.'s adversarial
  training on that attack's points (`train.train`), `name` in the
  checkpoint's.
  """
  model = models.get_model(
    config.model.name,
    num_classes=train_set.num_classes,
    stem=config.model.stem,
    activation=activation,
    **({"noise": tuple(noise)} if any(noise) else {}),
  )
  name = file_safe(augment) or "clean"
  if activation != "relu":
    name += "_" + file_safe(activation)
  if any(noise):
    name += "_rse_" + "_".join(f"{s:g}" for s in noise)
  if adversarial is not None:
    name += "_" + file_safe(adversarial[0])
  variables = train_phase(
    config, work, key, model, train_set, name=name,
    log=dict(phase="train", model=name),
    defense=defenses.lookup(augment) if augment else None,
    epochs=config.train.epochs,
    adversarial=None if adversarial is None else adversarial[1],
  )  # fmt: skip
  return model, variables
