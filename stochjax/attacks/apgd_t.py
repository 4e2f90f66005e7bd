"""APGD-T as AutoAttack runs it: APGD on the targeted DLR loss against each
of the top-9 other classes in turn, succeeding on any misclassification.

The targets are the classes ranked 2nd to 10th by the clean image's logits
(their mean over the EOT draws under a defense). Target r's run is
`make_apgd` ascending `losses.dlr_pair` (``z_t - z_y`` over the DLR scale)
with an untargeted goal; an example keeps its first point that most of the
draws misclassify, otherwise the best point so far (most draws meeting the
goal, then the margin loss), and the remaining targets run only while some
example of the batch is unbroken. An example broken on the clean image
(by the draws' vote) is never attacked.

Differences from AutoAttack, each deliberate: "broken" is the vote over
the EOT draws, not one forward pass; a batch runs every target while any
example of it is unbroken (AutoAttack slices out the broken ones: the same
points, different work); each target's point is evaluated once more on m
draws (its goal rate ranks it).
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from stochjax import prng, types
from stochjax.attacks import apgd, loops, losses, parameters, results
from stochjax.attacks import attack as attack_lib
from stochjax.attacks import best as best_lib
from stochjax.attacks import eot as eot_lib
from stochjax.defenses import core as defense_core


@dataclasses.dataclass(frozen=True)
class _ApgdT:
  """The static settings of one APGD-T attack (see `make_apgd_t`)."""

  program: Callable  # the inner APGD's shared jitted run.
  eot_settings: tuple  # of the ranking evaluation (margin loss).
  num_targets: int
  num_steps: int
  eot_samples: int


def make_apgd_t(
  *,
  eps: float,
  num_steps: int = 100,
  norm: str = "linf",
  num_targets: int = 9,
  eot_samples: int = 1,
  eot_chunk_size: int | None = None,
  eot_mode: str = "mean_grad",
  defense: types.Defense | None = None,
  unroll: int | bool = 1,
) -> attack_lib.Attack:
  """Builds APGD-T (AutoAttack's ``apgd-t``; see the module docstring).

  Args:
    eps: radius of the threat model in [0, 1] pixel units.
    num_steps: APGD iterations per target (AutoAttack: 100).
    norm: "linf" or "l2".
    num_targets: how many of the top other classes to target (9); the
      model needs at least ``num_targets + 1`` classes, and 4.
    eot_samples, eot_chunk_size, eot_mode, defense, unroll: as `make_apgd`.

  Returns:
    An `attack_lib.Attack` whose labels are the true classes; its
    ``with_info`` losses are ``(num_targets, num_steps, N)``.
  """
  if not (isinstance(num_targets, int) and num_targets >= 1):
    raise ValueError(
      f"num_targets must be a positive int, got {num_targets!r}."
    )
  inner = apgd.make_apgd(
    eps=eps, num_steps=num_steps, norm=norm, loss=losses.dlr_pair,
    eot_samples=eot_samples, eot_chunk_size=eot_chunk_size,
    eot_mode=eot_mode, defense=defense, unroll=unroll,
  )  # fmt: skip
  ranking = parameters.check_parameters(
    eps=eps, num_steps=num_steps, restarts=1, norm=norm, eot_mode=eot_mode,
    loss="margin", targeted=False, eot_samples=eot_samples,
    eot_chunk_size=eot_chunk_size, defense=defense,
  )  # fmt: skip
  settings = _ApgdT(
    program=inner.run.program, eot_settings=ranking,
    num_targets=num_targets, num_steps=num_steps, eot_samples=eot_samples,
  )  # fmt: skip
  run = loops.shared(_build, settings)
  grads = inner.cost.grad_evals
  return attack_lib.Attack(
    run=loops.Bound(run, dict(inner.run.arguments)),
    cost=results.Cost(
      num_steps=num_steps, eot_samples=eot_samples, restarts=num_targets,
      grad_evals=num_targets * grads,
      forward_evals=(num_targets + 1) * eot_samples,
    ),
    loss="dlr", targeted=False,
  )  # fmt: skip


def _build(settings: _ApgdT) -> Callable:
  return jax.jit(functools.partial(_run, settings))


def _run(settings, key, logits_fn, images, labels, *, eps, step_size,
         valid=None) -> results.Run:  # fmt: skip
  """The jitted body (`attack_lib.Attack.run`)."""
  del valid  # Per-example: no example depends on another.
  n = images.shape[0]
  k = jax.eval_shape(logits_fn, images).shape[-1]
  if k < max(settings.num_targets + 1, 4):
    raise ValueError(
      f"APGD-T with {settings.num_targets} targets needs at least "
      f"{max(settings.num_targets + 1, 4)} classes; the model has {k}."
    )
  eot = eot_lib.make_eot(**dict(settings.eot_settings), logits_fn=logits_fn)
  m = settings.eot_samples
  keys = prng.per_example(key, n)
  choose_keys, clean_keys, attack_keys = prng.split_each(keys, 3)
  defended = defense_core.defended_draws(
    logits_fn, dict(settings.eot_settings)["defense"]
  )
  mean_logits = jnp.mean(
    defended(choose_keys, jnp.arange(m, dtype=jnp.uint32), images), axis=0
  )
  targets = jnp.argsort(-mean_logits, axis=-1)[:, 1 : settings.num_targets + 1]
  clean = eot.statistics(images, clean_keys, labels)
  start = best_lib.best_of(images, clean, targeted=False)
  per_target = prng.per_restart(attack_keys, settings.num_targets)

  def target(carry, r):
    best, grads, forwards = carry
    pairs = jnp.stack([labels, targets[:, r]], axis=-1)
    out = settings.program(
      per_target[r], logits_fn, images, pairs, eps=eps, step_size=step_size
    )
    x = jax.lax.stop_gradient(out.images)
    stats = eot.statistics(x, prng.fold_each(clean_keys, r + 1), labels)
    point = best_lib.best_of(x, stats, targeted=False)
    done = best_lib.met_vote(best)
    candidate = jax.tree.map(
      lambda a, b: best_lib.where_examples(done, a, b), best, point
    )
    best = best_lib.keep_better(best, candidate)
    carry = (best, grads + out.grad_evals, forwards + m)
    return carry, (out.losses[0], out.goal_rates[0])

  zero = jnp.zeros((), jnp.int32)
  init = (start, zero, zero + m)
  body = loops.skip_when(
    lambda c: jnp.all(best_lib.met_vote(c[0])), target, init, jnp.uint32(0)
  )
  (best, grads, forwards), (losses_, rates) = jax.lax.scan(
    body, init, jnp.arange(settings.num_targets, dtype=jnp.uint32)
  )
  return results.Run(
    jax.lax.stop_gradient(best.x), losses_, rates, grads, forwards
  )
