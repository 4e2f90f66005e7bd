"""PyTorch ResNet state_dicts -> stochjax Flax ResNet variables.

Sources (what the checkpoint file holds):

* ``torchvision``: a plain ResNet-18/34/50 state_dict (``conv1.weight``, …).
* ``cohen``: Cohen et al.'s ``{"state_dict": ...}``; ImageNet keys start with
  ``1.module.`` (``Sequential(NormalizeLayer, DataParallel(resnet50))``),
  CIFAR ResNet-110 keys with ``1.``. Their normalization is not stored: the
  model normalizes inside with the dataset's mean/std, after the noise.
* ``imagenette``: the paper's Lightning checkpoint: ``model.0.{mean,std}``
  buffers and a ``model.1.`` ResNet-34 with a 10-class head.

Layouts: a conv weight ``(O, I, kh, kw)`` becomes a kernel ``(kh, kw, I, O)``;
linear weights transpose; BatchNorm weight/bias/running stats become
scale/bias/mean/var; ``num_batches_tracked`` is dropped.
"""

import re
from typing import Any

import numpy as np

from stochjax.models import resnet

SOURCES = ("torchvision", "cohen", "imagenette")
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
_PREFIXES = {
  "torchvision": ("",),
  "cohen": ("1.module.", "1."),
  "imagenette": ("model.1.",),
}


def state_dict_of(checkpoint: Any, source: str) -> dict[str, np.ndarray]:
  """The (prefix-stripped) state_dict of a checkpoint read from `source`."""
  if source not in SOURCES:
    raise ValueError(f"Unknown source {source!r}; valid: {', '.join(SOURCES)}.")
  state = checkpoint
  if isinstance(state, dict) and "state_dict" in state:
    state = state["state_dict"]
  if not isinstance(state, dict) or not state:
    raise ValueError(f"No state_dict found in the {source} checkpoint.")
  for prefix in _PREFIXES[source]:
    if prefix and all(k.startswith(prefix) for k in _weights(state)):
      return {
        k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)
      }
  if source == "torchvision":
    return dict(state)
  raise ValueError(
    f"{source} checkpoint keys should start with "
    f"{' or '.join(_PREFIXES[source])}; found e.g. {sorted(state)[:3]}."
  )


def _weights(state):
  # Lightning keeps the normalization buffers beside the ResNet.
  return [k for k in state if not k.startswith("model.0.")]


def normalization(checkpoint: Any, source: str, stem: str):
  """(mean, std) the model applies inside: stored (ImageNette), else the
  dataset's (CIFAR-10 for a CIFAR-stem Cohen net, ImageNet otherwise)."""
  if source == "imagenette":
    state = checkpoint.get("state_dict", checkpoint)
    mean, std = state.get("model.0.mean"), state.get("model.0.std")
    if mean is None or std is None:
      raise ValueError("imagenette checkpoint lacks model.0.mean/model.0.std.")
    return tuple(np.ravel(mean).tolist()), tuple(np.ravel(std).tolist())
  if source == "cohen" and stem == "cifar":
    return CIFAR_MEAN, CIFAR_STD
  return resnet.IMAGENET_MEAN, resnet.IMAGENET_STD


def _torch_name(flax_path: tuple[str, ...], block_convs: int, blocks) -> str:
  """The torch key of a Flax parameter path (without the leaf)."""
  top = flax_path[0]
  if top == "Conv_0":
    return "conv1"
  if top == "BatchNorm_0":
    return "bn1"
  if top == "Dense_0":
    return "fc"
  match = re.fullmatch(r"(?:BasicBlock|BottleneckBlock)_(\d+)", top)
  if not match:
    raise ValueError(f"Unexpected module {top}.")
  stage, index = blocks[int(match.group(1))]
  prefix = f"layer{stage + 1}.{index}"
  kind, number = flax_path[1].split("_")
  number = int(number)
  if number == block_convs:  # The projection shortcut.
    return f"{prefix}.downsample.{0 if kind == 'Conv' else 1}"
  return f"{prefix}.{'conv' if kind == 'Conv' else 'bn'}{number + 1}"


_LEAVES = {
  ("params", "kernel"): "weight",
  ("params", "scale"): "weight",
  ("params", "bias"): "bias",
  ("batch_stats", "mean"): "running_mean",
  ("batch_stats", "var"): "running_var",
}


def to_flax(
  state: dict[str, np.ndarray], model: resnet.ResNet, like: Any
) -> dict[str, Any]:
  """Fills `like` (``model.init`` variables or their shapes) from `state`.

  Raises:
    ValueError: missing or unexpected keys, or a shape that does not match
      the architecture (the keys are named).
  """
  block_convs = 2 if model.block_cls is resnet.BasicBlock else 3
  blocks = [
    (stage, index)
    for stage, n in enumerate(model.stage_sizes)
    for index in range(n)
  ]
  used, missing, shapes = set(), [], []

  def fill(collection, path, leaf, template):
    key = (
      f"{_torch_name(path, block_convs, blocks)}.{_LEAVES[(collection, leaf)]}"
    )
    if key not in state:
      missing.append(key)
      return np.zeros(template.shape, np.float32)
    used.add(key)
    value = np.asarray(state[key], np.float32)
    if value.ndim == 4:
      value = value.transpose(2, 3, 1, 0)
    elif value.ndim == 2:
      value = value.T
    if value.shape != tuple(template.shape):
      shapes.append(f"{key}: shape {value.shape} != {tuple(template.shape)}")
    return value

  out = {}
  for collection in ("params", "batch_stats"):
    flat = _flatten(like[collection])
    out[collection] = _unflatten(
      {
        path: fill(collection, path[:-1], path[-1], template)
        for path, template in flat.items()
      }
    )
  extra = sorted(
    k for k in state if k not in used and not k.endswith("num_batches_tracked")
  )
  problems = [
    f"{len(found)} {what}: {', '.join(found[:6])}"
    + (f", ... ({len(found) - 6} more)" if len(found) > 6 else "")
    for what, found in (
      ("missing", missing),
      ("unexpected", extra),
      ("with the wrong shape", shapes),
    )
    if found
  ]
  if problems:
    raise ValueError(
      f"The state_dict does not match {_describe(model)}: "
      + "; ".join(problems)
    )
  return out


def _describe(model) -> str:
  return (
    f"ResNet(stages={tuple(model.stage_sizes)}, {model.block_cls.__name__}, "
    f"width {model.num_filters}, {model.num_classes} classes)"
  )


def _flatten(tree, prefix=()):
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict) or hasattr(value, "items"):
      flat.update(_flatten(value, (*prefix, key)))
    else:
      flat[(*prefix, key)] = value
  return flat


def _unflatten(flat):
  tree = {}
  for path, value in flat.items():
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return tree
