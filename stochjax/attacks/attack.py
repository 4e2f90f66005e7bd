"""The attack value every factory returns, and its host-side input checks.

``attack = make_pgd(...)`` is an `Attack`: calling it,
``attack(key, logits_fn, images, labels)``, checks concrete inputs on the
host and runs one jitted program; its fields say what it costs and how it
was built, and ``attack.run`` is the bare jitted body (no checks).
"""

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import types, validation
from stochjax.attacks import losses
from stochjax.attacks import results as results_lib
from stochjax.models.stochastic import StochasticClassifier

# What `as_pytree_fn` takes: a logits function, or ``(apply_fn, params)``.
LogitsFnLike = types.LogitsFn | tuple[Callable, Any]
# What it returns: a pytree whose leaves are the weights.
PytreeLogitsFn = jax.tree_util.Partial | StochasticClassifier


def as_pytree_fn(logits_fn: LogitsFnLike) -> PytreeLogitsFn:
  """Makes `logits_fn` a valid jit argument (weights traced, fn static).

  Args:
    logits_fn: ``images -> logits``; a `jax.tree_util.Partial` (e.g. from
      `stochjax.models.classifier`) or a
      `stochjax.models.stochastic.StochasticClassifier`, as they are; or ``(apply_fn, params)``, called as
      ``apply_fn(params, images)`` (Flax's ``(model.apply, variables)``).
      With either form the weights are traced arguments, so new weights
      reuse the compiled attack; a fresh closure over the weights (a
      ``lambda`` per call) is a new static function and recompiles.

  Raises:
    ValueError: anything else.
  """
  if isinstance(logits_fn, jax.tree_util.Partial | StochasticClassifier):
    return logits_fn
  if isinstance(logits_fn, tuple) and len(logits_fn) == 2:
    apply_fn, params = logits_fn
    if callable(apply_fn):
      return jax.tree_util.Partial(apply_fn, params)
  if not callable(logits_fn):
    raise ValueError(
      "logits_fn must be callable, a jax.tree_util.Partial or an "
      f"(apply_fn, params) pair, got {type(logits_fn)}."
    )
  return jax.tree_util.Partial(logits_fn)


def _recompile_hint(seen: dict, logits_fn, images) -> None:
  """Warns once per attack when a new closure of an already seen function
  arrives with inputs of an already seen shape: each closure is a new
  static argument, so the attack recompiles. Only hashes are kept, not the
  closures (nor the weights they hold)."""
  code = getattr(getattr(logits_fn, "__func__", logits_fn), "__code__", None)
  if code is None or isinstance(logits_fn, jax.tree_util.Partial | tuple):
    return
  try:
    identity = hash(logits_fn)
  except TypeError:  # An unhashable callable: nothing to compare.
    return
  key = (code, getattr(images, "shape", None), getattr(images, "dtype", None))
  previous = seen.setdefault(key, identity)
  if previous != identity and not seen.get("warned"):
    seen["warned"] = True
    warnings.warn(
      "The attack is recompiling for a new logits_fn closure at unchanged "
      f"shapes ({code.co_name} from {code.co_filename}:"
      f"{code.co_firstlineno}). Pass (apply_fn, params) or "
      "jax.tree_util.Partial(apply_fn, params) (models.classifier does) so "
      "the weights are traced arguments and the compiled attack is reused.",
      RecompileWarning,
      stacklevel=3,
    )


class RecompileWarning(UserWarning):
  """An attack compiled again for a new closure at unchanged shapes."""


@jax.jit
def _finite_logits(logits_fn, images):
  return jnp.all(jnp.isfinite(logits_fn(images)))


def check_inputs(
  logits_fn: LogitsFnLike,
  images: types.Batch,
  labels: jax.typing.ArrayLike,
  *,
  loss: str | types.LossFn,
  targeted: bool,
) -> PytreeLogitsFn:
  """Validates an attack call; returns the pytree `logits_fn`.

  Shapes and dtypes are always checked; outside any trace, on concrete
  inputs, so are values, and the model runs once so non-finite logits are
  caught before the attack loop. Inside a user's jit, vmap, scan or grad
  nothing host-side runs.

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
  concrete = validation.is_concrete(images) and not any(
    isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(logits_fn)
  )
  if concrete and images.shape[0]:
    if not bool(_finite_logits(logits_fn, images)):
      raise ValueError("logits_fn returned NaN or infinite logits.")
  return logits_fn


@dataclasses.dataclass(frozen=True, eq=False)
class Attack:
  """``attack(key, logits_fn, images, labels) -> adversarial images``;
  ``attack.with_info(...)`` -> the images with every step's losses and goal
  rates (`results.AttackResult`).

  Attributes:
    run: the jitted body ``(key, logits_fn, images (N, H, W, C), labels (N,)
      int32[, valid=(N,) bool]) -> results.Run``, with no host-side checks;
      `logits_fn` must be a `jax.tree_util.Partial` (see `as_pytree_fn`).
    cost: the per-example budget (`results.Cost`).
    loss: the loss name ("ce", "margin", "dlr").
    targeted: whether `labels` are target classes.
    snapshot_steps: step counts whose iterates are also kept (PGD); then the
      images are ``(N, S, H, W, C)``.
    sweep_run: ``(key, logits_fn, images, labels, radii (S,), steps (S,),
      chunk_size) -> (S, N, H, W, C)`` (`loops.programs`), or None where
      the attack cannot sweep (ART-compatible APGD).
    step_ratio: the factory's step size / eps (a sweep's default steps).
    host_check: ``(key, logits_fn, images, labels) -> None`` run on the
      host before the attack on concrete inputs (AutoAttack's randomness
      check), or None.
  """

  run: Callable
  cost: results_lib.Cost
  loss: str
  targeted: bool
  snapshot_steps: tuple[int, ...] = ()
  sweep_run: Callable | None = None
  step_ratio: float = 0.0
  host_check: Callable | None = None
  _closures: dict = dataclasses.field(
    default_factory=dict, repr=False, compare=False
  )

  def __call__(
    self,
    key: types.PRNGKey,
    logits_fn: LogitsFnLike,
    images: types.Batch,
    labels: jax.typing.ArrayLike,
    *,
    valid: jax.typing.ArrayLike | None = None,
  ) -> jax.Array:
    """Runs the attack.

    Works inside `jax.jit`, `vmap`, `lax.scan` and `grad`, with any input
    closed over or passed in; the result is stop-gradiented (a point, not
    a differentiable function of the input).

    Args:
      key: one key, or ``(N,)`` per-example keys (`stochjax.prng.at`).
      logits_fn: ``(N, H, W, C) -> (N, K)`` logits: a function, a
        `jax.tree_util.Partial`, or ``(apply_fn, params)`` (see
        `as_pytree_fn`: the last two reuse the compiled attack for new
        weights).
      images: ``(N, H, W, C)`` float32 in [0, 1].
      labels: ``(N,)`` true labels, or target classes when `targeted`.
      valid: optional ``(N,)`` bool, False for padding rows: attacks that
        decide per batch (ART's APGD) leave those rows out (per-example
        attacks are unaffected by other rows anyway).

    Returns:
      ``(N, H, W, C)`` adversarial images in [0, 1] (``(N, S, H, W, C)``
      with `snapshot_steps`).
    """
    return self._run(key, logits_fn, images, labels, valid).images

  def with_info(
    self,
    key: types.PRNGKey,
    logits_fn: LogitsFnLike,
    images: types.Batch,
    labels: jax.typing.ArrayLike,
    *,
    valid: jax.typing.ArrayLike | None = None,
  ) -> results_lib.AttackResult:
    """The attack (arguments as calling it), with what it did: every step's
    losses and goal rates, and the evaluations it spent."""
    out = self._run(key, logits_fn, images, labels, valid)
    n = images.shape[0]
    count = int if validation.is_concrete(out.grad_evals) else jnp.asarray
    return results_lib.AttackResult(
      out.images,
      out.losses,
      out.goal_rates,
      count(out.grad_evals) * n,
      count(out.forward_evals) * n,
      self.cost,
    )

  def _run(self, key, logits_fn, images, labels, valid) -> results_lib.Run:
    if not validation.in_trace():
      _recompile_hint(self._closures, logits_fn, images)
    logits_fn = check_inputs(
      logits_fn, images, labels, loss=self.loss, targeted=self.targeted
    )
    labels = jnp.asarray(labels, jnp.int32)
    if self.host_check is not None and validation.is_concrete(images):
      self.host_check(key, logits_fn, images, labels)
    if valid is None:
      return self.run(key, logits_fn, images, labels)
    return self.run(key, logits_fn, images, labels, valid=valid)

  def sweep(
    self,
    key: types.PRNGKey,
    logits_fn: LogitsFnLike,
    images: types.Batch,
    labels: jax.typing.ArrayLike,
    *,
    eps: jax.typing.ArrayLike | Sequence[float],
    step_size: jax.typing.ArrayLike | Sequence[float] | None = None,
    chunk_size: int | None = None,
  ) -> jax.Array:
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
