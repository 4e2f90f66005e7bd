"""ART 1.9.1's AutoPGD, the variant the paper ran, for comparable numbers.

What it does differently from the reference APGD (official_code.md §2.3):
* the initial step is ``eps_step`` (the paper's lr), not ``2 * eps``;
* step-size and best-point decisions are per *batch*: they compare
  batch-mean losses, each from one fresh defense draw (not the EOT draws of
  the gradient);
* the first check (step 0) keeps the larger loss even when targeted;
* checkpoints are ``ceil(p_j * T)`` for ``p = 0, 0.22, ...``;
* an all-zero batch loss stops the batch;
* a restart attacks only the samples one stochastic prediction calls
  robust, starts from a random point around their current adversarial
  image, and at the end keeps the final iterate only where one more
  stochastic prediction says the goal is met; elsewhere the random start
  is returned.

"The batch" is the batch `attack` is called with (ART chunks the robust
samples by its ``batch_size``); its samples that are not robust, and its
padding rows (``valid=False``, as `stochjax.batching` pads the last batch),
are masked out of the batch means and decisions.
"""

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import prng
from stochjax.attacks import attack as attack_lib
from stochjax.attacks import best as best_lib
from stochjax.attacks import eot as eot_lib
from stochjax.attacks import loops, norms, results


def checkpoints(num_steps: int) -> tuple[np.ndarray, np.ndarray]:
  """ART's ``var_w``: ``(is_check (T,) bool, interval (T,) int)``."""
  p = [0.0, 0.22]
  while (following := p[-1] + max(p[-1] - p[-2] - 0.03, 0.06)) <= 1:
    p.append(following)
  w = [math.ceil(q * num_steps) for q in p]
  is_check = np.zeros(num_steps, bool)
  interval = np.ones(num_steps, np.int32)
  for k in range(1, num_steps):
    if k in w:
      is_check[k], interval[k] = True, k - w[w.index(k) - 1]
  return is_check, interval


def forward_evals(num_steps: int) -> int:
  """Single-draw forward passes per example and restart: two predictions,
  two loss checks at step 0 and one per later step."""
  return num_steps + 3


@dataclasses.dataclass(frozen=True)
class _Art:
  """The static settings of ART's APGD (see `make_run`)."""

  # `eot_lib.make_eot`'s keyword arguments but logits_fn, as items.
  eot_settings: tuple
  norm: str
  eps: float
  eta0: float
  num_steps: int
  restarts: int
  unroll: int | bool

  @property
  def targeted(self) -> bool:
    return dict(self.eot_settings)["targeted"]

  @property
  def eot_samples(self) -> int:
    return dict(self.eot_settings)["eot_samples"]


class _Evals(NamedTuple):
  """The model evaluations of one call."""

  eot: eot_lib.Eot  # The gradient's m draws.
  single: eot_lib.Eot  # One draw (ART's loss checks and predictions).
  labels: jax.Array


def cost(num_steps: int, eot_samples: int, restarts: int) -> results.Cost:
  """The per-example budget of ART's APGD."""
  return results.Cost(
    num_steps=num_steps,
    eot_samples=eot_samples,
    restarts=restarts,
    grad_evals=restarts * num_steps * eot_samples,
    forward_evals=restarts * forward_evals(num_steps),
  )


def make_attack(
  settings: dict[str, Any],
  geometry: dict[str, Any],
  num_steps: int,
  restarts: int,
  unroll: int | bool,
  common: dict[str, Any],
) -> attack_lib.Attack:
  """The `attack_lib.Attack` of ART's APGD; `common` holds its loss,
  and targeted fields."""
  return attack_lib.Attack(
    run=make_run(
      settings=settings,
      geometry=geometry,
      num_steps=num_steps,
      restarts=restarts,
      unroll=unroll,
    ),
    cost=cost(num_steps, settings["eot_samples"], restarts),
    **common,
  )


def make_run(
  *,
  settings: dict[str, Any],
  geometry: dict[str, Any],
  num_steps: int,
  restarts: int,
  unroll: int | bool,
) -> Callable[..., results.Run]:
  """The jitted ``run(key, logits_fn, images, labels) -> results.Run``.

  Args:
    settings: `eot_lib.make_eot` arguments but `logits_fn`.
    geometry: ``norm``, ``eps`` and ``step_size`` (ART's eps_step).
    num_steps: ART's max_iter.
    restarts: ART's nb_random_init.
    unroll: passed to `lax.scan`.
  """
  art = _Art(
    eot_settings=tuple(settings.items()),
    norm=geometry["norm"],
    eps=geometry["eps"],
    eta0=geometry["step_size"],
    num_steps=num_steps,
    restarts=restarts,
    unroll=unroll,
  )
  return loops.shared(_jit_run, art)


def _jit_run(art: _Art):
  return jax.jit(functools.partial(_run, art))


def _run(art: _Art, key, logits_fn, images, labels, valid=None):
  """ART's generate on one batch; rows where `valid` is False (padding)
  stay out of every batch-level decision."""
  if valid is None:
    valid = jnp.ones(images.shape[:1], bool)
  settings = dict(art.eot_settings) | dict(logits_fn=logits_fn)
  evals = _Evals(
    eot_lib.make_eot(**settings),
    eot_lib.make_eot(
      **settings | dict(eot_samples=1, chunk_size=1, mode="mean_grad")
    ),
    labels,
  )
  zero = jnp.int32(0)
  (x_adv, grads, forwards), (losses_, rates) = jax.lax.scan(
    functools.partial(_restart, art, evals, images, valid),
    (images, zero, zero),
    prng.per_restart(prng.per_example(key, images.shape[0]), art.restarts),
  )
  return results.Run(
    jax.lax.stop_gradient(x_adv), losses_, rates, grads, forwards
  )


def _met(evals: _Evals, x, keys):
  """One stochastic prediction per example: does it meet the goal?"""
  return evals.single.statistics(x, keys, evals.labels).goal_rate > 0


def _batch_loss(evals: _Evals, weight, loss_keys, x, t):
  """The single-draw loss averaged over the weighted (robust) examples."""
  stats = evals.single.statistics(x, prng.fold_each(loss_keys, t), evals.labels)
  return jnp.sum(weight * stats.loss) / jnp.maximum(jnp.sum(weight), 1)


def _ascent(art: _Art, evals: _Evals, grad_keys, x, t):
  """The step direction from the EOT gradient, and its draw statistics."""
  (_, stats), grad = evals.eot.value_and_grad(
    x, prng.fold_each(grad_keys, t), evals.labels
  )
  return norms.direction(art.norm, grad), stats


def _restart(art: _Art, evals: _Evals, images, valid, carry, keys):
  """One of ART's random restarts, attacking only the robust samples."""
  x_adv, grads, forwards = carry
  grad_keys, loss_keys, start_keys, end_keys, init_keys = prng.split_each(
    keys, 5
  )
  robust = ~_met(evals, x_adv, start_keys) & valid
  weight = robust.astype(jnp.float32)
  stream = _Streams(grad_keys, loss_keys, end_keys, init_keys)

  def attack_robust(x_adv):
    return _attack_robust(art, evals, images, robust, weight, stream, x_adv)

  def nothing_robust(x_adv):
    zeros = jnp.zeros((art.num_steps, images.shape[0]))
    return x_adv, zeros, zeros, jnp.int32(0), jnp.int32(1)

  x_adv, losses_, rates, g, f = jax.lax.cond(
    jnp.any(robust), attack_robust, nothing_robust, x_adv
  )
  return (x_adv, grads + g, forwards + f), (losses_, rates)


class _Streams(NamedTuple):
  """One restart's per-example key streams."""

  grad: jax.Array
  loss: jax.Array
  end: jax.Array
  init: jax.Array


def _attack_robust(art: _Art, evals, images, robust, weight, stream, x_adv):
  """ART's loop from a random start around `x_adv`; returns the restart's
  images, losses, goal rates, gradient and forward evaluations."""
  norm, eps, eta0 = art.norm, art.eps, art.eta0
  batch_loss = functools.partial(_batch_loss, evals, weight, stream.loss)
  start = norms.project(
    norm,
    eps,
    x_adv + norms.random_delta(norm, eps, stream.init, images),
    images,
  )
  direction, stats0 = _ascent(art, evals, stream.grad, start, 0)
  x1 = norms.project(norm, eps, start + eta0 * direction, images)
  f0, f1 = batch_loss(start, art.num_steps), batch_loss(x1, 0)
  take = f1 >= f0  # ART 1.9.1 does not flip this for targeted.
  state = dict(
    x=x1,
    x_prev=start,
    eta=jnp.float32(eta0),
    top=jnp.where(take, f1, f0),
    x_top=jnp.where(take, x1, start),
    x_top_prev=images,
    count=take.astype(jnp.float32),
    eta_at_check=jnp.float32(eta0),
    top_at_check=f0,
    stopped=jnp.bool_(False),
    steps=jnp.int32(1),
  )
  step = functools.partial(_step, art, evals, images, batch_loss, stream.grad)
  body = loops.skip_when(lambda s: s["stopped"], step, state, jnp.uint32(1))
  ks = jnp.arange(1, art.num_steps, dtype=jnp.uint32)
  state, stats = jax.lax.scan(body, state, ks, unroll=art.unroll)
  success = _met(evals, state["x"], stream.end)
  x_robust = best_lib.where_examples(success, state["x"], start)
  losses_ = jnp.concatenate([stats0.loss[None], stats.loss])
  rates = jnp.concatenate([stats0.goal_rate[None], stats.goal_rate])
  # Forward passes: the start prediction, f0, one per step, the end.
  done_steps = state["steps"]
  return (
    best_lib.where_examples(robust, x_robust, x_adv),
    losses_,
    rates,
    done_steps * art.eot_samples,
    done_steps + 3,
  )


def _step(art: _Art, evals, images, batch_loss, grad_keys, s, k):
  """One ART APGD step with its batch-level checkpoint decisions."""
  s = dict(s)
  norm, eps = art.norm, art.eps
  x, x_prev = s["x"], s["x_prev"]
  direction, stats = _ascent(art, evals, grad_keys, x, k)
  z = norms.project(norm, eps, x + s["eta"] * direction, images)
  x_new = norms.project(
    norm, eps, x + 0.75 * (z - x) + 0.25 * (x - x_prev), images
  )
  f = batch_loss(x_new, k)
  zero = f == 0.0
  rose = ((f < s["top"]) if art.targeted else (f > s["top"])) & ~zero
  s["count"] = s["count"] + rose.astype(jnp.float32)
  s["x_top"] = jnp.where(rose, x_new, s["x_top"])
  s["x_top_prev"] = jnp.where(rose, x, s["x_top_prev"])
  s["top"] = jnp.where(rose, f, s["top"])
  s["x_prev"], s["x"] = jnp.where(zero, x_prev, x), x_new
  is_check, interval = checkpoints(art.num_steps)
  check = jnp.asarray(is_check)[k] & ~zero
  few_rises = s["count"] < jnp.asarray(0.75 * interval, jnp.float32)[k]
  unchanged = (s["eta_at_check"] == s["eta"]) & (s["top_at_check"] == s["top"])
  halve = check & (few_rises | unchanged)
  s["eta"] = jnp.where(halve, s["eta"] / 2, s["eta"])
  s["x"] = jnp.where(halve, s["x_top"], s["x"])
  s["x_prev"] = jnp.where(halve, s["x_top_prev"], s["x_prev"])
  s["count"] = jnp.where(check, 0.0, s["count"])
  s["eta_at_check"] = jnp.where(check, s["eta"], s["eta_at_check"])
  s["top_at_check"] = jnp.where(check, s["top"], s["top_at_check"])
  s["stopped"] = zero
  s["steps"] = s["steps"] + 1
  return s, stats
