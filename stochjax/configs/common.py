"""Config blocks every experiment shares: run settings, model, training,
and the variant names (``:smoke``, ``:cpu`` = the default, ``:paper``)."""

import ml_collections

VARIANTS = ("smoke", "cpu", "paper")


def check_variant(arg: str | None) -> str:
  """The variant `arg` names ("cpu" for none).

  Raises:
    ValueError: an unknown variant.
  """
  if arg in (None, ""):
    return "cpu"
  if arg not in VARIANTS:
    raise ValueError(f"Unknown variant {arg!r}; valid: {', '.join(VARIANTS)}.")
  return arg


def run_settings(config: ml_collections.ConfigDict) -> None:
  """Seed, data and devices: the digits by default; 1 device, N devices,
  or 0 for all (of every host); `distributed` calls
  jax.distributed.initialize() first (multi-host); `dry_run`."""
  config.seed = 0
  config.dataset = "digits"
  config.data_dir = ""
  config.num_devices = 1
  config.distributed = False
  # The real run's code path at minimal size on synthetic data and random
  # weights (`stochjax.harness.dry_run`); its outputs are marked.
  config.dry_run = False
  # Test images that calibrate (the eps rule, step selection, the analysis
  # plan's screens: docs/analysis_plan.md); the rest evaluate. Drawn by
  # the seed (`stochjax.data.splits.calibration_split`).
  config.calibration_size = 120


def model(name: str = "ResNet8", *, weights: str | None = None):
  """The attacked (or fine-tuned) model: a CIFAR-stem ResNet trained here;
  with `weights` (a folder written by ``python -m stochjax.convert``), that
  model instead."""
  block = ml_collections.ConfigDict(dict(name=name, stem="cifar"))
  if weights is not None:
    block.weights = weights
  return block


def train(epochs: int = 10, batch_size: int = 64):
  """The paper's recipe: AdamW, lr 1e-3, weight decay 1e-2, cosine."""
  return ml_collections.ConfigDict(
    dict(
      epochs=epochs,
      batch_size=batch_size,
      learning_rate=1e-3,
      weight_decay=1e-2,
    )
  )


def smoke_model(config: ml_collections.ConfigDict) -> None:
  """CI: the tiny ResNet, one big batch per epoch, 3 calibration images."""
  config.calibration_size = 3
  config.model.name = "ResNetTiny"
  config.train.batch_size = 256


def imagenet_model(config: ml_collections.ConfigDict, name: str) -> None:
  """A torchvision-layout ResNet at 224 x 224."""
  config.model.name = name
  config.model.stem = "imagenet"


def eps_rule(variant: str) -> ml_collections.ConfigDict:
  """The working eps, by a rule fixed before the run
  (`stochjax.eps_rule`): the smallest candidate at which undefended PGD
  (num_steps steps of step_fraction x eps) succeeds on >= min_success of
  the correctly classified images among the first num_examples calibration
  images (one compiled sweep; never an evaluation image). Off for
  ``:paper`` (the paper's eps)."""
  rule = ml_collections.ConfigDict(
    dict(
      use=variant != "paper",
      candidates=tuple(v / 255 for v in (0.5, 1, 2, 4, 8, 16, 32)),
      num_steps=50,
      step_fraction=0.25,
      min_success=0.9,
      num_examples=120,
    )
  )
  if variant == "smoke":
    rule.candidates = (2 / 255, 8 / 255)
    rule.num_steps = 2
    rule.num_examples = 8
  return rule
