"""Per-example losses ``(logits (N, K), labels (N,)) -> (N,)``.

Each loss is one the attacker *increases* to move away from `labels`; a
targeted attack decreases the same loss with `labels` set to the targets.
"""

import jax
import jax.numpy as jnp

from stochjax import types


def cross_entropy(logits: types.Logits, labels: types.Labels) -> jax.Array:
  """Softmax cross-entropy of the label class, ``(N,)``."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]


def margin(logits: types.Logits, labels: types.Labels) -> jax.Array:
  """Carlini-Wagner margin ``max_{j != y} z_j - z_y``, ``(N,)``.

  Positive once the example is misclassified. This is the paper code's
  ``LinearLoss`` per example (no clamp, no kappa).

  References:
    Carlini, Wagner. Towards Evaluating the Robustness of Neural Networks.
    IEEE S&P 2017. https://arxiv.org/abs/1608.04644
  """
  logits = logits.astype(jnp.float32)
  label_logit = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
  is_label = jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
  other = jnp.max(jnp.where(is_label, -jnp.inf, logits), axis=-1)
  return other - label_logit


LOSSES = {"ce": cross_entropy, "margin": margin}


def get_loss(name: str) -> types.LossFn:
  if name not in LOSSES:
    raise ValueError(
      f"Unknown loss {name!r}; valid: {', '.join(sorted(LOSSES))}."
    )
  return LOSSES[name]
