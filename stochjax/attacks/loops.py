"""Loop structure shared by the attacks: skippable scan steps, restarts,
and the jitted programs that attacks with equal static settings share."""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import prng, types
from stochjax.attacks import best as best_lib
from stochjax.attacks import eot as eot_lib
from stochjax.attacks import norms, results


def skip_when(
  is_done: Callable[[Any], jax.typing.ArrayLike],
  step: Callable[[Any, Any], tuple[Any, Any]],
  carry_like: Any,
  x_like: Any,
) -> Callable[[Any, Any], tuple[Any, Any]]:
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


def run_attack(
  run_once: Callable[..., tuple],
  settings: Any,
  key: types.PRNGKey,
  logits_fn: types.LogitsFn,
  images: types.Batch,
  labels: types.Labels,
  eps: jax.typing.ArrayLike,
  step_size: jax.typing.ArrayLike,
  valid: jax.typing.ArrayLike | None = None,
) -> results.Run:
  """A per-example attack body: its EOT evaluations built for `logits_fn`,
  then ``run_once(settings, eot, images, labels, eps, step_size, keys)``
  over restarts. `settings` has ``eot`` (`eot_lib.make_eot` keyword
  arguments but `logits_fn`, as items), ``restarts`` and ``early_stop``.
  `valid` (padding rows) is ignored: no example depends on another."""
  del valid
  eot = eot_lib.make_eot(**dict(settings.eot_settings), logits_fn=logits_fn)
  return over_restarts(
    functools.partial(run_once, settings, eot, images, labels, eps, step_size),
    key,
    images,
    restarts=settings.restarts,
    early_stop=settings.early_stop,
  )


class Programs(NamedTuple):
  """The jitted programs of one attack's static settings.

  Attributes:
    run: ``(key, logits_fn, images, labels, *, eps, step_size[, valid]) ->
      results.Run``; `eps` and `step_size` are traced arguments.
    sweep: ``(key, logits_fn, images, labels, radii (S,), steps (S,),
      chunk_size) -> (S, N, H, W, C)``: a `lax.map` of `run` over the
      values, `chunk_size` of them vmapped at once.
  """

  run: Callable
  sweep: Callable


@functools.lru_cache(maxsize=32)
def _built(build, args):
  return build(*args)


def shared(build: Callable, *args: Any) -> Any:
  """``build(*args)``, built once for equal arguments and then reused: the
  jitted programs of attacks with equal static settings, so they compile
  once per process.

  The 32 most recently used are kept. Arguments that cannot be hashed (an
  unhashable defense callable among the settings) get a fresh build.
  Settings compare their defense functions by identity.
  """
  try:
    return _built(build, args)
  except TypeError:  # Unhashable arguments: nothing to share.
    return build(*args)


def _build_programs(run_once, settings) -> Programs:
  run_with = functools.partial(run_attack, run_once, settings)

  @functools.partial(jax.jit, static_argnames="chunk_size")
  def sweep(key, logits_fn, images, labels, radii, steps, chunk_size):
    return jax.lax.map(
      lambda v: run_with(key, logits_fn, images, labels, *v).images,
      (radii, steps),
      batch_size=chunk_size,
    )

  return Programs(jax.jit(run_with), sweep)


def programs(run_once: Callable[..., tuple], settings: Any) -> Programs:
  """`run_attack`'s jitted programs for `settings` (`shared`).

  The radius and step size are arguments, not constants, so attacks that
  differ only in them (a grid's step-size rows, an eps sweep, one
  undefended control for several defenses) share one compiled program.

  Args:
    run_once: ``(settings, eot, images, labels, eps, step_size, keys) ->``
      what `over_restarts` expects.
    settings: a frozen dataclass of every static choice, ``eot`` (the
      `eot_lib.make_eot` arguments as items), ``restarts`` and
      ``early_stop`` among them.
  """
  return shared(_build_programs, run_once, settings)


@dataclasses.dataclass(frozen=True, eq=False)
class Bound:
  """A jitted program with keyword arguments bound (an attack's radius and
  step size): called, and lowered, as the program itself."""

  program: Callable
  arguments: dict

  def __call__(self, *args: Any, **kwargs: Any) -> Any:
    return self.program(*args, **self.arguments, **kwargs)

  def lower(self, *args: Any, **kwargs: Any) -> jax.stages.Lowered:
    return self.program.lower(*args, **self.arguments, **kwargs)


def bound_run(shared_programs: Programs, eps: float, step_size: float) -> Bound:
  """``shared_programs.run`` at radius `eps` and step `step_size` (float32
  arguments, so every radius reuses the compiled program)."""
  return Bound(
    shared_programs.run,
    {"eps": np.float32(eps), "step_size": np.float32(step_size)},
  )


def snapshot_slots(length: int, snapshots: tuple[int, ...]) -> np.ndarray:
  """``(length,)`` int32: the snapshot slot written after step (or query)
  t, counting from 1; ``len(snapshots)`` where none is."""
  slots = np.full(length, len(snapshots), np.int32)
  for s, k in enumerate(snapshots):
    slots[k - 1] = s
  return slots


def keep_snapshot(
  kept: jax.Array, slots: np.ndarray, t: jax.Array, x: jax.Array
) -> jax.Array:
  """`kept` ``(N, S, ...)`` with `x` written at slot ``slots[t]`` (if any)."""
  slot = jnp.asarray(slots)[t]
  current = jax.lax.dynamic_index_in_dim(kept, slot, 1, keepdims=False)
  update = jnp.where(slot < kept.shape[1], x, current)
  return jax.lax.dynamic_update_index_in_dim(kept, update, slot, 1)


def start(
  norm: str,
  eps: jax.typing.ArrayLike,
  keys: jax.Array,
  images: types.Batch,
  random_init: bool,
) -> tuple[jax.Array, jax.Array]:
  """``(x0, step_keys)``: a restart's starting point (the clean images, or a
  uniform point of the eps-ball drawn from its own stream) and the keys of
  its steps."""
  init_keys, step_keys = prng.split_each(keys)
  if not random_init:
    return images, step_keys
  return norms.random_start(norm, eps, init_keys, images), step_keys


def over_restarts(
  run_once: Callable[[jax.Array], tuple],
  key: types.PRNGKey,
  images: types.Batch,
  *,
  restarts: int,
  early_stop: bool,
) -> results.Run:
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
