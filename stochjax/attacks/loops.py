"""Loop structure shared by the attacks: skippable scan steps and restarts."""

import functools

import jax
import jax.numpy as jnp

from stochjax import prng
from stochjax.attacks import best as best_lib
from stochjax.attacks import eot as eot_lib
from stochjax.attacks import norms, results


def skip_when(is_done, step, carry_like, x_like):
  """A scan body that runs ``step(carry, x)`` unless ``is_done(carry)``.

  A skipped step keeps the carry and outputs zeros shaped like `step`'s;
  `carry_like` and `x_like` give the shapes.
  """
  out_shapes = jax.eval_shape(step, carry_like, x_like)[1]

  def skip(carry, t):
    del t
    return carry, jax.tree.map(
      lambda s: jnp.zeros(s.shape, s.dtype), out_shapes
    )

  def body(carry, t):
    return jax.lax.cond(is_done(carry), skip, step, carry, t)

  return body


def run_attack(run_once, settings, key, logits_fn, images, labels, eps,
               step_size, valid=None) -> results.Run:  # fmt: skip
  """A per-example attack body: its EOT evaluations built for `logits_fn`,
  then ``run_once(settings, eot, images, labels, eps, step_size, keys)``
  over restarts. `settings` has ``eot`` (`eot_lib.make_eot` keyword
  arguments but `logits_fn`, as items), ``restarts`` and ``early_stop``.
  `valid` (padding rows) is ignored: no example depends on another."""
  del valid
  eot = eot_lib.make_eot(**dict(settings.eot), logits_fn=logits_fn)
  return over_restarts(
    functools.partial(run_once, settings, eot, images, labels, eps, step_size),
    key,
    images,
    restarts=settings.restarts,
    early_stop=settings.early_stop,
  )


def start(norm: str, eps, keys, images, random_init: bool):
  """``(x0, step_keys)``: a restart's starting point (the clean images, or a
  uniform point of the eps-ball drawn from its own stream) and the keys of
  its steps."""
  init_keys, step_keys = prng.split_each(keys)
  if not random_init:
    return images, step_keys
  return norms.random_start(norm, eps, init_keys, images), step_keys


def over_restarts(run_once, key, images, *, restarts: int, early_stop: bool):
  """Runs `run_once` `restarts` times with independent keys, keeps the best.

  Args:
    run_once: ``keys (N,) -> (Best, losses (T, N), goal_rates (T, N),
      grad_evals, forward_evals)``.
    key: the attack key, or ``(N,)`` per-example keys (`prng.per_example`);
      restarts draw from `prng.per_restart` of them.
    images: ``(N, H, W, C)`` clean images.
    restarts: how many.
    early_stop: skip a restart once every example's best point meets the
      goal on most draws.

  Returns:
    A `results.Run` whose images are the per-example best points.
  """
  keys = prng.per_example(key, images.shape[0])
  if restarts == 1:
    best, losses_, rates, grads, forwards = run_once(keys)
    return results.Run(
      jax.lax.stop_gradient(best.x), losses_[None], rates[None], grads, forwards
    )

  def body(carry, key):
    best, grads, forwards = carry
    new, losses_, rates, g, f = run_once(key)
    best = best_lib.keep_better(best, new)
    return (best, grads + g, forwards + f), (losses_, rates)

  per_restart = prng.per_restart(keys, restarts)
  zero = jnp.zeros((), jnp.int32)
  init = (best_lib.worst(images), zero, zero)
  if early_stop:
    body = skip_when(
      lambda c: jnp.all(best_lib.met_vote(c[0])), body, init, per_restart[0]
    )
  (best, grads, forwards), (losses_, rates) = jax.lax.scan(
    body, init, per_restart
  )
  return results.Run(
    jax.lax.stop_gradient(best.x), losses_, rates, grads, forwards
  )
