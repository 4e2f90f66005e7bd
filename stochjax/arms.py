"""Arms and their paired comparison under the analysis plan.

An arm is one attack (defense, goal, k, m, step fraction) evaluated on a
run's images: its success on the retained calibration images and its
per-image outcomes on the retained evaluation images. `arm` builds one
from an `evaluate.Evaluation` and the calibration positions; `compare`
takes the arms of one or more seeds, chooses each side's step on the
calibration images (`analysis.choose_step`), screens (too few retained,
saturated calibration rates), pools the seeds' evaluation pairs and
returns the plan's record: both rates, the Newcombe interval of EOT − no
EOT at the given level, the exact one-sided and two-sided McNemar p, the
region and its words. The claims' verdicts (`stochjax.harness.verdicts`)
and the audit's "EOT needed?" both decide through it.
"""

import hashlib

import numpy as np

from stochjax import analysis, evaluate, stats

METHOD = "Newcombe (1998) hybrid score interval for paired proportions"


def arm(result: evaluate.Evaluation, calibration, **attack) -> dict:
  """The arm of `result`: `attack`'s fields (defense, goal, k, m,
  step_fraction, ablation), success on the retained images at positions
  in `calibration`, and per-image outcomes on the other retained images."""
  calibration = {int(i) for i in calibration}
  outcomes = dict(
    zip(result.retained_indices, result.attack.per_sample, strict=True)
  )
  cal = [v for i, v in outcomes.items() if i in calibration]
  evaluation = sorted(i for i in outcomes if i not in calibration)
  return {
    **attack,
    "calibration": {"successes": int(sum(cal)), "n": len(cal)},
    "evaluation": {
      "indices": evaluation,
      "per_sample": [bool(outcomes[i]) for i in evaluation],
    },
  }


def by_attack(arms: list[dict]) -> dict:
  return {
    (a["defense"], a["goal"], a["k"], a["m"], a["step_fraction"],
     a.get("ablation", False)): a
    for a in arms
  }  # fmt: skip


def arm_key(a: dict) -> tuple:
  """An arm's identity within one seed: its attack (`by_attack`'s key) and,
  for the blackbox runs, which Square it is."""
  return (*next(iter(by_attack([a]))), a.get("attack", ""))


def pooled_by_seed(
  runs, experiments, field: str, key
) -> list[tuple[int, list]]:
  """``[(seed, entries)]``: `field` (arms, gap_arms, eps_arms) of the runs
  of `experiments`, by seed. Runs of one seed are parts of one run (a
  config split by defense, as ``table2`` and ``table2:network``; fig1 and
  fig2 for claim (ii)'s contrast): they must evaluate the same split and
  hold different entries.

  Raises:
    ValueError: two runs of one seed with different splits, or holding the
      same entry (a run reported twice, say an old and a new workdir).
  """
  by_seed: dict = {}
  where: dict = {}
  splits: dict = {}
  for r in sorted((r for r in runs if r.experiment in experiments),
                  key=lambda r: (r.seed, r.workdir)):  # fmt: skip
    split = r.results.get("split")
    first = splits.setdefault(r.seed, (split, r.workdir))
    if split is not None and first[0] is not None and split != first[0]:
      raise ValueError(
        f"{first[1]} and {r.workdir} (seed {r.seed}) evaluate different "
        "images (their splits differ): they cannot be pooled or paired."
      )
    for entry in r.results.get(field, []):
      k = (r.seed, key(entry))
      if k in where:
        raise ValueError(
          f"{where[k]} and {r.workdir} both hold {field} {k[1]} of "
          f"{'/'.join(experiments)}, seed {r.seed}: report one of them."
        )
      where[k] = r.workdir
      by_seed.setdefault(r.seed, []).append(entry)
  return sorted(by_seed.items())


def _rate(count: dict) -> float:
  return count["successes"] / count["n"] if count["n"] else 0.0


def _side(arms, defense, goal, k, m, fractions, ablation=False):
  """The arm of attack (k, m) at the step its calibration images choose
  among `fractions`, and the step record; None when an arm is missing
  (or no step was run at all)."""
  found = [arms.get((defense, goal, k, m, f, ablation)) for f in fractions]
  if not found or any(a is None for a in found):
    return None
  rates = [_rate(a["calibration"]) for a in found]
  chosen = analysis.choose_step(list(fractions), rates)
  step = {"candidates": list(fractions), "calibration_rates": rates,
          "chosen": chosen}  # fmt: skip
  return found[list(fractions).index(chosen)], step


def _pair(arm_a: dict, arm_b: dict) -> tuple[np.ndarray, np.ndarray, list]:
  ea, eb = arm_a["evaluation"], arm_b["evaluation"]
  if ea["indices"] != eb["indices"]:
    raise ValueError("Paired arms retained different evaluation images.")
  return (np.asarray(ea["per_sample"], bool),
          np.asarray(eb["per_sample"], bool), ea["indices"])  # fmt: skip


def _digest(indices) -> str:
  return hashlib.sha256(np.asarray(indices, np.int64).tobytes()).hexdigest()


def _label(k: int, m: int, steps: list[dict]) -> str:
  """``PGD-k x EOT-m, step eps*f`` (per seed when several seeds)."""
  chosen = ", ".join(f"eps*{s['chosen']:g}" for s in steps)
  return f"PGD-{k} x EOT-{m}, step {chosen}"


def fractions(arms: list[dict], defense: str, goal: str, k: int, m: int):
  return sorted(
    {a["step_fraction"] for a in arms
     if (a["defense"], a["goal"], a["k"], a["m"]) == (defense, goal, k, m)
     and not a.get("ablation", False)}
  )  # fmt: skip


def compare(seeded, defense, goal, no_eot, eot, *, level, plan=analysis.PLAN,
            fixed=None, ablation=False) -> dict | None:  # fmt: skip
  """One comparison, pooled over `seeded` (``[(seed, arms)]``, one
  experiment's seeds): each side
  at its calibration-chosen step (or the `fixed` fraction for both;
  `ablation`: the no-EOT side is Table 2's long run at its own step).
  Returns the record, None when a run lacks an arm."""
  per_seed, pooled_a, pooled_b, screens = [], [], [], []
  steps = {"a": [], "b": []}
  for seed, run_arms in seeded:
    arms = by_attack(run_arms)
    fa = [fixed] if fixed is not None else fractions(run_arms, defense,
                                                      goal, *no_eot)  # fmt: skip
    if ablation:
      fa = sorted({a["step_fraction"] for a in run_arms
                   if a["defense"] == defense and a.get("ablation")})  # fmt: skip
    fb = [fixed] if fixed is not None else fractions(run_arms, defense,
                                                      goal, *eot)  # fmt: skip
    side_a = _side(arms, defense, goal, *no_eot, fa, ablation)
    side_b = _side(arms, defense, goal, *eot, fb)
    if side_a is None or side_b is None:
      return None
    (arm_a, step_a), (arm_b, step_b) = side_a, side_b
    a, b, indices = _pair(arm_a, arm_b)
    rate_a, rate_b = _rate(arm_a["calibration"]), _rate(arm_b["calibration"])
    screen = []
    if len(a) < plan.min_retained:
      screen.append(f"seed {seed}: {len(a)} retained < {plan.min_retained}")
    if analysis.saturated(rate_a, rate_b, plan):
      screen.append(
        f"seed {seed}: saturated on calibration images "
        f"({100 * rate_a:.0f} %, {100 * rate_b:.0f} %)"
      )
    screens += screen
    estimate, low, high = stats.paired_difference_interval(a, b, level)
    per_seed.append({
      "seed": seed,
      "n": len(a),
      "difference": {"estimate": estimate, "ci": [low, high]},
      "region": "untestable" if screen else analysis.region(low, high,
                                                           plan.margin),
      "step_a": step_a,
      "step_b": step_b,
      "evaluation_indices_sha256": _digest(indices),
      "calibration_n": [arm_a["calibration"]["n"], arm_b["calibration"]["n"]],
    })  # fmt: skip
    steps["a"].append(step_a)
    steps["b"].append(step_b)
    pooled_a.append(a)
    pooled_b.append(b)
  if not per_seed:
    return None
  a, b = np.concatenate(pooled_a), np.concatenate(pooled_b)
  estimate, low, high = stats.paired_difference_interval(a, b, level)
  region = "untestable" if screens else analysis.region(low, high, plan.margin)
  record = {
    "defense": defense,
    "goal": goal,
    "seeds": [s["seed"] for s in per_seed],
    "a": stats.side(_label(*no_eot, steps["a"]), int(a.sum()), a.size)
    | {"step": steps["a"][0] if len(per_seed) == 1 else steps["a"]},
    "b": stats.side(_label(*eot, steps["b"]), int(b.sum()), b.size)
    | {"step": steps["b"][0] if len(per_seed) == 1 else steps["b"]},
    "difference": {"estimate": estimate, "ci": [low, high], "level": level,
                   "method": METHOD},
    "only_a": stats.discordant(a, b)[0],
    "only_b": stats.discordant(a, b)[1],
    "p_one_sided": stats.mcnemar_one_sided(a, b),
    "p_two_sided": stats.paired_test(a, b),
    "margin": plan.margin,
    "region": region,
    "words": analysis.comparison_words(region),
    "screens": screens,
    "per_seed": per_seed,
  }  # fmt: skip
  return record


def gains(run_arms: list[dict], defense: str, goal: str, no_eot, eot):
  """``{evaluation position: g}``: the per-image EOT gain g = success(EOT)
  - success(no EOT) in {-1, 0, 1}, each side at its calibration-chosen
  step; None when an arm is missing."""
  by = by_attack(run_arms)
  a = _side(by, defense, goal, *no_eot, fractions(run_arms, defense, goal,
                                                   *no_eot))  # fmt: skip
  b = _side(by, defense, goal, *eot, fractions(run_arms, defense, goal, *eot))
  if a is None or b is None:
    return None
  x, y, indices = _pair(a[0], b[0])
  return dict(zip(indices, (y.astype(int) - x.astype(int)).tolist(),
                  strict=True))  # fmt: skip


def contrast(seeded, strong: str, weak: str, goal: str, no_eot, eot, *,
             plan=analysis.PLAN) -> dict | None:  # fmt: skip
  """Claim (ii)'s contrast (secondary, docs/analysis_plan.md section 6): on
  images retained under both defenses, the mean of g_strong - g_weak (the
  per-image EOT gains), its exact one-sided sign-flip p ("EOT helps more
  under `strong`") and a percentile bootstrap 95 % interval. The defenses'
  models and eps differ; the images are the same."""
  differences = []
  for _, run_arms in seeded:
    g_strong = gains(run_arms, strong, goal, no_eot, eot)
    g_weak = gains(run_arms, weak, goal, no_eot, eot)
    if g_strong is None or g_weak is None:
      return None
    common = sorted(set(g_strong) & set(g_weak))
    differences.append(np.array([g_strong[i] - g_weak[i] for i in common]))
  if not differences:  # No run of either defense.
    return None
  d = np.concatenate(differences)
  mean, low, high = stats.bootstrap_interval(
    d, 0.95, num_resamples=plan.bootstrap_resamples, seed=plan.bootstrap_seed
  )
  return {
    "strong": strong, "weak": weak, "goal": goal, "n": int(d.size),
    "difference": {"estimate": mean, "ci": [low, high], "level": 0.95,
                   "method": "percentile bootstrap of mean g_strong - g_weak"},
    "p_one_sided": stats.sign_flip_test(d.astype(int)),
    "test": "exact one-sided sign-flip permutation test",
  }  # fmt: skip
