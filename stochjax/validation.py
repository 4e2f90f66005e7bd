"""Checks at the Python boundary: clear errors instead of silent wrong numbers.

These run on the host, once per call, before anything is jitted. Shape and
dtype checks also work inside a user's `jax.jit`, `vmap`, `lax.scan` or
`grad`; value checks (range, NaN, a model forward pass) run only outside
any trace, on concrete inputs: inside a trace even a closed-over NumPy
array becomes a traced value once JAX touches it, so nothing host-side
runs there.
"""

import math
from typing import Any

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np

_CHANNELS = (1, 3, 4)
# The trace state at import time: JAX's top level (no jit, vmap or grad).
_TOP_LEVEL = jax.extend.core.get_opaque_trace_state()


def in_trace() -> bool:
  """Whether the caller runs inside a JAX transformation (jit, vmap, scan,
  grad, ...)."""
  return jax.extend.core.get_opaque_trace_state() != _TOP_LEVEL


def is_concrete(x: Any) -> bool:
  """Whether `x`'s values can be read on the host now: not a tracer, and
  not inside a trace."""
  return not isinstance(x, jax.core.Tracer) and not in_trace()


@jax.jit
def _device_summary(x):
  return jnp.all(jnp.isfinite(x)), jnp.min(x), jnp.max(x)


def _summary(x) -> tuple[bool, float, float]:
  """(all finite, min, max) of `x` ((True, 0, 0) when empty); a JAX array is
  summarized on device (no copy of the batch; works for arrays sharded
  across hosts)."""
  if not x.size:
    return True, 0.0, 0.0
  if isinstance(x, jax.Array):
    finite, lo, hi = _device_summary(x)
    return bool(finite), float(lo), float(hi)
  values = np.asarray(x)
  finite = bool(np.all(np.isfinite(values)))
  return finite, float(values.min()), float(values.max())


def check_images(images: Any, *, batched: bool = True, name: str = "images"):
  """Checks float32 channels-last images with values in [0, 1].

  Args:
    images: ``(N, H, W, C)`` if `batched`, else ``(H, W, C)``.
    batched: whether a leading batch axis is expected.
    name: the argument name used in error messages.

  Raises:
    ValueError: wrong rank, channels-first layout, non-float32 dtype, NaN or
      infinite values, or values outside [0, 1].
  """
  rank = 4 if batched else 3
  layout = "(N, H, W, C)" if batched else "(H, W, C)"
  shape = getattr(images, "shape", None)
  if shape is None or len(shape) != rank:
    raise ValueError(
      f"{name} must have shape {layout} (channels-last); got shape {shape}."
    )
  if shape[-1] not in _CHANNELS and shape[-3] in _CHANNELS:
    raise ValueError(
      f"{name} of shape {tuple(shape)} look channels-first; stochjax expects "
      f"channels-last {layout}. Transpose with jnp.moveaxis(x, -3, -1)."
    )
  if images.dtype != np.float32:
    hint = " (divide uint8 images by 255)" if images.dtype == np.uint8 else ""
    raise ValueError(
      f"{name} must be float32 in [0, 1]; got dtype {images.dtype}{hint}."
    )
  if is_concrete(images):
    finite, lo, hi = _summary(images)
    if not finite:
      raise ValueError(f"{name} contain NaN or infinite values.")
    if lo < 0.0 or hi > 1.0:
      raise ValueError(
        f"{name} must lie in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]."
      )


def check_labels(labels: Any, num_examples: int, classes: int):
  """Checks integer labels ``(N,)`` with values in ``[0, classes)`` (a list
  or tuple is read as an array)."""
  if isinstance(labels, list | tuple):  # Of tracers inside a trace.
    labels = jnp.asarray(labels) if in_trace() else np.asarray(labels)
  shape = getattr(labels, "shape", None)
  if shape is None or tuple(shape) != (num_examples,):
    raise ValueError(f"labels must have shape ({num_examples},), got {shape}.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
  if is_concrete(labels) and num_examples:
    _, lo, hi = _summary(labels)
    if lo < 0 or hi >= classes:
      raise ValueError(
        f"labels must lie in [0, {classes}); got values in "
        f"[{int(lo)}, {int(hi)}]."
      )


_NUM_CLASSES: dict = {}


def num_classes(logits_fn, images) -> int:
  """K for ``logits_fn(images) -> (N, K)``, traced once per model and shape.

  Raises:
    ValueError: the output is not ``(N, K)`` floating point.
  """
  leaves, treedef = jax.tree.flatten(logits_fn)
  key = (
    treedef,
    tuple((np.shape(x), str(getattr(x, "dtype", type(x)))) for x in leaves),
    tuple(images.shape),
    images.dtype,
  )
  if key not in _NUM_CLASSES:
    if len(_NUM_CLASSES) > 256:
      _NUM_CLASSES.clear()
    _NUM_CLASSES[key] = _check_logits_fn(logits_fn, images)
  return _NUM_CLASSES[key]


def _check_logits_fn(logits_fn, images) -> int:
  images = jax.ShapeDtypeStruct(images.shape, images.dtype)
  out = jax.eval_shape(logits_fn, images)
  n = images.shape[0]
  if (
    not hasattr(out, "shape")
    or len(out.shape) != 2
    or out.shape[0] != n
    or not np.issubdtype(out.dtype, np.floating)
  ):
    raise ValueError(
      f"logits_fn must map ({n}, H, W, C) images to ({n}, K) float logits; "
      f"got {getattr(out, 'shape', out)} {getattr(out, 'dtype', '')}."
    )
  return out.shape[1]


def positive(name: str, value: Any, *, integer: bool = False) -> None:
  """Raises ValueError unless `value` is a finite number > 0 (an int if asked)."""
  kind = "integer" if integer else "number"
  ok = isinstance(value, int | float) and not isinstance(value, bool)
  if integer:
    ok = isinstance(value, int) and not isinstance(value, bool)
  if not ok or not math.isfinite(value) or value <= 0:
    raise ValueError(f"{name} must be a positive {kind}, got {value!r}.")


def int_range(name: str, low: Any, high: Any, minimum: int) -> None:
  """Raises ValueError unless ``minimum <= low <= high`` are integers."""
  ints = all(
    isinstance(v, int) and not isinstance(v, bool) for v in (low, high)
  )
  if not (ints and minimum <= low <= high):
    raise ValueError(
      f"{name} needs integers {minimum} <= low <= high, got {low}, {high}."
    )


def one_of(name: str, value: Any, choices) -> None:
  if value not in choices:
    raise ValueError(
      f"Unknown {name} {value!r}; valid: {', '.join(map(str, choices))}."
    )
