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

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import types, validation
from stochjax.attacks import eot as eot_lib
from stochjax.attacks import losses, norms
from stochjax.defenses import core as defense_core


class AttackResult(NamedTuple):
  """What an attack returns with ``with_info=True``.

  Attributes:
    images: ``(N, H, W, C)`` adversarial images in [0, 1] (the last iterate).
    losses: ``(num_steps, N)`` EOT-mean loss at the iterate of each step,
      before that step's update.
    goal_rates: ``(num_steps, N)`` fraction of that step's EOT draws whose
      prediction met the goal (untargeted: != label; targeted: == target).
    grad_evals: gradient evaluations (model forward + backward) spent, in all:
      ``num_steps * eot_samples * N``.
  """

  images: jax.Array
  losses: jax.Array
  goal_rates: jax.Array
  grad_evals: int


def as_pytree_fn(logits_fn: types.LogitsFn) -> jax.tree_util.Partial:
  """Makes `logits_fn` a valid jit argument (weights traced, fn static)."""
  if isinstance(logits_fn, jax.tree_util.Partial):
    return logits_fn
  if not callable(logits_fn):
    raise ValueError(f"logits_fn must be callable, got {type(logits_fn)}.")
  return jax.tree_util.Partial(logits_fn)


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
  loss: str = "ce",
  defense: types.Defense | None = None,
  with_info: bool = False,
  snapshot_steps: tuple[int, ...] | None = None,
  unroll: int | bool = 1,
) -> types.Attack:
  """Builds a PGD attack (Madry et al.) with EOT over a stochastic defense.

  Each step averages the per-example loss gradient over `eot_samples`
  independent defense draws (the paper's Eq. 2), steps along its sign (linf)
  or its unit L2 direction, clips to [0, 1] and projects onto the eps-ball.
  Without `random_init` the attack starts at the clean image, as the paper's
  ART PGD does; the result is the last iterate.

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
    loss: "ce" (cross-entropy) or "margin" (CW).
    defense: ``(key, image) -> image``; None attacks the bare model.
    with_info: return an `AttackResult` instead of the images alone.
    snapshot_steps: also keep the iterates after these step counts (each in
      1..num_steps): the images become ``(N, S, H, W, C)``, slot s holding
      PGD-``snapshot_steps[s]``'s result. Step t's draws depend only on the
      key and t, so these equal separate shorter runs; a grid over k costs
      one run of the largest k and one compile.
    unroll: passed to `lax.scan` (see the module docstring).

  Returns:
    ``attack(key, logits_fn, images (N, H, W, C) float32 in [0, 1],
    labels (N,) int) -> adversarial images (N, H, W, C)`` (or an
    `AttackResult`).

  Raises:
    ValueError: a parameter out of range, an unknown norm or loss.

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
  validation.positive("eps", eps)
  validation.positive("step_size", step_size)
  validation.positive("num_steps", num_steps, integer=True)
  validation.positive("eot_samples", eot_samples, integer=True)
  validation.one_of("norm", norm, norms.NORMS)
  loss_fn = losses.get_loss(loss)
  chunk = eot_samples if eot_chunk_size is None else eot_chunk_size
  validation.positive("eot_chunk_size", chunk, integer=True)
  if eot_samples % chunk:
    raise ValueError(
      f"eot_chunk_size={chunk} must divide eot_samples={eot_samples}."
    )
  defense = defense_core.identity if defense is None else defense
  snapshots = tuple(snapshot_steps or ())
  if not all(
    isinstance(k, int | np.integer) and 1 <= k <= num_steps for k in snapshots
  ) or len(set(snapshots)) != len(snapshots):
    raise ValueError(
      f"snapshot_steps {snapshots} must be distinct integers in 1..{num_steps}."
    )
  snapshots = tuple(int(k) for k in snapshots)
  # slot_of[t]: the snapshot slot written after step t (len(snapshots): none).
  slot_of = np.full(num_steps, len(snapshots), np.int32)
  for s, k in enumerate(snapshots):
    slot_of[k - 1] = s

  @jax.jit
  def run(key, logits_fn, images, labels):
    value_and_grad = eot_lib.make_value_and_grad(
      logits_fn=logits_fn,
      defense=defense,
      loss_fn=loss_fn,
      targeted=targeted,
      num_draws=eot_samples,
      chunk_size=chunk,
    )
    init_key, loop_key = jax.random.split(key)
    keys = defense_core.example_keys(loop_key, images.shape[0])
    x = images
    if random_init:
      x = norms.random_start(norm, eps, init_key, images)

    def step(carry, t):
      x, kept = carry
      step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)
      (_, stats), grad = value_and_grad(x, step_keys, labels)
      x = x + step_size * norms.direction(norm, grad)
      x = norms.project(norm, eps, x, images)
      if snapshots:
        slot = jnp.asarray(slot_of)[t]
        current = jax.lax.dynamic_index_in_dim(kept, slot, 1, keepdims=False)
        update = jnp.where(slot < len(snapshots), x, current)
        kept = jax.lax.dynamic_update_index_in_dim(kept, update, slot, 1)
      return (x, kept), stats

    steps = jnp.arange(num_steps, dtype=jnp.uint32)
    kept = jnp.zeros((x.shape[0], len(snapshots), *x.shape[1:]), x.dtype)
    (x, kept), stats = jax.lax.scan(step, (x, kept), steps, unroll=unroll)
    return jax.lax.stop_gradient(kept if snapshots else x), stats

  def attack(key, logits_fn, images, labels):
    validation.check_images(images)
    logits_fn = as_pytree_fn(logits_fn)
    k = validation.num_classes(logits_fn, images)
    validation.check_labels(labels, images.shape[0], k)
    adv, stats = run(key, logits_fn, images, jnp.asarray(labels, jnp.int32))
    if not with_info:
      return adv
    grad_evals = num_steps * eot_samples * images.shape[0]
    return AttackResult(adv, stats.loss, stats.goal_rate, grad_evals)

  attack.run = run
  attack.snapshot_steps = snapshots
  attack.grad_evals_per_example = num_steps * eot_samples
  return attack
