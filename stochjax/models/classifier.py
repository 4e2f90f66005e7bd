"""The model boundary: a pure, jit-friendly ``logits_fn(images) -> logits``.

`classifier` returns a `jax.tree_util.Partial`: the variables are pytree
leaves and the apply function is static. Passing it to a jitted attack
therefore traces the weights as arguments (not baked-in constants), and a
second call with the same model, even with new weights, does not recompile.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax

from stochjax import types


def _apply(model: nn.Module, eval_kwargs, variables, images) -> types.Logits:
  return model.apply(variables, images, **dict(eval_kwargs))


def classifier(model: nn.Module | Callable, variables: Any) -> types.LogitsFn:
  """``logits_fn(images (N, H, W, C) in [0, 1]) -> (N, K)``, eval mode.

  Args:
    model: a Flax module whose ``__call__(x)`` returns logits and
      normalizes its input itself (as `stochjax.models.ResNet` does); it
      gets ``train=False`` only if its ``__call__`` takes `train` (and
      ``deterministic=True`` if it takes that). Or a plain
      ``apply_fn(variables, images) -> logits``.
    variables: its variables (``{"params": ..., "batch_stats": ...}``).

  Returns:
    A `jax.tree_util.Partial` (variables traced, the function static).

  Raises:
    ValueError: `model` is neither a Flax module nor callable.
  """
  if isinstance(model, nn.Module):
    return jax.tree_util.Partial(_apply_for(model), variables)
  if not callable(model):
    raise ValueError(
      f"model must be a Flax module or apply_fn(variables, x), got {model!r}."
    )
  return jax.tree_util.Partial(model, variables)


def _eval_kwargs(model: nn.Module) -> tuple[tuple[str, bool], ...]:
  """The evaluation-mode keyword arguments `model.__call__` accepts."""
  params = inspect.signature(type(model).__call__).parameters
  wanted = (("train", False), ("training", False), ("deterministic", True))
  return tuple((name, value) for name, value in wanted if name in params)


@functools.cache
def _apply_for(model: nn.Module):
  # One function object per (hashable) model, so equal models share compiles.
  return functools.partial(_apply, model, _eval_kwargs(model))
