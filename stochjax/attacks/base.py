"""What every attack shares: results, cost, best points, restarts, checks.

An attack factory builds a jitted ``run(key, logits_fn, images, labels)``
that returns a `Run`; `finish` wraps it into the public
``attack(key, logits_fn, images, labels)``, which validates its inputs on the
host before anything is traced.

Best points are ranked per example first by the fraction of EOT draws that
meet the goal (a cheap estimate of the vote), then by the attack objective
(the loss, negated for targeted attacks): on a deterministic model this keeps
any successful point over any unsuccessful one.
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import types, validation
from stochjax.attacks import eot as eot_lib
from stochjax.attacks import losses, norms


def check_parameters(
  *,
  eps,
  num_steps,
  restarts,
  norm,
  eot_mode,
  loss,
  targeted,
  eot_samples,
  eot_chunk_size,
):
  """Validates what every attack factory takes.

  Returns:
    ``(loss_fn, chunk_size)``: the loss in its targeted form if asked, and
    the EOT chunk size (all draws at once by default).

  Raises:
    ValueError: a value out of range, an unknown norm, loss or EOT mode, or a
      chunk size that does not divide `eot_samples`.
  """
  validation.positive("eps", eps)
  validation.positive("num_steps", num_steps, integer=True)
  validation.positive("restarts", restarts, integer=True)
  validation.one_of("norm", norm, norms.NORMS)
  validation.one_of("eot_mode", eot_mode, eot_lib.MODES)
  loss_fn = losses.get_loss(loss, targeted)
  validation.positive("eot_samples", eot_samples, integer=True)
  chunk = eot_samples if eot_chunk_size is None else eot_chunk_size
  validation.positive("eot_chunk_size", chunk, integer=True)
  if eot_samples % chunk:
    raise ValueError(
      f"eot_chunk_size={chunk} must divide eot_samples={eot_samples}."
    )
  return loss_fn, chunk


@dataclasses.dataclass(frozen=True)
class Cost:
  """The budget of one attack, per example.

  Attributes:
    num_steps: k, steps per restart.
    eot_samples: m, defense draws per gradient.
    restarts: independent restarts.
    grad_evals: model forward + backward passes, in all restarts.
    forward_evals: extra forward-only passes (loss checks, predictions).
  """

  num_steps: int
  eot_samples: int
  restarts: int
  grad_evals: int
  forward_evals: int

  @property
  def strength(self) -> int:
    """The paper's attack strength k x m (per restart)."""
    return self.num_steps * self.eot_samples

  def as_dict(self) -> dict[str, int]:
    return dataclasses.asdict(self) | {"strength": self.strength}


class AttackResult(NamedTuple):
  """What an attack returns with ``with_info=True``.

  Attributes:
    images: ``(N, H, W, C)`` adversarial images in [0, 1].
    losses: ``(restarts, num_steps, N)`` EOT loss at the point each step's
      gradient was taken.
    goal_rates: ``(restarts, num_steps, N)`` fraction of those draws whose
      prediction met the goal (untargeted: != label; targeted: == target).
    grad_evals: gradient evaluations spent on the batch (fewer than the
      budget when an early stop skipped steps).
    forward_evals: extra forward-only evaluations spent on the batch.
    cost: the per-example budget.
  """

  images: jax.Array
  losses: jax.Array
  goal_rates: jax.Array
  grad_evals: int
  forward_evals: int
  cost: Cost


class Run(NamedTuple):
  """What a jitted attack body returns (device values)."""

  images: jax.Array
  losses: jax.Array  # (restarts, num_steps, N)
  goal_rates: jax.Array  # (restarts, num_steps, N)
  grad_evals: jax.Array  # () int32, per example (the batch runs together)
  forward_evals: jax.Array  # () int32, per example


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


def step_keys(keys: jax.Array, step) -> jax.Array:
  """Per-example keys of draw set `step`: ``fold_in(keys[i], step)``."""
  return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, step)


def as_pytree_fn(logits_fn: types.LogitsFn) -> jax.tree_util.Partial:
  """Makes `logits_fn` a valid jit argument (weights traced, fn static)."""
  if isinstance(logits_fn, jax.tree_util.Partial):
    return logits_fn
  if not callable(logits_fn):
    raise ValueError(f"logits_fn must be callable, got {type(logits_fn)}.")
  return jax.tree_util.Partial(logits_fn)


@jax.jit
def _finite_logits(logits_fn, images):
  return jnp.all(jnp.isfinite(logits_fn(images)))


def check_inputs(logits_fn, images, labels, *, loss: str, targeted: bool):
  """Validates an attack call on the host; returns the pytree `logits_fn`.

  Runs the model once on concrete images, so non-finite logits are caught
  before the attack loop.

  Raises:
    ValueError: bad images or labels, a `logits_fn` that does not map
      ``(N, H, W, C)`` to finite ``(N, K)`` logits, or a loss that needs
      more classes than the model has.
  """
  validation.check_images(images)
  logits_fn = as_pytree_fn(logits_fn)
  k = validation.num_classes(logits_fn, images)
  losses.check_num_classes(loss, targeted, k)
  validation.check_labels(labels, images.shape[0], k)
  if validation.is_concrete(images) and images.shape[0]:
    if not bool(_finite_logits(logits_fn, images)):
      raise ValueError("logits_fn returned NaN or infinite logits.")
  return logits_fn


def finish(run, *, cost: Cost, loss: str, targeted: bool, with_info: bool):
  """The public ``attack(key, logits_fn, images, labels)`` around `run`."""

  def attack(key, logits_fn, images, labels):
    logits_fn = check_inputs(
      logits_fn, images, labels, loss=loss, targeted=targeted
    )
    out = run(key, logits_fn, images, jnp.asarray(labels, jnp.int32))
    if not with_info:
      return out.images
    return AttackResult(
      out.images,
      out.losses,
      out.goal_rates,
      int(out.grad_evals) * images.shape[0],
      int(out.forward_evals) * images.shape[0],
      cost,
    )

  attack.run = run
  attack.cost = cost
  attack.loss = loss
  attack.targeted = targeted
  attack.snapshot_steps = ()
  return attack


def add_sweep(attack, run_with, *, eps: float, step_size: float) -> None:
  """Gives `attack` a ``sweep``: the attack at several radii, one compile.

  ``attack.sweep(key, logits_fn, images, labels, *, eps, step_size=None,
  chunk_size=None)`` returns ``(S, N, H, W, C)``: slot s is the attack with
  radius ``eps[s]`` and step ``step_size[s]`` (default: the factory's step
  scaled with the radius), each with the same key, so it equals a separate
  attack built with those values. The S runs are one `jax.jit` program (a
  `lax.map` over the values, `chunk_size` of them vmapped at once; default
  all), so a sweep compiles once instead of once per value.

  Args:
    attack: the public attack (`finish`'s), given the attribute.
    run_with: ``(key, logits_fn, images, labels, eps, step_size) -> Run``
      with traceable `eps` and `step_size`.
    eps, step_size: the factory's values (for the default step ratio).
  """

  @functools.partial(jax.jit, static_argnames="chunk_size")
  def run_sweep(key, logits_fn, images, labels, radii, steps, chunk_size):
    return jax.lax.map(
      lambda v: run_with(key, logits_fn, images, labels, *v).images,
      (radii, steps),
      batch_size=chunk_size,
    )

  def sweep(
    key, logits_fn, images, labels, *, eps, step_size=None, chunk_size=None
  ):
    radii = np.asarray(eps, np.float32).reshape(-1)
    steps = (
      radii * np.float32(step_size_ratio)
      if step_size is None
      else np.broadcast_to(np.asarray(step_size, np.float32), radii.shape)
    )
    if not radii.size or not np.all(radii > 0) or not np.all(steps > 0):
      raise ValueError(
        f"A sweep needs positive eps and step sizes, got {eps}, {step_size}."
      )
    chunk = radii.size if chunk_size is None else chunk_size
    validation.positive("chunk_size", chunk, integer=True)
    logits_fn = check_inputs(
      logits_fn, images, labels, loss=attack.loss, targeted=attack.targeted
    )
    return run_sweep(
      key,
      logits_fn,
      images,
      jnp.asarray(labels, jnp.int32),
      jnp.asarray(radii),
      jnp.asarray(steps),
      chunk,
    )

  step_size_ratio = step_size / eps
  attack.sweep = sweep


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


def worst(images: jax.Array) -> Best:
  """A `Best` that any evaluated point beats."""
  n = images.shape[0]
  return Best(images, jnp.full((n,), -1.0), jnp.full((n,), -jnp.inf))


def split_each(keys: jax.Array, num: int = 2) -> tuple[jax.Array, ...]:
  """`num` arrays of ``(N,)`` keys: ``split(keys[i], num)`` per example."""
  split = jax.vmap(lambda k: jax.random.split(k, num))(keys)
  return tuple(split[:, j] for j in range(num))


def restart_keys(keys: jax.Array, restarts: int) -> jax.Array:
  """``(restarts, N)`` per-example keys: `keys` itself, then
  ``fold_in(keys[i], r)`` for r >= 1.

  Restart 0 uses the example keys unchanged, so adding restarts never
  changes what the first one does.
  """
  later = jax.vmap(step_keys, in_axes=(None, 0))(
    keys, jnp.arange(1, restarts, dtype=jnp.uint32)
  )
  return jnp.concatenate([keys[None], later])


def over_restarts(run_once, keys, images, *, restarts: int, early_stop: bool):
  """Runs `run_once` `restarts` times with independent keys, keeps the best.

  Args:
    run_once: ``keys (N,) -> (Best, losses (T, N), goal_rates (T, N),
      grad_evals, forward_evals)``.
    keys: ``(N,)`` per-example attack keys (see `restart_keys`).
    images: ``(N, H, W, C)`` clean images.
    restarts: how many.
    early_stop: skip a restart once every example's best point meets the
      goal on most draws.

  Returns:
    A `Run` whose images are the per-example best points.
  """
  if restarts == 1:
    best, losses_, rates, grads, forwards = run_once(keys)
    return Run(
      jax.lax.stop_gradient(best.x), losses_[None], rates[None], grads, forwards
    )

  def body(carry, key):
    best, grads, forwards = carry
    new, losses_, rates, g, f = run_once(key)
    best = keep_better(best, new)
    return (best, grads + g, forwards + f), (losses_, rates)

  per_restart = restart_keys(keys, restarts)
  zero = jnp.zeros((), jnp.int32)
  init = (worst(images), zero, zero)
  if early_stop:
    body = skip_when(
      lambda c: jnp.all(met_vote(c[0])), body, init, per_restart[0]
    )
  (best, grads, forwards), (losses_, rates) = jax.lax.scan(
    body, init, per_restart
  )
  return Run(jax.lax.stop_gradient(best.x), losses_, rates, grads, forwards)
