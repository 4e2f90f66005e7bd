"""A classifier with randomness of its own (e.g. SAP), keyed per example.

A pre-processing defense draws from one key per example
(`stochjax.defenses.core.over_batch`); a model whose layers are random
must too, or EOT over its draws and the votes would not be the same vmap
over keys. `StochasticClassifier` is that model: called plainly it is the
network without its randomness (the undefended model, e.g. SAP's base
network); `draw(keys, images)` evaluates example i with ``keys[i]``
(passed to the network as ``activation_keys``)
(`stochjax.defenses.core.defended_logits` is where attacks and votes do).
It is a pytree (weights traced, modules static), so it passes through
`jax.jit` as a `stochjax.models.classifier` does.
"""

from typing import Any

import flax.linen as nn
import flax.struct
import jax

from stochjax import types
from stochjax.models import activations
from stochjax.models.classifier import classifier


@flax.struct.dataclass
class StochasticClassifier:
  """``__call__(images) -> logits`` without the randomness;
  ``draw(keys (N,), images (N, H, W, C)) -> (N, K)`` with it.

  Attributes:
    model: a module whose activation is stochastic (static).
    base: the same network without it (static; shares the variables).
    variables: the weights (pytree leaves).
  """

  model: nn.Module = flax.struct.field(pytree_node=False)
  base: nn.Module = flax.struct.field(pytree_node=False)
  variables: Any

  def __call__(self, images: types.Batch) -> types.Logits:
    return classifier(self.base, self.variables)(images)

  def draw(self, keys: jax.Array, images: types.Batch) -> types.Logits:
    """Example i's logits with its own draw (from ``keys[i]``) of the
    model's randomness; one batched forward pass."""
    return self.model.apply(
      self.variables, images, train=False, activation_keys=keys
    )


def stochastic_classifier(model: nn.Module, variables, *,
                          base_activation: str = "relu"):  # fmt: skip
  """`model` (a `stochjax.models.ResNet` with a stochastic activation, e.g.
  ``activation="sap(fraction=1.0)"``, or Random Self-Ensemble's noise
  layers, ``noise=(0.4, 0.1)``) as a `StochasticClassifier`; its base
  network uses `base_activation` and no noise.

  Raises:
    ValueError: the model draws no randomness (use
      `stochjax.models.classifier`).
  """
  if not draws_randomness(model):
    raise ValueError(
      f"activation {model.activation!r} is deterministic and the model has "
      "no noise layers: use stochjax.models.classifier for it."
    )
  base = model.clone(parent=None, activation=base_activation)
  if hasattr(base, "noise"):
    base = base.clone(noise=(0.0, 0.0))
  return StochasticClassifier(model, base, variables)


def draws_randomness(model: nn.Module) -> bool:
  """Whether `model` (a `stochjax.models.ResNet`) draws randomness of its
  own: a stochastic activation or noise layers. Other modules: False."""
  activation = getattr(model, "activation", None)
  stochastic = isinstance(activation, str) and activations.is_stochastic(
    activation
  )
  return stochastic or any(getattr(model, "noise", ()))


def is_stochastic(logits_fn) -> bool:
  """Whether `logits_fn` draws randomness of its own (has ``draw``)."""
  return isinstance(logits_fn, StochasticClassifier)
