"""The audit from a config: ``stochjax audit --config=audit --workdir=W``
(or ``stochjax-audit``; see `stochjax/configs/audit.py`).

The model is a converted folder (``model.weights``), a ``module:function``
returning a logits_fn or ``(apply_fn, params)`` (``model.factory``), or a
ResNet trained here (``model.train_on``: "" clean, or a defense spec to
train on); the defense is a spec string or a ``module:function``. Writes
``W/audit.json`` (atomically), ``W/audit.md`` and the figures; every
finished evaluation is a cell of the workdir, so a cut-off audit resumes.
"""

import importlib

import ml_collections
import numpy as np

from stochjax import audit, models
from stochjax.audit import report
from stochjax.harness import experiment
from stochjax.harness import workdir as workdir_lib


def load_object(path: str):
  """The object ``module:function`` names (called if callable with no
  arguments is what the caller wants; this returns it as is).

  Raises:
    ValueError: not of the form ``module:name``, or nothing there.
  """
  module, _, name = path.partition(":")
  if not module or not name:
    raise ValueError(f"Expected 'module:function', got {path!r}.")
  try:
    return getattr(importlib.import_module(module), name)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"Cannot load {path!r}: {e}") from e


def defense_of(spec: str):
  """A spec string, or the defense a ``module:function`` names."""
  if ":" in spec and "(" not in spec:
    return load_object(spec)
  return spec


def model_of(config, work, key, num_classes: int):
  """The audited model's logits_fn (see the module docstring)."""
  block = config.model
  if block.factory:
    return load_object(block.factory)()
  if block.weights:
    return models.classifier(*models.load(block.weights))
  train_set = experiment.dataset(config, "train")
  module, variables = experiment.trained_model(
    config, work, key, train_set, block.train_on
  )
  return models.classifier(module, variables)


def run(config: ml_collections.ConfigDict, work: workdir_lib.Workdir) -> dict:
  """Audits the configured model and defense; returns the report."""
  train_key, eval_key = experiment.run_streams(config, ("train", "audit"))
  test = experiment.dataset(config, "test", arrays=True)
  images = test.images[: config.num_examples]
  labels = np.asarray(test.labels[: config.num_examples])
  logits_fn = model_of(config, work, train_key, test.num_classes)
  eps = [float(e) for e in config.threat.eps]
  setting = audit.Setting(
    eval_key, logits_fn, images, labels, defense_of(config.defense),
    eps=eps[0], norm=config.threat.norm, num_votes=config.num_votes,
    batch_size=config.batch_size, mesh=experiment.mesh(config),
    cell=work.cell,
    calibration=experiment.test_split(config, len(labels))["calibration"],
  )  # fmt: skip
  budget = config.budget
  scales = sorted({e / eps[0] for e in eps} | set(budget.eps_scales))
  result = audit.audit(
    setting, steps=budget.steps, eot_samples=budget.eot_samples,
    budgets=tuple(budget.budgets),
    small_fraction=budget.small_fraction,
    step_fractions=tuple(budget.step_fractions), num_draws=config.num_draws,
    eps_scales=tuple(scales),
    blackbox_queries=budget.get("blackbox_queries", 0),
  )  # fmt: skip
  block = config.model
  model = block.weights or block.factory or f"{block.name} trained here"
  title = f"{config.defense} on {model} ({config.dataset})"
  workdir_lib.write_json_atomic(work.file("audit.json"), result)
  report.figures(result, work.path)
  workdir_lib.write_text_atomic(
    work.file("audit.md"), report.markdown(result, title)
  )
  for name, verdict in audit.verdicts(result).items():
    print(f"{report.TITLES[name]}: {verdict}")
  return result
