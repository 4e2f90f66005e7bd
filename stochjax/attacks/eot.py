"""Expectation over Transformation: the one place EOT is computed.

Two estimators of the gradient over `eot_samples` independent defense draws,
chosen by name:

* ``"mean_grad"`` (the paper's Eq. 2): the mean of the single-draw
  gradients of the per-example loss; the loss reported is the mean of the
  single-draw losses.
* ``"mean_logits"`` (the paper code's AggMo path): the loss of the mean of
  the draws' logits, differentiated once; the loss reported is that loss.

The objective is summed over examples, so each example's gradient does not
depend on the batch. Draws run as one example-major batch of N x chunk
images (`defenses.core.defended_draws`: the defense vmapped over keys, so a
batch split over devices stays split); with ``chunk_size <
eot_samples`` they run as a `lax.scan` over chunks, so memory is set by the
chunk, not by `eot_samples` (for ``"mean_logits"`` each chunk is
rematerialized in the backward pass: two forwards and one backward per draw).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from stochjax import types
from stochjax.defenses import core as defense_core

MODES = ("mean_grad", "mean_logits")


class DrawStats(NamedTuple):
  """Per-example statistics over the EOT draws of one evaluation."""

  loss: jax.Array  # (N,) the EOT loss (see the module docstring).
  goal_rate: jax.Array  # (N,) fraction of draws whose argmax meets the goal.


class Eot(NamedTuple):
  """The EOT evaluations of one attack configuration.

  Attributes:
    value_and_grad: ``(x, keys, labels) -> ((objective, DrawStats), grad)``;
      the objective is the summed loss, negated when targeted, so an attack
      always ascends it.
    statistics: ``(x, keys, labels) -> DrawStats``, forward passes only.
  """

  value_and_grad: callable
  statistics: callable


def _sum_over_draws(fn, eot_samples: int, chunk_size: int, like):
  """``sum_j fn(draws_chunk_j)`` over chunks of `chunk_size` draw indices.

  `like` is a pytree shaped like one ``fn`` output (the scan's zeros).
  """
  draws = jnp.arange(eot_samples, dtype=jnp.uint32)
  if chunk_size == eot_samples:
    return fn(draws)

  def body(acc, chunk_draws):
    return jax.tree.map(jnp.add, acc, fn(chunk_draws)), None

  zeros = jax.tree.map(jnp.zeros_like, like)
  total, _ = jax.lax.scan(body, zeros, draws.reshape(-1, chunk_size))
  return total


def make_eot(
  *,
  logits_fn: types.LogitsFn,
  defense: types.Defense,
  loss_fn: types.LossFn,
  targeted: bool,
  eot_samples: int,
  chunk_size: int,
  mode: str = "mean_grad",
) -> Eot:
  """Builds the EOT evaluations of one attack configuration.

  Args:
    logits_fn: the model, ``(N, H, W, C) -> (N, K)``.
    defense: ``(key, image) -> image``.
    loss_fn: per-example loss to increase (untargeted) or decrease
      (targeted, `labels` are then the targets).
    targeted: whether the objective is ``-loss``.
    eot_samples: m, the EOT sample count.
    chunk_size: draws evaluated at once; divides `eot_samples`.
    mode: "mean_grad" or "mean_logits" (see the module docstring).

  Returns:
    An `Eot` of functions of ``x (N, H, W, C)``, per-example ``keys (N,)``
    (draw j of example i uses ``fold_in(keys[i], j)``) and ``labels (N,)``,
    or ``(N, 2)`` pairs for a pair loss (`losses.dlr_pair`): the goal reads
    column 0, the loss gets both.
  """
  if mode not in MODES:
    raise ValueError(f"Unknown EOT mode {mode!r}; valid: {', '.join(MODES)}.")
  sign = -1.0 if targeted else 1.0
  defended = defense_core.defended_draws(logits_fn, defense)

  def goal(logits, labels):
    if labels.ndim == 2:  # (goal label, loss target) pairs: APGD-T's DLR.
      labels = labels[:, 0]
    hit = jnp.argmax(logits, axis=-1) == labels
    return (hit if targeted else ~hit).astype(jnp.float32)

  def forward_sums(x, keys, labels, draws):
    """Per-example sums over `draws` of logits, losses and goals."""
    logits = defended(keys, draws, x).astype(jnp.float32)  # (c, N, K)
    losses = jax.vmap(loss_fn, in_axes=(0, None))(logits, labels)
    goals = jax.vmap(goal, in_axes=(0, None))(logits, labels)
    return jnp.sum(logits, 0), jnp.sum(losses, 0), jnp.sum(goals, 0)

  def stats_of(sums_fn, x, keys, labels):
    like = (
      jnp.zeros((x.shape[0], jax.eval_shape(logits_fn, x).shape[-1])),
      jnp.zeros(x.shape[:1]),
      jnp.zeros(x.shape[:1]),
    )
    logits, losses, goals = _sum_over_draws(
      lambda d: sums_fn(x, keys, labels, d), eot_samples, chunk_size, like
    )
    if mode == "mean_logits":
      loss = loss_fn(logits / eot_samples, labels)
    else:
      loss = losses / eot_samples
    return DrawStats(loss, goals / eot_samples)

  def statistics(x, keys, labels):
    return stats_of(forward_sums, jax.lax.stop_gradient(x), keys, labels)

  if mode == "mean_logits":
    rematerialized = jax.checkpoint(forward_sums)

    def objective(x, keys, labels):
      stats = stats_of(rematerialized, x, keys, labels)
      return sign * jnp.sum(stats.loss), stats

    return Eot(jax.value_and_grad(objective, has_aux=True), statistics)

  def draws_objective(x, keys, labels, draws):
    _, loss, met = forward_sums(x, keys, labels, draws)
    return sign * jnp.sum(loss), (loss, met)

  grad_of_draws = jax.value_and_grad(draws_objective, has_aux=True)

  def grad_sums(x, keys, labels, draws):
    """Sums over `draws` of the objective, per-example losses and goals,
    and of the single-draw gradients (one backward pass of their sum)."""
    (obj, (loss, met)), grad = grad_of_draws(x, keys, labels, draws)
    return obj, loss, met, grad

  def mean_grad(x, keys, labels):
    n = x.shape[0]
    like = (jnp.zeros(()), jnp.zeros((n,)), jnp.zeros((n,)), x)
    totals = _sum_over_draws(
      lambda d: grad_sums(x, keys, labels, d), eot_samples, chunk_size, like
    )
    obj, loss, met, grad = (t / eot_samples for t in totals)
    return (obj, DrawStats(loss, met)), grad

  return Eot(mean_grad, statistics)


def make_value_and_grad(
  **kwargs: Any,
) -> Callable[..., tuple[tuple[jax.Array, DrawStats], jax.Array]]:
  """``make_eot(**kwargs).value_and_grad`` (see `make_eot`)."""
  return make_eot(**kwargs).value_and_grad
