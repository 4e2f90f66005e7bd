"""The blog's black-box claim decided under the analysis plan (amendment
7), from the ``blackbox`` runs' arms (`stochjax.paper.blackbox`).

Per defense: (a) "black-box harder", Square on the undefended network
against Square under the defense; (c) "white-box works", PGD x EOT under
the defense (its step chosen on calibration images) against Square under
it; each on the evaluation images both arms retained, seeds pooled, with
Newcombe's paired interval at the Bonferroni level over the defenses and
the exact one-sided McNemar p (Holm over the defenses) beside it. The
decision is `analysis.blog_claim`'s intersection-union of the two
superiority questions. (b) "EOT averaging recovers it", EOT-Square
against Square at the primary budget, is secondary.
"""

import collections

import numpy as np

from stochjax import analysis, arms, stats

# A superiority question's answer, by the region of its interval of d.
WORDS = {
  "above": "yes",
  "above_within": "yes, by less than the margin",
  "within": "no (within ±margin)",
  "not_above": "no",
  "below": "no (reversed)",
  "inconclusive": "inconclusive",
  "untestable": "untestable",
}


def _evaluation(arm: dict) -> dict:
  return dict(
    zip(arm["evaluation"]["indices"], arm["evaluation"]["per_sample"],
        strict=True)
  )  # fmt: skip


def _find(run_arms, defense, kind, budget=None) -> list[dict]:
  return [
    a for a in run_arms
    if a["defense"] == defense and a.get("attack") == kind
    and (budget is None or a["k"] * a["m"] == budget)
  ]  # fmt: skip


def _rate(arm: dict) -> float:
  cal = arm["calibration"]
  return cal["successes"] / cal["n"] if cal["n"] else 0.0


def _whitebox(run_arms, defense) -> tuple[dict, dict] | None:
  """The PGD x EOT arm at its calibration-chosen step, and the choice."""
  found = sorted(_find(run_arms, defense, "pgd"),
                 key=lambda a: a["step_fraction"])  # fmt: skip
  if not found:
    return None
  fractions = [a["step_fraction"] for a in found]
  chosen = analysis.choose_step(fractions, [_rate(a) for a in found])
  step = {"candidates": fractions, "calibration_rates":
          [_rate(a) for a in found], "chosen": chosen}  # fmt: skip
  return found[fractions.index(chosen)], step


def _sides(run_arms, defense, question, budget):
  """``(arm a, arm b, step)``: the question's two arms in one run (d = b -
  a), or None when one is missing."""
  square = _find(run_arms, defense, "square", budget)
  if question == "blackbox_harder":
    undefended = _find(run_arms, defense, "square_undefended", budget)
    if not (square and undefended):
      return None
    return square[0], undefended[0], None
  if question == "whitebox_works":
    white = _whitebox(run_arms, defense)
    if not (square and white):
      return None
    return square[0], white[0], white[1]
  eot = _find(run_arms, defense, "eot_square", budget)  # "eot_recovers"
  if not (square and eot):
    return None
  return square[0], eot[0], None


def _label(arm: dict) -> str:
  if arm["attack"] == "pgd":
    return (f"PGD-{arm['k']} x EOT-{arm['m']}, step "
            f"eps*{arm['step_fraction']:g}")  # fmt: skip
  name = {"square": "Square", "square_undefended": "Square, undefended",
          "eot_square": f"EOT-Square (m = {arm['m']})"}[arm["attack"]]  # fmt: skip
  return f"{name}, {arm['k'] * arm['m']:,} forward passes"


def compare(seeded, defense, question, *, level, budget,
            plan=analysis.PLAN) -> dict | None:  # fmt: skip
  """One question for one defense, pooled over ``seeded`` ``[(seed,
  arms)]``: d = success(b) − success(a) on images both arms retained.
  None when a run lacks an arm."""
  pooled_a, pooled_b, screens, per_seed = [], [], [], []
  labels = {}
  for seed, run_arms in seeded:
    sides = _sides(run_arms, defense, question, budget)
    if sides is None:
      return None
    arm_a, arm_b, step = sides
    ea, eb = _evaluation(arm_a), _evaluation(arm_b)
    common = sorted(set(ea) & set(eb))
    a = np.array([ea[i] for i in common], bool)
    b = np.array([eb[i] for i in common], bool)
    screen = []
    if len(a) < plan.min_retained:
      screen.append(f"seed {seed}: {len(a)} retained < {plan.min_retained}")
    rate_a, rate_b = _rate(arm_a), _rate(arm_b)
    if analysis.saturated(rate_a, rate_b, plan):
      screen.append(f"seed {seed}: saturated on calibration images "
                    f"({100 * rate_a:.0f} %, {100 * rate_b:.0f} %)")  # fmt: skip
    screens += screen
    estimate, low, high = stats.paired_difference_interval(a, b, level)
    per_seed.append({
      "seed": seed, "n": len(a), "step_b": step,
      "difference": {"estimate": estimate, "ci": [low, high]},
      "region": "untestable" if screen else analysis.region(
        low, high, plan.margin),
    })  # fmt: skip
    pooled_a.append(a)
    pooled_b.append(b)
    labels = {"a": _label(arm_a), "b": _label(arm_b)}
  if not per_seed:
    return None
  a, b = np.concatenate(pooled_a), np.concatenate(pooled_b)
  estimate, low, high = stats.paired_difference_interval(a, b, level)
  region = "untestable" if screens else analysis.region(low, high, plan.margin)
  return {
    "defense": defense, "question": question,
    "meaning": analysis.BLOG_QUESTIONS.get(question, "EOT-Square − Square"),
    "seeds": [s["seed"] for s in per_seed],
    "a": stats.side(labels["a"], int(a.sum()), a.size),
    "b": stats.side(labels["b"], int(b.sum()), b.size),
    "difference": {"estimate": estimate, "ci": [low, high], "level": level,
                   "method": arms.METHOD},
    "p_one_sided": stats.mcnemar_one_sided(a, b),
    "margin": plan.margin, "region": region, "screens": screens,
    "per_seed": per_seed,
  }  # fmt: skip


def decide(runs, plan=analysis.PLAN) -> dict | None:
  """The blog's claim per defense from the ``blackbox`` runs, or None
  without one.

  Returns:
    ``{"budget", "level", "defenses": [{defense, decision, questions:
    {name: record}, eot_recovers: record}]}``.

  Raises:
    ValueError: two runs of one seed holding the same arm (a seed's parts
      pool; they must share their split).
  """
  mine = sorted((r for r in runs if r.experiment == "blackbox"),
                key=lambda r: r.seed)  # fmt: skip
  if not mine:
    return None
  seeded = arms.pooled_by_seed(mine, ("blackbox",), "arms", arms.arm_key)
  seeds = [seed for seed, _ in seeded]
  names = sorted({a["defense"] for _, run_arms in seeded for a in run_arms})
  level = 1 - 2 * plan.alpha / max(len(names), 1)
  budget = analysis.BLOG_BUDGET
  out = []
  for name in names:
    questions = {
      q: compare(seeded, name, q, level=level, budget=budget, plan=plan)
      for q in analysis.BLOG_QUESTIONS
    }
    if any(r is None for r in questions.values()):
      decision = "not run"
    else:
      decision = analysis.blog_claim([r["region"] for r in questions.values()])
    out.append({
      "defense": name, "decision": decision, "questions": questions,
      "eot_recovers": compare(seeded, name, "eot_recovers", level=0.95,
                              budget=budget, plan=plan),
    })  # fmt: skip
  by_question = collections.defaultdict(list)
  for entry in out:
    for q, record in entry["questions"].items():
      by_question[q].append(record)
  for records in by_question.values():
    ps = [r["p_one_sided"] if r is not None else 1.0 for r in records]
    for r, adjusted in zip(records, stats.holm(ps), strict=True):
      if r is not None:
        r["p_holm"] = float(adjusted)
  return {"budget": budget, "level": level, "seeds": seeds, "defenses": out}


def lines(record: dict | None) -> list[str]:
  """The report's section on the blog's black-box claim."""
  if record is None:
    return []

  def interval(r):
    if r is None:
      return "not run"
    d = r["difference"]
    p = f"; p (Holm) {r['p_holm']:.2g}" if "p_holm" in r else ""
    return (f"{WORDS[r['region']]}: {100 * d['estimate']:+.1f} "
            f"[{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}] points at "
            f"{100 * d['level']:.4g} %{p} ({100 * r['b']['rate']:.1f} vs "
            f"{100 * r['a']['rate']:.1f} %, n = {r['a']['n']})")  # fmt: skip

  out = [
    "### The blog's black-box claim (amendment 7)",
    "",
    "Per defense, at "
    f"{record['budget']:,} forward passes per image (seeds "
    f"{', '.join(map(str, record['seeds']))}): (a) Square undefended → "
    "defended (d = undefended − defended: the defense makes the black-box "
    "attack harder), (c) Square → PGD × EOT under the defense (d = "
    "white-box − Square: the white-box attack breaks what Square does "
    "not); the claim holds for a defense when both d are above 0. "
    "EOT-Square at the same forward passes is secondary (95 %).",
    "",
    "| defense | decision | (a) black-box harder | (c) white-box works "
    "| EOT-Square − Square (secondary) |",
    "|---|---|---|---|---|",
  ]
  for entry in record["defenses"]:
    q = entry["questions"]
    out.append(
      f"| {entry['defense']} | **{entry['decision']}** | "
      f"{interval(q['blackbox_harder'])} | "
      f"{interval(q['whitebox_works'])} | "
      f"{interval(entry['eot_recovers'])} |"
    )
  return [*out, ""]


def summary(record: dict | None) -> list[str]:
  """The README's line on the blog's claim: each defense's decision."""
  if record is None:
    return []
  by_decision = collections.defaultdict(list)
  for d in record["defenses"]:
    by_decision[d["decision"]].append(d["defense"])
  decisions = "; ".join(
    f"{decision} for {', '.join(names)}"
    for decision, names in by_decision.items()
  )
  return [
    "* The blog's claim (black-box attacks hindered, white-box not, "
    f"`blackbox`, {record['budget']:,} forward passes): {decisions} (seeds "
    f"{', '.join(map(str, record['seeds']))})."
  ]
