"""Expectation over Transformation: the one place EOT is computed.

The EOT objective of a batch is the mean over `num_draws` independent defense
draws of the summed per-example loss, so its gradient is, per example, the
mean of the single-draw gradients (the paper's Eq. 2) and does not depend on
the batch size. Draws are a `jax.vmap` over keys; with ``chunk_size <
num_draws`` they run as a `lax.scan` over chunks, so memory is set by the
chunk, not by `num_draws`.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from stochjax import types


class DrawStats(NamedTuple):
  """Per-example statistics over the EOT draws of one evaluation."""

  loss: jax.Array  # (N,) mean loss over draws.
  goal_rate: jax.Array  # (N,) fraction of draws whose argmax meets the goal.


def draw_keys(keys: jax.Array, draws: jax.Array) -> jax.Array:
  """``(num_draws, N)`` keys: ``fold_in(keys[i], draws[j])``."""
  fold = jax.vmap(jax.random.fold_in, in_axes=(0, None))
  return jax.vmap(fold, in_axes=(None, 0))(keys, draws)


def make_value_and_grad(
  *,
  logits_fn: types.LogitsFn,
  defense: types.Defense,
  loss_fn: types.LossFn,
  targeted: bool,
  num_draws: int,
  chunk_size: int,
):
  """``f(x, keys, labels) -> ((objective, DrawStats), grad)``.

  Args:
    logits_fn: the model, ``(N, H, W, C) -> (N, K)``.
    defense: ``(key, image) -> image``.
    loss_fn: per-example loss to increase (untargeted) or decrease
      (targeted, `labels` are then the targets).
    targeted: whether the objective is ``-loss``.
    num_draws: m, the EOT sample count.
    chunk_size: draws evaluated at once; divides `num_draws`.

  Returns:
    A function of ``x (N, H, W, C)``, per-example ``keys (N,)`` and
    ``labels (N,)`` returning the EOT-mean objective (summed over examples),
    draw statistics and its gradient with respect to `x`.
  """
  sign = -1.0 if targeted else 1.0
  defend = jax.vmap(defense)

  def one_draw(x, keys, labels):
    logits = logits_fn(defend(keys, x))
    loss = loss_fn(logits, labels)
    met = jnp.argmax(logits, axis=-1) == labels
    if not targeted:
      met = ~met
    return sign * jnp.sum(loss), (loss, met.astype(jnp.float32))

  grad_one = jax.value_and_grad(one_draw, has_aux=True)

  def chunk(x, keys, labels, draws):
    (obj, (loss, met)), grad = jax.vmap(grad_one, in_axes=(None, 0, None))(
      x, draw_keys(keys, draws), labels
    )
    return jnp.sum(obj), jnp.sum(loss, 0), jnp.sum(met, 0), jnp.sum(grad, 0)

  def value_and_grad(x, keys, labels):
    draws = jnp.arange(num_draws, dtype=jnp.uint32)
    if chunk_size == num_draws:
      totals = chunk(x, keys, labels, draws)
    else:

      def body(acc, chunk_draws):
        out = chunk(x, keys, labels, chunk_draws)
        return jax.tree.map(jnp.add, acc, out), None

      zeros = (
        jnp.zeros(()),
        jnp.zeros(x.shape[:1]),
        jnp.zeros(x.shape[:1]),
        jnp.zeros_like(x),
      )
      totals, _ = jax.lax.scan(body, zeros, draws.reshape(-1, chunk_size))
    obj, loss, met, grad = (t / num_draws for t in totals)
    return (obj, DrawStats(loss, met)), grad

  return value_and_grad
