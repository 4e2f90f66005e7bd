"""The audit's sections: each measures one of the paper's lessons about a
randomized defense and returns its numbers (rates with exact intervals,
paired tests) and a verdict.

Every attack of one audit is judged by `stochjax.evaluate.evaluate_attack`
with the same evaluation key, so all retain the same samples and compare
by exact paired (McNemar) tests on them.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import analysis, arms, attacks, evaluate, prng, stats, voting
from stochjax.data import splits
from stochjax.defenses import core as defense_core

ALPHA = 0.05


@dataclasses.dataclass
class Setting:
  """What one audit evaluates (see `stochjax.audit.audit`)."""

  key: jax.Array
  logits_fn: Any
  images: np.ndarray
  labels: np.ndarray
  defense: Any
  eps: float
  norm: str
  num_votes: int
  batch_size: int
  mesh: Any
  # ``(name, compute) -> value``: a finished evaluation, or ``compute()``
  # recorded as it (`stochjax.harness.workdir.Workdir.cell` resumes an
  # interrupted audit); by default every evaluation is computed.
  cell: Callable[[str, Callable[[], Any]], Any] = lambda name, compute: (
    compute()
  )
  # The evaluations of this audit, by name (what they spent: its cost).
  done: dict = dataclasses.field(default_factory=dict)
  # Positions of the images that calibrate (step choice, screens); None:
  # a third of them, drawn by seed 0 (`splits.calibration_split`).
  calibration: Any = None

  def __post_init__(self):
    if self.calibration is None:
      n = len(self.labels)
      self.calibration = splits.calibration_split(n, 0, max(1, n // 3))[0]

  def cached(self, name: str, compute: Callable[[], Any]) -> Any:
    """Cell `name` of the audit (`cell`), recorded in `done`."""
    self.done[name] = self.cell(name, compute)
    return self.done[name]

  def evaluate(
    self, name: str, attack, *, defended: bool = True
  ) -> evaluate.Evaluation:
    """The protocol's result of `attack` (cached as cell `name`)."""
    cell = self.cached(
      name,
      lambda: evaluate.evaluate_attack(
        prng.stream(self.key, "evaluations"), self.logits_fn, self.images,
        self.labels,
        attack=attack, defense=self.defense if defended else None,
        num_votes=self.num_votes if defended else 1,
        batch_size=self.batch_size, mesh=self.mesh,
      ).to_json(),
    )  # fmt: skip
    return evaluate.Evaluation.from_json(cell)

  def map(self, fn, key, desc: str) -> np.ndarray:
    """`voting.map_images` of ``fn([keys,] logits_fn, images)`` over
    the audit's images, in its batches on its mesh."""
    return voting.map_images(
      fn, key, self.logits_fn, self.images, batch_size=self.batch_size,
      mesh=self.mesh, desc=desc,
    )  # fmt: skip

  def pgd(self, *, eps=None, fraction=0.25, steps=10, eot_samples=1,
          defended=True, **kw):  # fmt: skip
    """PGD-steps x EOT-eot_samples at `fraction` x eps, through the defense
    when `defended` (or through ``kw["defense"]``)."""
    eps = self.eps if eps is None else eps
    kw.setdefault("defense", self.defense if defended else None)
    return attacks.make_pgd(
      eps=eps, step_size=eps * fraction, num_steps=steps, norm=self.norm,
      eot_samples=eot_samples, **kw,
    )  # fmt: skip


def rate(result: evaluate.Evaluation, label: str) -> dict:
  """An evaluation's success as ``stats.side`` (rate, interval, counts)."""
  outcome = result.attack
  return stats.side(label, outcome.successes, len(outcome.per_sample))


def paired(label_a, result_a, label_b, result_b) -> dict:
  """The exact paired test of two evaluations on the same samples."""
  return stats.compare(
    label_a, list(result_a.attack.per_sample),
    label_b, list(result_b.attack.per_sample),
    paired=True,
  )  # fmt: skip


def accuracy(s: Setting) -> dict:
  """Clean accuracy and the defended vote's, each with its interval."""
  n = len(s.labels)
  clean = s.map(voting.predict, None, "clean") == s.labels
  defense = defense_core.resolve(s.defense)
  voted = s.map(
    lambda keys, f, x: voting.vote(
      keys, f, x, defense=defense, num_votes=s.num_votes
    ),
    prng.stream(s.key, "votes"),
    "votes",
  )
  defended = voted == s.labels
  drop = stats.compare(
    "clean", clean.tolist(), "defended", defended.tolist(), paired=True
  )
  return {
    "clean": stats.side("clean", int(clean.sum()), n),
    "defended": stats.side("defended", int(defended.sum()), n),
    "test": drop,
    "verdict": "the defense costs accuracy"
    if drop["verdict"] == "a"
    else "no significant accuracy cost",
  }


def randomness(s: Setting, num_draws: int) -> dict:
  """How much the defense moves the model: the fraction of draws that
  change the clean prediction, the spread of the logits over draws, and
  the Section 5 trade-off (randomness that moves predictions is what
  costs accuracy)."""
  defense = defense_core.resolve(s.defense)
  kept = s.map(
    lambda keys, f, x: voting.invariance(
      keys, f, x, defense=defense, num_draws=num_draws
    ),
    prng.stream(s.key, "invariance"),
    "invariance",
  )
  spread = _logit_spread(prng.stream(s.key, "logit_spread"), s, num_draws)
  changed = float(1.0 - kept.mean())
  if changed == 0.0 and spread == 0.0:
    verdict = "none: the defense does not move the model"
  elif changed < 0.05:
    verdict = "low: the model is (nearly) invariant to the defense"
  else:
    verdict = "high: the defense changes predictions"
  return {
    "changed_fraction": changed,
    "changed_ci": list(
      stats.rate_interval(
        int(round(changed * num_draws * len(kept))), num_draws * len(kept)
      )
    ),
    "always_kept": float(np.mean(kept == 1.0)),
    "invariance_per_sample": kept.tolist(),
    "logit_spread": spread,
    "num_draws": num_draws,
    "verdict": verdict,
  }


def _logit_spread(key, s: Setting, num_draws: int) -> float:
  """Mean over images of the logits' standard deviation across draws,
  relative to the clean logits' spread across classes (0: the defense
  leaves the logits alone). Draws run one at a time (memory: one draw per
  image of a batch)."""
  moments = s.map(
    functools.partial(
      _draw_moments, defense=defense_core.resolve(s.defense),
      num_draws=num_draws,
    ),
    key,
    "logit spread",
  )  # fmt: skip
  mean, second, clean = np.moveaxis(np.asarray(moments, np.float64), 1, 0)
  std = np.sqrt(np.maximum(second - mean**2, 0.0)).mean(axis=1)
  scale = clean.std(axis=1)
  return float(np.mean(std / np.maximum(scale, 1e-12)))


@functools.partial(jax.jit, static_argnames=("defense", "num_draws"))
def _draw_moments(keys, logits_fn, images, *, defense, num_draws):
  """``(N, 3, K)``: per image the mean and mean square of the defended
  logits' difference from draw 0 over `num_draws` draws (exactly 0 when
  every draw is the same: no cancellation error), and the clean logits."""
  defended = defense_core.defended_logits(logits_fn, defense)
  first = defended(prng.fold_each(keys, 0), images).astype(jnp.float32)

  def one(totals, j):
    shift = defended(prng.fold_each(keys, j), images).astype(jnp.float32)
    shift = shift - first
    return (totals[0] + shift, totals[1] + shift**2), None

  zeros = jnp.zeros_like(first)
  draws = jnp.arange(1, num_draws, dtype=jnp.uint32)
  (total, squares), _ = jax.lax.scan(one, (zeros, zeros), draws)
  clean = logits_fn(images).astype(jnp.float32)
  return jnp.stack([total / num_draws, squares / num_draws, clean], axis=1)


def adaptive_vs_transfer(s: Setting, steps: int, eot_samples: int) -> dict:
  """The non-adaptive attack (PGD on the undefended model, its images
  judged through the defense) against the adaptive one (PGD x EOT through
  the defense), at the same eps and budget per draw."""
  transfer = s.evaluate(
    "transfer", s.pgd(steps=steps, defended=False)
  )  # A point attack on the bare model, judged by the defended vote.
  adaptive = s.evaluate("adaptive", s.pgd(steps=steps, eot_samples=eot_samples))
  test = paired(
    f"transfer PGD-{steps}", transfer,
    f"adaptive PGD-{steps} x EOT-{eot_samples}", adaptive,
  )  # fmt: skip
  return {
    "transfer": test["a"],
    "adaptive": test["b"],
    "test": test,
    "verdict": {
      "a": "transfer stronger than adaptive: gradient masking?",
      "b": "the adaptive attack is needed",
      "tie": "transfer as strong as adaptive",
    }[test["verdict"]],
  }


def eot_needed(s: Setting, budgets, eot_samples: int, small_fraction: float,
               fractions=(0.25, 0.5)) -> dict:  # fmt: skip
  """EOT against no EOT at each budget k x m, decided as the claims are
  (docs/analysis_plan.md; `stochjax.arms.compare`): PGD-budget without EOT
  at steps `fractions` and `small_fraction` of eps, PGD-(budget / m) x
  EOT-m at steps `fractions`, each side at the step its calibration images
  choose (``s.calibration``); on the evaluation images the interval of
  EOT − no EOT (Bonferroni over the budgets) against the plan's margin.
  EOT is needed where the plan's claim (i) is "not supported" (EOT
  stronger), not needed where every budget supports it."""
  plan = analysis.PLAN
  level = 1 - 2 * plan.alpha / len(budgets)
  rows, decisions = [], []
  for budget in budgets:
    k = budget // eot_samples
    found = [
      arms.arm(
        s.evaluate(f"eot/k={k}/m={eot_samples}/step={f:g}",
                   s.pgd(steps=k, eot_samples=eot_samples, fraction=f)),
        s.calibration, defense="audit", goal="untargeted", k=k,
        m=eot_samples, step_fraction=f,
      )
      for f in fractions
    ] + [
      arms.arm(
        s.evaluate(f"no_eot/k={budget}/step={f:g}",
                   s.pgd(steps=budget, fraction=f)),
        s.calibration, defense="audit", goal="untargeted", k=budget, m=1,
        step_fraction=f,
      )
      for f in (*fractions, small_fraction)
    ]  # fmt: skip
    record = arms.compare(
      [(0, found)],
      "audit",
      "untargeted",
      (budget, 1),
      (k, eot_samples),
      level=level,
      plan=plan,
    )
    record |= {"budget": budget,
               "decision": analysis.claim_i(record["region"])}  # fmt: skip
    rows.append(record)
    decisions.append(record["decision"])
  needed = [r["budget"] for r in rows if r["decision"] == "not supported"]
  if needed:
    verdict = (
      "EOT needed: EOT is stronger (beyond the margin) at budget "
      + ", ".join(map(str, needed))
    )
  elif all(d == "supported" for d in decisions):
    verdict = "EOT not needed: no EOT is within the margin at every budget"
  else:
    verdict = "undecided: " + ", ".join(
      f"budget {r['budget']}: {r['words']}" for r in rows
    )
  return {"comparisons": rows, "needed_at_budgets": needed, "verdict": verdict}


def robustness_source(s: Setting, steps: int, eot_samples: int) -> dict:
  """The same PGD on the undefended model at the same eps (the model's
  own robustness) against the adaptive attack on the defended one."""
  bare = s.evaluate("undefended", s.pgd(steps=steps, defended=False),
                    defended=False)  # fmt: skip
  adaptive = s.evaluate("adaptive", s.pgd(steps=steps, eot_samples=eot_samples))
  bare_rate, defended_rate = (
    rate(bare, "undefended"),
    rate(adaptive, "defended"),
  )
  test = stats.compare(
    "undefended", list(bare.attack.per_sample),
    "defended", list(adaptive.attack.per_sample),
    paired=False,
  )  # fmt: skip
  if bare_rate["rate"] < 0.5:
    verdict = "the model itself is robust at this eps"
  elif test["verdict"] == "a":
    verdict = "the defense adds robustness"
  else:
    verdict = "no robustness beyond the model's"
  return {"undefended": bare_rate, "defended": defended_rate, "test": test,
          "verdict": verdict}  # fmt: skip


def blackbox(s: Setting, queries: int, eot_samples: int, steps: int,
             adaptive_draws: int) -> dict:  # fmt: skip
  """Square (score-based, one draw per query) against EOT-Square (m draws
  per query, a m-th of the queries: equal forward passes), and both
  against the adaptive white-box attack. A black-box attack that beats the
  white-box one is AutoAttack's sign of masked gradients."""

  def square(m):
    return attacks.make_square(
      eps=s.eps, norm=s.norm, num_queries=queries // m, eot_samples=m,
      defense=s.defense,
    )  # fmt: skip

  plain = s.evaluate("blackbox/square", square(1))
  averaged = s.evaluate("blackbox/eot_square", square(eot_samples))
  adaptive = s.evaluate(
    "adaptive", s.pgd(steps=steps, eot_samples=adaptive_draws)
  )
  best = max((plain, averaged), key=lambda r: r.attack.successes)
  eot = paired(f"Square, {queries} queries", plain,
               f"EOT-Square, {queries // eot_samples} queries x "
               f"{eot_samples} draws", averaged)  # fmt: skip
  white = paired("the stronger Square", best,
                 f"adaptive PGD-{steps} x EOT-{adaptive_draws}", adaptive)  # fmt: skip
  if white["verdict"] == "a":
    verdict = (
      "a black-box attack beats the white-box one: suspect masked gradients"
    )
  elif eot["verdict"] == "b":
    verdict = "EOT averaging strengthens the black-box attack"
  elif eot["verdict"] == "a":
    verdict = "one draw per query beats EOT averaging at this budget"
  else:
    verdict = "EOT averaging does not change the black-box attack"
  return {"square": eot["a"], "eot_square": eot["b"], "eot_test": eot,
          "whitebox_test": white, "verdict": verdict}  # fmt: skip


def _check(name: str, passed: bool, **numbers) -> dict:
  return {"name": name, "passed": bool(passed), **numbers}


def sanity(
  s: Setting,
  steps: int,
  eot_samples: int,
  scales,
  transfer: dict,
  blackbox_record: dict | None = None,
) -> dict:
  """Carlini et al. (2019)'s checks on the adaptive attack (PGD x EOT):

  * success rises with eps (no radius significantly weaker than a smaller
    one, paired) and reaches >= 95 % at the largest (`scales` x eps,
    capped at the whole pixel range);
  * an unbounded attack (eps = 1) succeeds on >= 99 % of samples;
  * more steps never lose (2k steps with best points is not significantly
    weaker than k);
  * the transfer attack does not beat the white-box one (`transfer`: the
    `adaptive_vs_transfer` record), nor does a black-box one
    (`blackbox_record`, when given);
  * gradients through the defense are not beaten by BPDA's identity.
  """
  radii = sorted({min(1.0, s.eps * c) for c in scales})
  by_eps = [
    s.evaluate(
      f"sanity/eps={r:g}", s.pgd(eps=r, steps=steps, eot_samples=eot_samples)
    )
    for r in radii
  ]
  drops = [
    paired(f"eps {radii[i]:g}", by_eps[i], f"eps {radii[i + 1]:g}",
           by_eps[i + 1])
    for i in range(len(radii) - 1)
  ]  # fmt: skip
  largest = rate(by_eps[-1], f"eps {radii[-1]:g}")
  unbounded = rate(
    s.evaluate(
      "sanity/unbounded", s.pgd(eps=1.0, steps=steps, eot_samples=eot_samples)
    ),
    "eps 1",
  )
  short = s.evaluate(
    "sanity/best/k",
    s.pgd(steps=steps, eot_samples=eot_samples, best_point=True),
  )
  longer = s.evaluate(
    "sanity/best/2k",
    s.pgd(steps=2 * steps, eot_samples=eot_samples, best_point=True),
  )
  more_steps = paired(f"PGD-{steps}", short, f"PGD-{2 * steps}", longer)
  bpda = s.evaluate(
    "sanity/bpda",
    s.pgd(steps=steps, eot_samples=eot_samples,
          defense=defense_core.bpda(defense_core.resolve(s.defense))),
  )  # fmt: skip
  exact = s.evaluate("adaptive", s.pgd(steps=steps, eot_samples=eot_samples))
  gradients = paired("BPDA identity", bpda, "the defense's gradients", exact)
  checks = [
    _check("success rises with eps", all(d["verdict"] != "a" for d in drops),
           radii=radii, rates=[rate(r, "")["rate"] for r in by_eps],
           tests=drops),  # fmt: skip
    _check("reaches ~100 % at a large eps", largest["rate"] >= 0.95,
           largest=largest),  # fmt: skip
    _check("an unbounded attack succeeds", unbounded["rate"] >= 0.99,
           unbounded=unbounded),  # fmt: skip
    _check("more steps never lose", more_steps["verdict"] != "a",
           test=more_steps),  # fmt: skip
    _check("transfer does not beat white-box",
           transfer["test"]["verdict"] != "a", test=transfer["test"]),
    _check("BPDA does not beat the defense's gradients",
           gradients["verdict"] != "a", test=gradients),
  ]  # fmt: skip
  if blackbox_record is not None:
    test = blackbox_record["whitebox_test"]
    checks.append(_check("black-box does not beat white-box",
                         test["verdict"] != "a", test=test))  # fmt: skip
  failed = [c["name"] for c in checks if not c["passed"]]
  return {
    "checks": checks,
    "verdict": "all passed"
    if not failed
    else f"failed: {'; '.join(failed)} (suspect gradient masking or a weak "
    "attack)",
  }
