"""APGD-T as AutoAttack runs it: APGD on the targeted DLR loss against each
of the top-9 other classes in turn, succeeding on any misclassification.

Target r's run is `make_apgd` ascending `losses.dlr_pair` (``z_t - z_y``
over the DLR scale) with an untargeted goal; `targets.over_targets` picks
the targets (the classes ranked 2nd to 10th by the clean logits), keeps
each example's first broken point and never attacks a broken one.

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

from stochjax import types
from stochjax.attacks import apgd, loops, losses, parameters, results, targets
from stochjax.attacks import attack as attack_lib


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
      forward_evals=(num_targets + 2) * eot_samples,
    ),
    loss="dlr", targeted=False,
  )  # fmt: skip


def _build(settings: _ApgdT) -> Callable:
  return jax.jit(functools.partial(_run, settings))


def _run(settings, key, logits_fn, images, labels, *, eps, step_size,
         valid=None) -> results.Run:  # fmt: skip
  """The jitted body (`attack_lib.Attack.run`)."""
  del valid  # Per-example: no example depends on another.
  targets.check_classes(logits_fn, images, settings.num_targets, fewest=4)

  def attack_target(keys, target):
    pairs = jnp.stack([labels, target], axis=-1)
    return settings.program(
      keys, logits_fn, images, pairs, eps=eps, step_size=step_size
    )

  return targets.over_targets(
    attack_target, eot_settings=settings.eot_settings, logits_fn=logits_fn,
    key=key, images=images, labels=labels, num_targets=settings.num_targets,
  )  # fmt: skip
