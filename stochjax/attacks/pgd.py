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

import functools

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import types, validation
from stochjax.attacks import base, norms
from stochjax.attacks import eot as eot_lib
from stochjax.defenses import core as defense_core


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
  with_info: bool = False,
  snapshot_steps: tuple[int, ...] | None = None,
  unroll: int | bool = 1,
) -> types.Attack:
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
    best_point: return, per example, the best iterate (most EOT draws
      meeting the goal, then highest objective) instead of the last; the
      last iterate costs one extra EOT forward evaluation.
    restarts: independent runs (restart r >= 1 draws from
      ``fold_in(key, r)``), keeping per example the best final point (each
      restart's final point is evaluated with one EOT forward pass).
    early_stop: freeze an example once most draws of its current point meet
      the goal, and skip steps once the whole batch is frozen. Off by
      default, as the paper runs every step.
    with_info: return an `AttackResult` instead of the images alone.
    snapshot_steps: also keep the iterates after these step counts (each in
      1..num_steps): the images become ``(N, S, H, W, C)``, slot s holding
      PGD-``snapshot_steps[s]``'s result. Step t's draws depend only on the
      key and t, so these equal separate shorter runs; a grid over k costs
      one run of the largest k and one compile. Only with the last iterate,
      one restart and no early stop.
    unroll: passed to `lax.scan` (see the module docstring).

  Returns:
    ``attack(key, logits_fn, images (N, H, W, C) float32 in [0, 1],
    labels (N,) int) -> adversarial images (N, H, W, C)`` (or an
    `AttackResult`). ``attack.cost`` is the per-example `base.Cost`;
    ``attack.sweep(key, logits_fn, images, labels, eps=[...])`` runs it at
    several radii (and step sizes) as one compiled program (see
    `base.add_sweep`).

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
  loss_fn, chunk = base.check_parameters(
    eps=eps,
    num_steps=num_steps,
    restarts=restarts,
    norm=norm,
    eot_mode=eot_mode,
    loss=loss,
    targeted=targeted,
    eot_samples=eot_samples,
    eot_chunk_size=eot_chunk_size,
  )
  validation.positive("step_size", step_size)
  defense = defense_core.identity if defense is None else defense
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
  snapshots = tuple(int(k) for k in snapshots)
  # slot_of[t]: the snapshot slot written after step t (len(snapshots): none).
  slot_of = np.full(num_steps, len(snapshots), np.int32)
  for s, k in enumerate(snapshots):
    slot_of[k - 1] = s
  evaluate_final = best_point or restarts > 1

  def run_with(key, logits_fn, images, labels, eps, step_size):
    """The attack at radius `eps` and step `step_size` (traceable scalars)."""
    eot = eot_lib.make_eot(
      logits_fn=logits_fn,
      defense=defense,
      loss_fn=loss_fn,
      targeted=targeted,
      num_draws=eot_samples,
      chunk_size=chunk,
      mode=eot_mode,
    )
    n = images.shape[0]

    def initial_carry(x):
      kept = jnp.zeros((n, len(snapshots), *x.shape[1:]), x.dtype)
      done = jnp.zeros((n,), bool)
      return x, base.worst(images), done, kept, jnp.zeros((), jnp.int32)

    def run_once(keys):
      init_keys, keys = base.split_each(keys)
      x = images
      if random_init:
        x = norms.random_start(norm, eps, init_keys, images)

      def step(carry, t):
        x, best, done, kept, grads = carry
        (_, stats), grad = eot.value_and_grad(
          x, base.step_keys(keys, t), labels
        )
        if best_point:
          best = base.keep_better(best, base.best_of(x, stats, targeted))
        x_next = norms.project(
          norm, eps, x + step_size * norms.direction(norm, grad), images
        )
        if early_stop:
          done = done | (stats.goal_rate > 0.5)
          x_next = base.where_examples(done, x, x_next)
        if snapshots:
          slot = jnp.asarray(slot_of)[t]
          current = jax.lax.dynamic_index_in_dim(kept, slot, 1, keepdims=False)
          update = jnp.where(slot < len(snapshots), x_next, current)
          kept = jax.lax.dynamic_update_index_in_dim(kept, update, slot, 1)
        return (x_next, best, done, kept, grads + eot_samples), stats

      init = initial_carry(x)
      steps = jnp.arange(num_steps, dtype=jnp.uint32)
      body = step
      if early_stop:
        body = base.skip_when(lambda c: jnp.all(c[2]), step, init, steps[0])
      (x, best, _, kept, grads), stats = jax.lax.scan(
        body, init, steps, unroll=unroll
      )
      forwards = jnp.zeros((), jnp.int32)
      if evaluate_final:
        final = eot.statistics(x, base.step_keys(keys, num_steps), labels)
        final = base.best_of(x, final, targeted)
        best = base.keep_better(best, final) if best_point else final
        forwards = forwards + eot_samples
      else:
        zeros = jnp.zeros((n,))
        best = base.Best(kept if snapshots else x, zeros, zeros)
      return best, stats.loss, stats.goal_rate, grads, forwards

    return base.over_restarts(
      run_once,
      defense_core.example_keys(key, n),
      images,
      restarts=restarts,
      early_stop=early_stop,
    )

  per_restart = num_steps * eot_samples
  cost = base.Cost(
    num_steps=num_steps,
    eot_samples=eot_samples,
    restarts=restarts,
    grad_evals=restarts * per_restart,
    forward_evals=restarts * eot_samples if evaluate_final else 0,
  )
  run = jax.jit(functools.partial(run_with, eps=eps, step_size=step_size))
  attack = base.finish(
    run, cost=cost, loss=loss, targeted=targeted, with_info=with_info
  )
  attack.snapshot_steps = snapshots
  base.add_sweep(attack, run_with, eps=eps, step_size=step_size)
  return attack
