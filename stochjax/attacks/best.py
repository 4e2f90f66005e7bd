"""Per-example best points.

Best points are ranked per example first by the fraction of EOT draws that
meet the goal (a cheap estimate of the vote), then by the attack objective
(the loss, negated for targeted attacks): on a deterministic model this keeps
any successful point over any unsuccessful one.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from stochjax.attacks import eot as eot_lib


class Best(NamedTuple):
  """Per-example best point so far."""

  x: jax.Array  # (N, H, W, C)
  goal_rate: jax.Array  # (N,)
  objective: jax.Array  # (N,) loss, negated when targeted.


def objective(stats: eot_lib.DrawStats, targeted: bool) -> jax.Array:
  return -stats.loss if targeted else stats.loss


def best_of(x: jax.Array, stats: eot_lib.DrawStats, targeted: bool) -> Best:
  return Best(x, stats.goal_rate, objective(stats, targeted))


def better(a: Best, b: Best) -> jax.Array:
  """``(N,)`` whether `a` strictly beats `b`: goal rate first, then loss."""
  return (a.goal_rate > b.goal_rate) | (
    (a.goal_rate == b.goal_rate) & (a.objective > b.objective)
  )


def keep_better(best: Best, candidate: Best) -> Best:
  """Per example, `candidate` where it strictly beats `best`."""
  take = better(candidate, best)
  return jax.tree.map(
    lambda c, b: jnp.where(take.reshape((-1,) + (1,) * (c.ndim - 1)), c, b),
    candidate,
    best,
  )


def met_vote(best: Best) -> jax.Array:
  """``(N,)`` whether most of the EOT draws at the best point met the goal."""
  return best.goal_rate > 0.5


def where_examples(mask: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
  """``a`` for examples where `mask` ``(N,)`` holds, else ``b``."""
  return jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)


def worst(images: jax.Array) -> Best:
  """A `Best` that any evaluated point beats."""
  n = images.shape[0]
  return Best(images, jnp.full((n,), -1.0), jnp.full((n,), -jnp.inf))
