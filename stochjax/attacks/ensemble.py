"""AutoAttack (Croce & Hein 2020): an ensemble of parameter-free attacks,
each run only on the points the earlier ones left unbroken, as one `jit`.

* ``version="standard"``: APGD-CE, APGD-T (9 targets), FAB-T (9 targets),
  Square (5,000 queries, the unrescaled schedule), 100 iterations each,
  one restart. Before it runs, AutoAttack's randomness check: 5 draws of
  the (defended) model on the clean images; a `RandomizedDefenseWarning`
  names ``version="rand"`` when predictions or normalized logits differ.
* ``version="rand"``: APGD-CE and APGD-DLR with EOT over 20 draws, 100
  iterations. Unlike AutoAttack's code, where best-loss tracking, step-size
  halving and the "broken" flag come from the last single stochastic pass
  (its PRs #104/#105: "inflated success rate"), every decision here uses the
  EOT mean over the step's draws and their goal rate, and a point counts
  as broken only when most draws misclassify it. The final robustness is
  for the evaluation to judge: `stochjax.evaluate` votes over n fresh
  draws and reports intervals.

"Broken" between components is the vote of m fresh draws of the point a
component returns (one forward pass each when m = 1), and a component runs
only while some point of the batch is unbroken; a point broken earlier is
kept. The attack's ``with_info`` losses hold, per component, whether each
point was broken after it (``(components, 1, N)``), its goal rates the
draws' fraction.

References:
  Croce, Hein. Reliable evaluation of adversarial robustness with an
  ensemble of diverse parameter-free attacks. ICML 2020.
  https://arxiv.org/abs/2003.01690
"""

import dataclasses
import functools
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import prng, types
from stochjax.attacks import apgd, apgd_t, fab, loops, parameters, results
from stochjax.attacks import attack as attack_lib
from stochjax.attacks import best as best_lib
from stochjax.attacks import eot as eot_lib
from stochjax.attacks import square as square_lib
from stochjax.defenses import core as defense_core

VERSIONS = ("standard", "rand")
COMPONENTS = {
  "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
  "rand": ("apgd-ce", "apgd-dlr"),
}
_CHECK_STREAM = 0x5EED  # the randomness check's draws: fold of the keys.


class RandomizedDefenseWarning(UserWarning):
  """AutoAttack's standard version met a model whose outputs vary."""


@dataclasses.dataclass(frozen=True)
class _Ensemble:
  """The static settings of one AutoAttack (see `autoattack`)."""

  components: tuple  # (name, shared jitted run, its bound arguments)
  ranking_settings: tuple  # `eot_lib.make_eot` arguments, margin loss.


def autoattack(
  *,
  eps: float,
  norm: str = "linf",
  version: str = "standard",
  defense: types.Defense | None = None,
  eot_samples: int | None = None,
  eot_chunk_size: int | None = None,
  num_steps: int = 100,
  num_queries: int = 5000,
  num_targets: int = 9,
) -> attack_lib.Attack:
  """Builds AutoAttack (see the module docstring); labels are the true
  classes.

  Args:
    eps: the threat model's radius in [0, 1] pixel units.
    norm: "linf" or "l2".
    version: "standard" or "rand".
    defense: ``(key, image) -> image``; None attacks the bare model.
    eot_samples: draws per gradient, query and vote (default: 1 for
      standard, 20 for rand).
    eot_chunk_size: draws evaluated at once; divides `eot_samples`.
    num_steps: iterations of APGD and FAB (100).
    num_queries: Square's queries (5,000).
    num_targets: APGD-T's and FAB-T's targets (9).

  Returns:
    An `attack_lib.Attack` usable wherever PGD is (``evaluate_attack``);
    its cost adds up the components' budgets (each spends less when it
    skips broken batches).

  Raises:
    ValueError: an unknown version or norm, or bad parameters.
  """
  if version not in VERSIONS:
    raise ValueError(
      f"Unknown AutoAttack version {version!r}; valid: {', '.join(VERSIONS)}."
    )
  m = (
    eot_samples if eot_samples is not None else (20 if version == "rand" else 1)
  )
  eot = dict(eot_samples=m, eot_chunk_size=eot_chunk_size, defense=defense)
  built = {
    "apgd-ce": lambda: apgd.make_apgd(
      eps=eps, num_steps=num_steps, norm=norm, loss="ce", **eot
    ),
    "apgd-dlr": lambda: apgd.make_apgd(
      eps=eps, num_steps=num_steps, norm=norm, loss="dlr", **eot
    ),
    "apgd-t": lambda: apgd_t.make_apgd_t(
      eps=eps, num_steps=num_steps, norm=norm, num_targets=num_targets, **eot
    ),
    "fab-t": lambda: fab.make_fab(
      eps=eps, num_steps=num_steps, norm=norm, num_targets=num_targets, **eot
    ),
    "square": lambda: square_lib.make_square(
      eps=eps,
      norm=norm,
      num_queries=num_queries,
      rescale_schedule=False,
      **eot,
    ),  # fmt: skip
  }
  attacks = [(name, built[name]()) for name in COMPONENTS[version]]
  ranking = parameters.check_parameters(
    eps=eps, num_steps=num_steps, restarts=1, norm=norm,
    eot_mode="mean_grad", loss="margin", targeted=False, eot_samples=m,
    eot_chunk_size=eot_chunk_size, defense=defense,
  )  # fmt: skip
  settings = _Ensemble(
    components=tuple(
      (name, a.run.program, tuple(sorted(a.run.arguments.items())))
      for name, a in attacks
    ),
    ranking_settings=ranking,
  )
  checks = len(attacks) + 1
  return attack_lib.Attack(
    run=loops.shared(_build, settings),
    cost=results.Cost(
      num_steps=num_steps, eot_samples=m, restarts=len(attacks),
      grad_evals=sum(a.cost.grad_evals for _, a in attacks),
      forward_evals=sum(a.cost.forward_evals for _, a in attacks) + checks * m,
    ),
    loss="margin", targeted=False,
    host_check=(
      functools.partial(check_randomness, defense=defense)
      if version == "standard" else None
    ),
  )  # fmt: skip


def check_randomness(
  key: types.PRNGKey,
  logits_fn,
  images: jax.Array,
  labels: jax.Array,
  *,
  defense: types.Defense | None = None,
  passes: int = 5,
  tolerance: float = 1e-4,
) -> bool:
  """AutoAttack's randomness check: `passes` draws of the defended model on
  `images`; warns (`RandomizedDefenseWarning`) and returns True when the
  number of correct predictions or any L2-normalized logit vector differs
  between draws (by more than `tolerance`).
  """
  keys = prng.fold_each(prng.per_example(key, images.shape[0]), _CHECK_STREAM)
  logits = _draws(
    logits_fn, defense_core.resolve(defense), keys, images, passes
  )
  logits = np.asarray(logits, np.float64)
  correct = (logits.argmax(-1) == np.asarray(labels)[None]).sum(-1)
  unit = logits / (np.linalg.norm(logits, axis=-1, keepdims=True) + 1e-10)
  spread = np.max(np.linalg.norm(unit[:, None] - unit[None], axis=-1))
  varies = bool(np.any(correct != correct[-1]) or spread > tolerance)
  if varies:
    warnings.warn(
      "The model's outputs vary between passes: it seems to be a randomized "
      'defense. Use autoattack(..., version="rand") (EOT over draws, '
      "decisions on the draws' vote).",
      RandomizedDefenseWarning,
      stacklevel=4,
    )
  return varies


@functools.partial(jax.jit, static_argnames=("defense", "passes"))
def _draws(logits_fn, defense, keys, images, passes):
  defended = defense_core.defended_draws(logits_fn, defense)
  return defended(keys, jnp.arange(passes, dtype=jnp.uint32), images)


def _build(settings: _Ensemble) -> Callable:
  return jax.jit(functools.partial(_run, settings))


def _run(settings: _Ensemble, key, logits_fn, images, labels,
         valid=None) -> results.Run:  # fmt: skip
  """The jitted body: components in turn on the unbroken points."""
  n = images.shape[0]
  check = eot_lib.make_eot(
    **dict(settings.ranking_settings), logits_fn=logits_fn
  ).statistics
  m = dict(settings.ranking_settings)["eot_samples"]
  keys = prng.per_example(key, n)
  check_keys, attack_keys = prng.split_each(keys)
  clean = check(images, prng.fold_each(check_keys, 0), labels)
  best = best_lib.best_of(images, clean, targeted=False)
  zero = jnp.zeros((), jnp.int32)
  grads, forwards = zero, zero + m
  broken, rates = [], []
  for c, (_, program, arguments) in enumerate(settings.components):

    def component(best, c=c, program=program, arguments=arguments):
      out = program(
        prng.fold_each(attack_keys, c), logits_fn, images, labels,
        **dict(arguments),
      )  # fmt: skip
      x = jax.lax.stop_gradient(out.images)
      stats = check(x, prng.fold_each(check_keys, c + 1), labels)
      point = best_lib.best_of(x, stats, targeted=False)
      done = best_lib.met_vote(best)
      take = ~done & best_lib.better(point, best)
      best = jax.tree.map(
        lambda a, b: best_lib.where_examples(take, a, b), point, best
      )
      return best, out.grad_evals, out.forward_evals + m

    def skip(best):
      return best, zero, zero

    best, g, f = jax.lax.cond(
      jnp.all(best_lib.met_vote(best)), skip, component, best
    )
    grads, forwards = grads + g, forwards + f
    broken.append(best_lib.met_vote(best).astype(jnp.float32))
    rates.append(best.goal_rate)
  del valid
  return results.Run(
    jax.lax.stop_gradient(best.x),
    jnp.stack(broken)[:, None],
    jnp.stack(rates)[:, None],
    grads,
    forwards,
  )
