"""The model boundary: a pure, jit-friendly ``logits_fn(images) -> logits``.

`classifier` returns a `jax.tree_util.Partial`: the variables are pytree
leaves and the apply function is static. Passing it to a jitted attack
therefore traces the weights as arguments (not baked-in constants), and a
second call with the same model, even with new weights, does not recompile.
"""

import functools

import flax.linen as nn
import jax

from stochjax import types


def _apply(model: nn.Module, variables, images: types.Batch) -> types.Logits:
  return model.apply(variables, images, train=False)


def classifier(model: nn.Module, variables) -> types.LogitsFn:
  """``logits_fn(images (N, H, W, C) in [0, 1]) -> (N, K)``, eval mode.

  Args:
    model: a Flax module whose ``__call__(x, train=False)`` returns logits and
      normalizes its input itself (as `stochjax.models.ResNet` does).
    variables: its variables (``{"params": ..., "batch_stats": ...}``).
  """
  return jax.tree_util.Partial(_apply_for(model), variables)


@functools.cache
def _apply_for(model: nn.Module):
  # One function object per (hashable) model, so equal models share compiles.
  return functools.partial(_apply, model)
