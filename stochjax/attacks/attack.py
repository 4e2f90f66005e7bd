"""The attack value every factory returns, and its host-side input checks.

``attack = make_pgd(...)`` is an `Attack`: calling it,
``attack(key, logits_fn, images, labels)``, checks concrete inputs on the
host and runs one jitted program; its fields say what it costs and how it
was built, and ``attack.run`` is the bare jitted body (no checks).
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import types, validation
from stochjax.attacks import losses
from stochjax.attacks import results as results_lib


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


def sweep_program(run_with: Callable) -> Callable:
  """The jitted ``(key, logits_fn, images, labels, radii (S,), steps (S,),
  chunk_size) -> (S, N, H, W, C)`` of `Attack.sweep`.

  Args:
    run_with: ``(key, logits_fn, images, labels, eps, step_size) -> Run``
      with traceable `eps` and `step_size`.
  """

  @functools.partial(jax.jit, static_argnames="chunk_size")
  def run_sweep(key, logits_fn, images, labels, radii, steps, chunk_size):
    return jax.lax.map(
      lambda v: run_with(key, logits_fn, images, labels, *v).images,
      (radii, steps),
      batch_size=chunk_size,
    )

  return run_sweep


@dataclasses.dataclass(frozen=True, eq=False)
class Attack:
  """``attack(key, logits_fn, images, labels) -> adversarial images``.

  Attributes:
    run: the jitted body ``(key, logits_fn, images (N, H, W, C), labels (N,)
      int32) -> results.Run``, with no host-side checks; `logits_fn` must be
      a `jax.tree_util.Partial` (see `as_pytree_fn`).
    cost: the per-example budget (`results.Cost`).
    loss: the loss name ("ce", "margin", "dlr").
    targeted: whether `labels` are target classes.
    with_info: calls return an `results.AttackResult`, not only the images.
    snapshot_steps: step counts whose iterates are also kept (PGD); then the
      images are ``(N, S, H, W, C)``.
    sweep_run: `sweep_program`'s function, or None where the attack cannot
      sweep (ART-compatible APGD).
    step_ratio: the factory's step size / eps (a sweep's default steps).
  """

  run: Callable
  cost: results_lib.Cost
  loss: str
  targeted: bool
  with_info: bool = False
  snapshot_steps: tuple[int, ...] = ()
  sweep_run: Callable | None = None
  step_ratio: float = 0.0

  def __call__(self, key, logits_fn, images, labels):
    """Runs the attack.

    Args:
      key: one key, or ``(N,)`` per-example keys (`stochjax.prng.at`).
      logits_fn: ``(N, H, W, C) -> (N, K)`` logits.
      images: ``(N, H, W, C)`` float32 in [0, 1].
      labels: ``(N,)`` true labels, or target classes when `targeted`.

    Returns:
      ``(N, H, W, C)`` adversarial images in [0, 1] (``(N, S, H, W, C)``
      with `snapshot_steps`), or an `AttackResult` with `with_info`.
    """
    logits_fn = check_inputs(
      logits_fn, images, labels, loss=self.loss, targeted=self.targeted
    )
    out = self.run(key, logits_fn, images, jnp.asarray(labels, jnp.int32))
    if not self.with_info:
      return out.images
    return results_lib.AttackResult(
      out.images,
      out.losses,
      out.goal_rates,
      int(out.grad_evals) * images.shape[0],
      int(out.forward_evals) * images.shape[0],
      self.cost,
    )

  def sweep(
    self, key, logits_fn, images, labels, *, eps, step_size=None,
    chunk_size=None,
  ) -> jax.Array:  # fmt: skip
    """The attack at several radii as one compiled program.

    Slot s is the attack with radius ``eps[s]`` and step ``step_size[s]``
    (default: the factory's step scaled with the radius), each with the
    same key, so it equals a separate attack built with those values. The
    S runs are a `lax.map` over the values, `chunk_size` of them vmapped at
    once (default all).

    Returns:
      ``(S, N, H, W, C)`` adversarial images.

    Raises:
      ValueError: non-positive radii or steps, or an attack that cannot
        sweep.
    """
    if self.sweep_run is None:
      raise ValueError("This attack does not support sweeps.")
    radii = np.asarray(eps, np.float32).reshape(-1)
    steps = (
      radii * np.float32(self.step_ratio)
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
      logits_fn, images, labels, loss=self.loss, targeted=self.targeted
    )
    return self.sweep_run(
      key,
      logits_fn,
      images,
      jnp.asarray(labels, jnp.int32),
      jnp.asarray(radii),
      jnp.asarray(steps),
      chunk,
    )
