"""Projected Gradient Descent with EOT, as one jitted `lax.scan`.

`make_pgd` returns ``attack(key, logits_fn, images, labels)``. Inputs are
checked once on the host; the attack itself is a single `jax.jit` whose step
loop is a `lax.scan` of static length, with the EOT draws vmapped inside each
step. Per-example keys are ``fold_in(key, i)``, so an example's attack does not
depend on what else is in the batch.

On XLA:CPU a rolled loop around a convolution's input gradient is slow unless
the model uses `stochjax.models.conv_general_dilated` (stochjax's ResNets
do); for other models pass ``unroll=True`` or a small integer.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import prng, types, validation
from stochjax.attacks import attack as attack_lib
from stochjax.attacks import best as best_lib
from stochjax.attacks import loops, norms, parameters, results


@dataclasses.dataclass(frozen=True)
class _Pgd:
  """The static settings of one PGD attack (see `make_pgd`)."""

  # `eot_lib.make_eot`'s keyword arguments but logits_fn, as items.
  eot_settings: tuple
  num_steps: int
  norm: str
  targeted: bool
  random_init: bool
  eot_samples: int
  best_point: bool
  restarts: int
  early_stop: bool
  snapshots: tuple[int, ...]
  unroll: int | bool

  @property
  def evaluate_final(self) -> bool:
    """Whether the final iterate gets one EOT forward evaluation."""
    return self.best_point or self.restarts > 1

  def cost(self) -> results.Cost:
    """The per-example budget."""
    return results.Cost(
      num_steps=self.num_steps,
      eot_samples=self.eot_samples,
      restarts=self.restarts,
      grad_evals=self.restarts * self.num_steps * self.eot_samples,
      forward_evals=self.restarts * self.eot_samples
      if self.evaluate_final
      else 0,
    )

  def slot_of(self) -> np.ndarray:
    """``(num_steps,)``: the snapshot slot written after step t."""
    return loops.snapshot_slots(self.num_steps, self.snapshots)


def make_pgd(
  *,
  eps: float,
  step_size: float,
  num_steps: int,
  norm: str = "linf",
  targeted: bool = False,
  random_init: bool = False,
  eot_samples: int = 1,
  eot_chunk_size: int | None = None,
  eot_mode: str = "mean_grad",
  loss: str = "ce",
  defense: types.Defense | None = None,
  best_point: bool = False,
  restarts: int = 1,
  early_stop: bool = False,
  snapshot_steps: tuple[int, ...] | None = None,
  unroll: int | bool = 1,
) -> attack_lib.Attack:
  """Builds a PGD attack (Madry et al.) with EOT over a stochastic defense.

  Each step averages the per-example loss gradient over `eot_samples`
  independent defense draws (the paper's Eq. 2; or differentiates the loss
  of the mean logits), steps along its sign (linf) or its unit L2
  direction, clips to [0, 1] and projects onto the eps-ball. By default the
  attack starts at the clean image and returns the last iterate, as the
  paper's ART PGD does.

  Args:
    eps: radius of the threat model, in [0, 1] pixel units (8/255 for linf).
    step_size: alpha, the length of each step in the same units.
    num_steps: k, the number of steps.
    norm: "linf" or "l2".
    targeted: descend the loss toward `labels`, read as target classes.
    random_init: start from a uniform point of the eps-ball.
    eot_samples: m, defense draws per gradient.
    eot_chunk_size: draws evaluated at once (memory bound); divides
      `eot_samples`. Default: all at once.
    eot_mode: "mean_grad" or "mean_logits" (see `stochjax.attacks.eot`).
    loss: "ce", "margin" (CW) or "dlr" (targeted DLR when `targeted`).
    defense: ``(key, image) -> image``; None attacks the bare model.
    best_point: return per example the best iterate (most EOT draws meeting
      the goal, then loss), not the last (one more EOT forward pass).
    restarts: independent runs (`prng.per_restart`), keeping per example
      the best final point (one EOT forward pass each).
    early_stop: freeze an example once most draws of its point meet the
      goal; skip steps once all are frozen (off, as in the paper).
    snapshot_steps: also keep the iterates after these step counts (in
      1..num_steps): images ``(N, S, H, W, C)``, slot s = PGD-
      ``snapshot_steps[s]`` (step t's draws depend only on t, so a grid over
      k costs one run). Only with the last iterate, one restart, no early
      stop.
    unroll: passed to `lax.scan` (see the module docstring).

  Returns:
    An `attack_lib.Attack`: ``attack(key, logits_fn, images (N, H, W, C)
    float32 in [0, 1], labels (N,) int) -> adversarial images (N, H, W,
    C)`` (or an `AttackResult`); ``attack.cost`` is the per-example
    budget; ``attack.sweep(key, logits_fn, images, labels, eps=[...])``
    runs it at several radii (and step sizes) as one compiled program.

  Raises:
    ValueError: a parameter out of range, an unknown norm, loss or EOT mode.

  References:
    Madry et al. Towards Deep Learning Models Resistant to Adversarial
    Attacks. ICLR 2018. https://arxiv.org/abs/1706.06083
    Athalye, Engstrom, Ilyas, Kwok. Synthesizing Robust Adversarial Examples
    (EOT). ICML 2018. https://arxiv.org/abs/1707.07397

  Example:
    >>> attack = make_pgd(eps=8 / 255, step_size=2 / 255, num_steps=10,
    ...                   eot_samples=5, defense=defense)  # doctest: +SKIP
    >>> adv = attack(key, logits_fn, images, labels)  # doctest: +SKIP
  """
  eot = parameters.check_parameters(
    eps=eps, num_steps=num_steps, restarts=restarts, norm=norm,
    eot_mode=eot_mode, loss=loss, targeted=targeted, eot_samples=eot_samples,
    eot_chunk_size=eot_chunk_size, defense=defense,
  )  # fmt: skip
  validation.positive("step_size", step_size)
  snapshots = _check_snapshots(
    snapshot_steps, num_steps, best_point, restarts, early_stop
  )
  settings = _Pgd(
    eot_settings=eot, num_steps=num_steps, norm=norm, targeted=targeted,
    random_init=random_init, eot_samples=eot_samples, best_point=best_point,
    restarts=restarts, early_stop=early_stop, snapshots=snapshots,
    unroll=unroll,
  )  # fmt: skip
  shared = loops.programs(_run_once, settings)
  return attack_lib.Attack(
    run=loops.bound_run(shared, eps, step_size),
    cost=settings.cost(), loss=loss, targeted=targeted,
    snapshot_steps=snapshots, sweep_run=shared.sweep,
    step_ratio=step_size / eps,
  )  # fmt: skip


def _check_snapshots(snapshot_steps, num_steps, best_point, restarts,
                     early_stop) -> tuple[int, ...]:  # fmt: skip
  """`snapshot_steps` as a tuple of ints, validated."""
  snapshots = tuple(snapshot_steps or ())
  if not all(
    isinstance(k, int | np.integer) and 1 <= k <= num_steps for k in snapshots
  ) or len(set(snapshots)) != len(snapshots):
    raise ValueError(
      f"snapshot_steps {snapshots} must be distinct integers in 1..{num_steps}."
    )
  if snapshots and (best_point or restarts > 1 or early_stop):
    raise ValueError(
      "snapshot_steps keeps last iterates: it needs best_point=False, "
      "restarts=1 and early_stop=False."
    )
  return tuple(int(k) for k in snapshots)


def _step(settings: _Pgd, eot, images, labels, eps, step_size, keys, carry, t):
  """One PGD step: EOT gradient, sign (or unit) step, clip and project."""
  x, best, done, kept, grads = carry
  (_, stats), grad = eot.value_and_grad(x, prng.fold_each(keys, t), labels)
  if settings.best_point:
    best = best_lib.keep_better(
      best, best_lib.best_of(x, stats, settings.targeted)
    )
  norm = settings.norm
  x_next = norms.project(
    norm, eps, x + step_size * norms.direction(norm, grad), images
  )
  if settings.early_stop:
    done = done | (stats.goal_rate > 0.5)
    x_next = best_lib.where_examples(done, x, x_next)
  if settings.snapshots:
    kept = loops.keep_snapshot(kept, settings.slot_of(), t, x_next)
  return (x_next, best, done, kept, grads + settings.eot_samples), stats


def _run_once(settings: _Pgd, eot, images, labels, eps, step_size, keys):
  """One restart: ``(Best, losses (T, N), goal_rates (T, N), grad_evals,
  forward_evals)``."""
  n = images.shape[0]
  x, keys = loops.start(settings.norm, eps, keys, images, settings.random_init)
  kept = jnp.zeros((n, len(settings.snapshots), *x.shape[1:]), x.dtype)
  done = jnp.zeros((n,), bool)
  init = (x, best_lib.worst(images), done, kept, jnp.zeros((), jnp.int32))
  step = functools.partial(
    _step, settings, eot, images, labels, eps, step_size, keys
  )
  steps = jnp.arange(settings.num_steps, dtype=jnp.uint32)
  body = step
  if settings.early_stop:
    body = loops.skip_when(lambda c: jnp.all(c[2]), step, init, steps[0])
  (x, best, _, kept, grads), stats = jax.lax.scan(
    body, init, steps, unroll=settings.unroll
  )
  forwards = jnp.zeros((), jnp.int32)
  if settings.evaluate_final:
    final = eot.statistics(x, prng.fold_each(keys, settings.num_steps), labels)
    final = best_lib.best_of(x, final, settings.targeted)
    best = best_lib.keep_better(best, final) if settings.best_point else final
    forwards = forwards + settings.eot_samples
  else:
    zeros = jnp.zeros((n,))
    best = best_lib.Best(kept if settings.snapshots else x, zeros, zeros)
  return best, stats.loss, stats.goal_rate, grads, forwards
