"""Saving and loading a model with its weights: ``OUT_DIR/model.json`` (the
architecture) plus ``OUT_DIR/variables`` (params and batch_stats, written
by `stochjax.checkpoint.save_tree`).
"""

import json
import os
from typing import Any

import jax

from stochjax import checkpoint
from stochjax.models import activations, resnet

_FIELDS = ("num_classes", "num_filters", "stem", "mean", "std", "activation")


def save(directory: str, name: str, model: resnet.ResNet, variables) -> None:
  """Writes `model` (an `ARCHITECTURES[name]` instance) and `variables`."""
  directory = os.path.abspath(directory)
  os.makedirs(directory, exist_ok=True)
  spec = {"architecture": name} | {
    f: list(v) if isinstance(v := getattr(model, f), tuple) else v
    for f in _FIELDS
  }
  path = os.path.join(directory, "variables")
  checkpoint.save_tree(path, variables)
  tmp = os.path.join(directory, "model.json.tmp")
  with open(tmp, "w") as f:
    json.dump(spec, f, indent=2)
  os.replace(tmp, os.path.join(directory, "model.json"))


def load(directory: str) -> tuple[resnet.ResNet, Any]:
  """``(model, variables)`` saved by `save` (e.g. ``stochjax.convert``).

  Raises:
    ValueError: no model.json / variables there, or they do not match.
  """
  directory = os.path.abspath(directory)
  spec_path = os.path.join(directory, "model.json")
  if not os.path.exists(spec_path):
    raise ValueError(
      f"No model.json in {directory}: expected a folder written by "
      "`python -m stochjax.convert` or stochjax.models.save."
    )
  with open(spec_path) as f:
    spec = json.load(f)
  model = resnet.get_model(
    spec.pop("architecture"),
    **{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()},
  )
  key = jax.random.key(0)
  like = jax.eval_shape(
    model.init,
    {"params": key, activations.RNG_STREAM: key},
    jax.ShapeDtypeStruct((1, 32, 32, 3), "float32"),
  )
  variables = checkpoint.restore_tree(
    os.path.join(directory, "variables"), like
  )
  return model, variables
