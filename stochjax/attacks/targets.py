"""AutoAttack's loop over target classes (APGD-T, FAB-T), shared.

The targets are the classes other than the label ranked highest by the
clean image's logits (their mean over the EOT draws under a defense): for
a correctly classified image, those ranked 2nd, 3rd, ..., as AutoAttack's. Each target's run
returns a point; the point is evaluated on m fresh draws and an example
keeps its first point that most draws misclassify, otherwise the best so
far (most draws meeting the goal, then the margin loss). The remaining
targets run only while some example of the batch is unbroken, and an
example broken on the clean image (by the draws' vote) is never attacked.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from stochjax import prng
from stochjax.attacks import best as best_lib
from stochjax.attacks import eot as eot_lib
from stochjax.attacks import loops, results
from stochjax.defenses import core as defense_core


def check_classes(logits_fn, images, num_targets: int, fewest: int) -> None:
  """Raises ValueError (at trace time) when the model has too few classes."""
  k = jax.eval_shape(logits_fn, images).shape[-1]
  need = max(num_targets + 1, fewest)
  if k < need:
    raise ValueError(
      f"{num_targets} targets need at least {need} classes; the model has {k}."
    )


def over_targets(
  attack_target: Callable[[jax.Array, jax.Array], results.Run],
  *,
  eot_settings: tuple,
  logits_fn,
  key,
  images: jax.Array,
  labels: jax.Array,
  num_targets: int,
) -> results.Run:
  """Runs ``attack_target(keys (N,), targets (N,)) -> results.Run`` for
  each of the top `num_targets` other classes (see the module docstring).

  Args:
    attack_target: one target's run; its ``losses``/``goal_rates`` are
      ``(1, T, N)``.
    eot_settings: `eot_lib.make_eot` keyword arguments but `logits_fn`, as
      items, with the margin loss (the ranking evaluation).
    logits_fn, key, images, labels: the attack call's (labels: true
      classes).
    num_targets: how many targets.

  Returns:
    The `results.Run` with ``losses (num_targets, T, N)``, the targets'
    gradient evaluations and forward passes added up, with the ranking's
    and the checks' (m each).
  """
  eot = eot_lib.make_eot(**dict(eot_settings), logits_fn=logits_fn)
  m = dict(eot_settings)["eot_samples"]
  keys = prng.per_example(key, images.shape[0])
  choose_keys, check_keys, attack_keys = prng.split_each(keys, 3)
  defended = defense_core.defended_draws(
    logits_fn, dict(eot_settings)["defense"]
  )
  mean_logits = jnp.mean(
    defended(choose_keys, jnp.arange(m, dtype=jnp.uint32), images), axis=0
  )
  # The top other classes: the label is masked (under EOT the mean logits
  # may rank another class above it on a point most draws classify right).
  is_label = jax.nn.one_hot(labels, mean_logits.shape[-1], dtype=bool)
  others = jnp.where(is_label, -jnp.inf, mean_logits)
  targets = jnp.argsort(-others, axis=-1)[:, :num_targets]
  clean = eot.statistics(images, prng.fold_each(check_keys, 0), labels)
  start = best_lib.best_of(images, clean, targeted=False)
  per_target = prng.per_restart(attack_keys, num_targets)

  def target(carry, r):
    best, grads, forwards = carry
    out = attack_target(per_target[r], targets[:, r])
    x = jax.lax.stop_gradient(out.images)
    stats = eot.statistics(x, prng.fold_each(check_keys, r + 1), labels)
    point = best_lib.best_of(x, stats, targeted=False)
    done = best_lib.met_vote(best)
    candidate = jax.tree.map(
      lambda a, b: best_lib.where_examples(done, a, b), best, point
    )
    best = best_lib.keep_better(best, candidate)
    carry = (best, grads + out.grad_evals, forwards + out.forward_evals + m)
    return carry, (out.losses[0], out.goal_rates[0])

  zero = jnp.zeros((), jnp.int32)
  init = (start, zero, zero + 2 * m)  # The ranking and the clean check.
  body = loops.skip_when(
    lambda c: jnp.all(best_lib.met_vote(c[0])), target, init, jnp.uint32(0)
  )
  (best, grads, forwards), (losses_, rates) = jax.lax.scan(
    body, init, jnp.arange(num_targets, dtype=jnp.uint32)
  )
  return results.Run(
    jax.lax.stop_gradient(best.x), losses_, rates, grads, forwards
  )
