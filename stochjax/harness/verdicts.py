"""The paper's claims decided under the analysis plan (`stochjax.analysis`,
docs/analysis_plan.md), from the arms the experiments record.

An experiment's results.json lists its arms (`stochjax.paper.section4.arms`:
one attack's success on the calibration images and per-image outcomes on
the evaluation images). `decide` takes every run (experiment, seed,
results), chooses each side's step on calibration images, pools the seeds
of a primary comparison, and returns the comparison records and one
decision per claim x defense x goal, in the plan's words. It refuses
results recorded under another plan.
"""

import collections
import dataclasses
import itertools

import numpy as np

from stochjax import analysis, arms, stats
from stochjax.harness import blog


class PlanMismatchError(ValueError):
  """Results made under another analysis plan (or before any)."""


@dataclasses.dataclass(frozen=True)
class Run:
  """One finished run: its experiment (config name), seed, results, and
  the data set and model it ran on (its setting)."""

  experiment: str
  seed: int
  results: dict
  workdir: str = ""
  dataset: str = analysis.PRIMARY_SETTING[0]
  model: str = analysis.PRIMARY_SETTING[1]


def check_plan(run: Run, plan: analysis.Plan = analysis.PLAN) -> None:
  """Raises PlanMismatchError unless `run` was made under `plan`."""
  digest = run.results.get("analysis_plan_digest")
  if digest != plan.digest():
    raise PlanMismatchError(
      f"{run.workdir or run.experiment}: results made under "
      f"{'no analysis plan' if digest is None else 'plan ' + digest[:12]}, "
      f"not the plan in force ({plan.digest()[:12]}, "
      "docs/analysis_plan.md); re-run it, or report it with the plan it "
      "was made under."
    )


GAP_METHOD = "percentile bootstrap of the mean per-image gap change"


def _gap_key(a: dict) -> tuple:
  return (a["defense"], a["goal"], a["epoch"], a["kind"])


def _eps_key(a: dict) -> tuple:
  return (a["eps"], *arms.arm_key(a))


def compare_gap(seeded, defense, goal, *, level, plan=analysis.PLAN):
  """Claim (iii) for one defense and goal, pooled over `seeded`
  (``[(seed, gap arms)]``): per image retained in all four arms
  (defended and undefended, first and last checkpoint, each at its own
  eps), d = gap_after - gap_before; the exact sign-flip test of mean d > 0
  and its bootstrap interval. None when not run."""
  ds, screens, per_seed, sides = [], [], [], collections.defaultdict(list)
  for seed, found in seeded:
    arms = {_gap_key(a): a for a in found}
    epochs = sorted({e for (d, g, e, _) in arms if (d, g) == (defense, goal)})
    if len(epochs) < 2:
      return None
    first, last = epochs[0], epochs[-1]
    four = {(e, kind): arms[(defense, goal, e, kind)]
            for e in (first, last) for kind in ("defended", "undefended")}  # fmt: skip
    common = sorted(
      set.intersection(*(set(a["indices"]) for a in four.values()))
    )
    outcome = {
      key: dict(zip(a["indices"], a["per_sample"], strict=True))
      for key, a in four.items()
    }
    s = {key: np.array([outcome[key][i] for i in common], int) for key in four}
    gap_before = s[(first, "defended")] - s[(first, "undefended")]
    gap_after = s[(last, "defended")] - s[(last, "undefended")]
    for key, values in s.items():
      sides[f"{key[1]} epoch {key[0]}"].append(values)
    screen = []
    if len(common) < plan.min_retained:
      screen.append(f"seed {seed}: {len(common)} retained in all four "
                    f"arms < {plan.min_retained}")  # fmt: skip
    for e in (first, last):
      if four[(e, "defended")]["eps_is_largest_candidate"]:
        screen.append(f"seed {seed}: the eps rule picked its largest "
                      f"candidate at epoch {e}")  # fmt: skip
    screens += screen
    d = gap_after - gap_before
    ds.append(d)
    _, low, high = stats.bootstrap_interval(
      d, level, num_resamples=plan.bootstrap_resamples,
      seed=plan.bootstrap_seed,
    )  # fmt: skip
    region = (
      "untestable" if screen or not d.size
      else analysis.region(low, high, plan.margin)
    )  # fmt: skip
    per_seed.append({"seed": seed, "n": len(common), "region": region,
                     "gap_before": float(gap_before.mean()) if len(common) else None,
                     "gap_after": float(gap_after.mean()) if len(common) else None,
                     "eps": [four[(e, "defended")]["eps"] for e in (first, last)],
                     "epochs": [first, last]})  # fmt: skip
  if not ds:
    return None
  d = np.concatenate(ds)
  mean, low, high = stats.bootstrap_interval(
    d, level, num_resamples=plan.bootstrap_resamples, seed=plan.bootstrap_seed
  )
  if not d.size:
    low, high = -2.0, 2.0
  region = "untestable" if screens else analysis.region(low, high, plan.margin)
  rates = {label: float(np.concatenate(v).mean()) if d.size else float("nan")
           for label, v in sides.items()}  # fmt: skip
  return {
    "defense": defense,
    "goal": goal,
    "seeds": [s["seed"] for s in per_seed],
    "n": int(d.size),
    "success": rates,
    "difference": {"estimate": mean, "ci": [low, high], "level": level,
                   "method": GAP_METHOD},
    "test": "exact one-sided sign-flip permutation test of mean d > 0",
    "p_one_sided": stats.sign_flip_test(d),
    "margin": plan.margin,
    "region": region,
    "words": {"below": "gap widens", "above": "gap closes",
              "above_within": "gap closes, within the margin",
              "within": "gap unchanged within ±margin",
              "not_above": "gap does not close by the margin",
              "inconclusive": "inconclusive",
              "untestable": "untestable"}[region],
    "screens": screens,
    "per_seed": per_seed,
  }  # fmt: skip


def _seeded(runs, experiment: str) -> list[tuple[int, list[dict]]]:
  """``[(seed, arms)]`` of `experiment`'s runs (`arms.pooled_by_seed`)."""
  return arms.pooled_by_seed(runs, (experiment,), "arms", arms.arm_key)


def _consistency(record: dict, decide_one) -> tuple[bool | None, str]:
  """``(replicates, consistency)`` of a pooled decision over its seeds."""
  seeds = [decide_one(s["region"]) for s in record["per_seed"]]
  if len(seeds) == 1:
    return None, "one seed"
  if all(s == "inconclusive" for s in seeds):
    return False, "all inconclusive"
  pooled = decide_one(record["region"])
  agree = all(s == pooled for s in seeds)
  return agree, ("all seeds agree" if agree else "seeds: " + ", ".join(seeds))


def _primaries(runs, plan, claim):
  """The claim's primary comparison records (None where not run)."""
  level = plan.interval_level(claim)
  out = []
  for p in plan.family(claim):
    record = arms.compare(_seeded(runs, p.experiment), p.defense, p.goal,
                     p.no_eot, p.eot, level=level, plan=plan)  # fmt: skip
    if record is not None:
      record |= {"claim": claim, "experiment": p.experiment, "role": "primary",
                 "question": p.question,
                 "notes": _notes(record, _runs_of(runs, p.experiment),
                                 p.defense)}  # fmt: skip
    out.append((p, record))
  return out


def _runs_of(runs, experiment: str) -> list[Run]:
  return sorted((r for r in runs if r.experiment == experiment),
                key=lambda r: r.seed)  # fmt: skip


def _notes(record: dict, runs: list[Run], defense: str) -> list[str]:
  """What a reader should weigh beside a primary comparison, never a
  screen: a side's chosen step at the edge of its candidates (a step
  beyond them might do better), and an eps rule that fell back to its
  largest candidate."""
  notes = []
  for side in ("a", "b"):
    steps = record[side]["step"]
    for seed, step in zip(record["seeds"], steps if isinstance(steps, list)
                          else [steps], strict=True):  # fmt: skip
      candidates = step["candidates"]
      if len(candidates) < 2 or min(candidates) < step["chosen"] < max(
        candidates
      ):
        continue
      edge = "smallest" if step["chosen"] == min(candidates) else "largest"
      notes.append(f"seed {seed}: {record[side]['label'].split(',')[0]} "
                   f"chose the {edge} step, eps*{step['chosen']:g}")  # fmt: skip
  for run in runs:
    sweep = run.results.get("eps_sweep", {}).get(defense)
    if (
      sweep and sweep["success"] and sweep["picked"] == sweep["candidates"][-1]
    ):
      notes.append(
        f"seed {run.seed}: the eps rule picked its largest candidate, "
        f"{255 * sweep['picked']:.3g}/255 (undefended success there "
        f"{100 * sweep['success'][-1]:.0f} %)"
      )
  return notes


def _holm(records) -> None:
  """Holm over the family's primaries; one not run counts as p = 1."""
  ps = [r["p_one_sided"] if r is not None else 1.0 for r in records]
  if not ps:
    return
  for r, adjusted in zip(records, stats.holm(ps), strict=True):
    if r is not None:
      r["p_holm"] = float(adjusted)


def _secondary(runs, plan, primaries) -> list[dict]:
  """Every other equal-budget pair per fixed step, and Table 2's
  ablation, at 95 % (unadjusted): reported, never decisive."""
  out = []
  for experiment in sorted({r.experiment for r in runs}):
    group = _seeded(runs, experiment)
    if not group:  # Figs. 3-4: gap arms only.
      continue
    first = group[0][1]
    keys = sorted({(a["defense"], a["goal"], a["k"], a["m"]) for a in first
                   if not a.get("ablation")})  # fmt: skip
    for (d, g, k, m), (d2, g2, k2, m2) in itertools.product(keys, keys):
      if (d, g) != (d2, g2) or not (m == 1 < m2 and k == k2 * m2):
        continue
      for f in arms.fractions(first, d, g, k, m):
        record = arms.compare(group, d, g, (k, m), (k2, m2), level=0.95,
                         plan=plan, fixed=f)  # fmt: skip
        if record is not None:
          out.append(record | {"experiment": experiment, "role": "secondary",
                               "kind": f"fixed step eps*{f:g}"})  # fmt: skip
    ablated = {(a["defense"], a["goal"], a["k"]) for a in first
               if a.get("ablation")}  # fmt: skip
    for d, g, k in sorted(ablated):
      versus = [p for p in primaries if p.experiment == experiment
                and p.defense == d and p.goal == g]  # fmt: skip
      if not versus:
        continue
      record = arms.compare(group, d, g, (k, 1), versus[0].eot, level=0.95,
                       plan=plan, ablation=True)  # fmt: skip
      if record is not None:
        out.append(record | {"experiment": experiment, "role": "secondary",
                             "kind": "Table 2 ablation (long no-EOT run)"})  # fmt: skip
  return out


def _family_decisions(family, decide_one, add) -> list[dict]:
  """One decision per ``(primary, record)`` of a claim's family (claims (i)
  and (iii)): `decide_one` of the record's region, "not run" without one;
  `add` files the record among the comparisons and returns its index."""
  out = []
  for p, record in family:
    entry = {"claim": p.claim, "defense": p.defense, "goal": p.goal,
             "experiment": p.experiment}  # fmt: skip
    if record is None:
      out.append(entry | {"decision": "not run", "primary": None,
                          "replicates": None, "consistency": ""})  # fmt: skip
      continue
    record["decision"] = decide_one(record["region"])
    replicates, consistency = _consistency(record, decide_one)
    out.append(entry | {"decision": record["decision"], "primary": add(record),
                        "replicates": replicates,
                        "consistency": consistency})  # fmt: skip
  return out


def _replicated(decision: dict, replications: list[dict]) -> dict:
  """`decision` (of the primary setting) with ``settings``: its decision in
  each replication setting that ran it; and ``replicates`` over settings:
  true only when it is decided and every seed of every setting run gives
  it (the plan's amendment 4). A setting that did not run it does not
  count."""
  same = ("claim", "defense", "goal", "experiment")
  settings = []
  for rep in replications:
    for d in rep["decisions"]:
      if all(d[k] == decision[k] for k in same) and d["decision"] != "not run":
        settings.append({"dataset": rep["dataset"], "model": rep["model"],
                         "decision": d["decision"],
                         "replicates": d["replicates"],
                         "consistency": d["consistency"]})  # fmt: skip
  if not settings:
    return decision
  holds = decision["decision"] in ("supported", "not supported") and all(
    d["replicates"] is not False and d["decision"] == decision["decision"]
    for d in [decision, *settings]
  )
  return decision | {"settings": settings, "replicates": holds}


def eps_sensitivity(runs, plan=analysis.PLAN) -> list[dict]:
  """The plan's section 8 (secondary): at each eps of the
  ``eps_sensitivity`` runs, the primary pair of claims (i) and (ii) for
  every defense and goal they ran, each side at the step its calibration
  images choose at that eps; 95 %, unadjusted, never decisive."""
  pairs = {(p.defense, p.goal): p for p in plan.family("i") + plan.family("ii")}
  by_eps: dict = {}
  for seed, found in arms.pooled_by_seed(
    runs, ("eps_sensitivity",), "eps_arms", _eps_key
  ):
    for a in found:
      by_eps.setdefault(a["eps"], {}).setdefault(seed, []).append(a)
  out = []
  for eps in sorted(by_eps):
    seeded = sorted(by_eps[eps].items())
    for (defense, goal), p in sorted(pairs.items()):
      record = arms.compare(seeded, defense, goal, p.no_eot, p.eot,
                            level=0.95, plan=plan)  # fmt: skip
      if record is not None:
        out.append(record | {
          "experiment": "eps_sensitivity", "role": "secondary", "eps": eps,
          "kind": f"eps = {255 * eps:.3g}/255, steps chosen",
        })  # fmt: skip
  return out


# The ``rse`` experiment's entries (`configs/rse.py`) by role.
BOOK_ENTRIES = {
  "rse": "rse",
  "reference": "adversarial_training",
  "defended": "noise_injection",
}


def _strongest(arms_: list[dict], defense: str) -> dict | None:
  """`defense`'s untargeted arm whose attack succeeds most often on the
  calibration images (a tie goes to the larger budget k x m, then the
  smaller step), or None when it has none."""
  mine = [a for a in arms_ if a["defense"] == defense
          and a["goal"] == "untargeted" and not a.get("ablation")]  # fmt: skip
  if not mine:
    return None

  def strength(a):
    cal = a["calibration"]
    rate = cal["successes"] / cal["n"] if cal["n"] else 0.0
    return rate, a["k"] * a["m"], -a["step_fraction"]

  return max(mine, key=strength)


def _robust(arm: dict, evaluation) -> np.ndarray:
  """Per evaluation image: the vote was correct before the attack (the
  image was retained) and the attack failed."""
  failed = {i: not s for i, s in zip(arm["evaluation"]["indices"],
                                     arm["evaluation"]["per_sample"],
                                     strict=True)}  # fmt: skip
  return np.array([failed.get(i, False) for i in evaluation], bool)


def _attack_text(arm: dict) -> str:
  return f"PGD-{arm['k']} x EOT-{arm['m']}, step eps*{arm['step_fraction']:g}"


def _side_record(defense: str, attack: str, robust, benign) -> dict:
  return {
    "defense": defense,
    "attack": attack,
    "robust": int(robust.sum()),
    "clean": int(benign.sum()),
    "n": int(robust.size),
    "robust_accuracy": float(robust.mean()) if robust.size else float("nan"),
    "clean_accuracy": float(benign.mean()) if benign.size else float("nan"),
  }


def book(runs: list[Run], plan: analysis.Plan = analysis.PLAN) -> dict | None:
  """The book's claim, "RSE is only slightly worse than adversarial
  training" (plan amendment 5), from the ``rse`` runs: per image of the
  evaluation split, robust accuracy (correct before, not broken after the
  entry's strongest attack on calibration images) of RSE against
  adversarial training, pooled over seeds; the interval of RSE − AT at
  95 % against −margin (`analysis.book_claim`); untestable where the
  reference's calibration robust accuracy is under
  `analysis.BOOK_REFERENCE_FLOOR`. Beside it (secondary, the blog's
  contrast): noise injection's robust accuracy against adversarial
  training's, and RSE's invariance before and after training. A seed's
  parts (``rse`` and ``rse:reference``) are pooled. None without an
  ``rse`` run.

  Raises:
    ValueError: parts of one seed holding the same arm or with different
      splits, an entry no part holds, or not exactly one part with RSE's
      invariance.
  """
  mine = _runs_of(runs, "rse")
  if not mine:
    return None
  parts = collections.defaultdict(list)
  for run in mine:
    parts[run.seed].append(run)
  pooled = collections.defaultdict(list)
  screens, per_seed = [], []
  for seed, found in arms.pooled_by_seed(mine, ("rse",), "arms", arms.arm_key):
    split = parts[seed][0].results["split"]
    evaluation, calibration = (split["evaluation_indices"],
                               split["calibration_indices"])  # fmt: skip
    invariance = [r.results["rse_invariance"] for r in parts[seed]
                  if "rse_invariance" in r.results]  # fmt: skip
    if len(invariance) != 1:
      raise ValueError(
        f"rse, seed {seed}: {len(invariance)} runs hold RSE's invariance "
        "(one part holds RSE)."
      )
    seed_record = {"seed": seed}
    for role, name in BOOK_ENTRIES.items():
      arm = _strongest(found, name)
      if arm is None:
        raise ValueError(
          f"rse, seed {seed}: no arm of {name!r} "
          f"(runs {', '.join(str(r.workdir) for r in parts[seed])})."
        )
      robust = _robust(arm, evaluation)
      benign = np.isin(evaluation, arm["evaluation"]["indices"])
      pooled[role, "robust"].append(robust)
      pooled[role, "benign"].append(benign)
      seed_record[role] = _side_record(name, _attack_text(arm), robust, benign)
      # A strongest attack at the grid's largest budget may not be the
      # strongest there is: a larger one might break more.
      seed_record[role]["at_largest_budget"] = arm["k"] * arm["m"] == max(
        a["k"] * a["m"] for a in found
        if a["defense"] == name and a["goal"] == "untargeted"
        and not a.get("ablation"))  # fmt: skip
      cal = arm["calibration"]
      seed_record[role]["calibration_robust_accuracy"] = (
        (cal["n"] - cal["successes"]) / len(calibration) if calibration else 0.0
      )
    floor = analysis.BOOK_REFERENCE_FLOOR
    if seed_record["reference"]["calibration_robust_accuracy"] < floor:
      screens.append(
        f"seed {seed}: adversarial training's robust accuracy on "
        f"calibration images "
        f"{100 * seed_record['reference']['calibration_robust_accuracy']:.0f}"
        f" % < {100 * floor:.0f} %"
      )
    seed_record["rse_invariance"] = {
      when: {k: invariance[0][when][k] for k in ("mean", "ci")}
      for when in ("before", "after")
    }
    per_seed.append(seed_record)
  robust = {
    role: np.concatenate(pooled[role, "robust"]) for role in BOOK_ENTRIES
  }
  benign = {
    role: np.concatenate(pooled[role, "benign"]) for role in BOOK_ENTRIES
  }

  def difference(role):
    estimate, low, high = stats.paired_difference_interval(
      robust["reference"], robust[role], 0.95
    )
    return {"estimate": estimate, "ci": [low, high], "level": 0.95}

  main = difference("rse")
  decision = "untestable" if screens else analysis.book_claim(
    *main["ci"], plan.margin)  # fmt: skip
  sides = {
    role: _side_record(
      name,
      "; ".join(s[role]["attack"] for s in per_seed),  # Each seed's.
      robust[role],
      benign[role],
    )
    for role, name in BOOK_ENTRIES.items()
  }
  return {
    "question": "RSE only slightly worse than adversarial training "
    "(robust accuracy, RSE − adversarial training > −margin)",
    "decision": decision,
    "margin": plan.margin,
    "difference": main,
    # Exact one-sided McNemar p of "adversarial training robust more often".
    "p_one_sided": stats.mcnemar_one_sided(robust["rse"], robust["reference"]),
    "screens": screens,
    "seeds": sorted(parts),
    "sides": sides,
    "defended_vs_reference": difference("defended")
    | {
      "p_one_sided": stats.mcnemar_one_sided(
        robust["defended"], robust["reference"]
      )
    },  # fmt: skip
    "per_seed": per_seed,
  }


def book_lines(record: dict | None) -> list[str]:
  """The report's section on the book's claim and the blog's contrast."""
  if record is None:
    return []

  def side(s):
    return (f"{100 * s['robust_accuracy']:.1f} % robust ({s['robust']}/"
            f"{s['n']}), {100 * s['clean_accuracy']:.1f} % clean; "
            f"{s['attack']}")  # fmt: skip

  def interval(d):
    return (f"{100 * d['estimate']:+.1f} [{100 * d['ci'][0]:+.1f}, "
            f"{100 * d['ci'][1]:+.1f}] points at {100 * d['level']:g} %")  # fmt: skip

  sides, seeds = record["sides"], ", ".join(map(str, record["seeds"]))
  lines = [
    "### The book's claim: Random Self-Ensemble against adversarial "
    "training (amendment 5)",
    "",
    f"**{record['decision']}**"
    + (f" ({'; '.join(record['screens'])})" if record["screens"] else "")
    + f": RSE − adversarial training robust accuracy {interval(record['difference'])}"
    f" against −{100 * record['margin']:g} points; exact one-sided McNemar "
    f'p of "adversarial training more robust" {record["p_one_sided"]:.2g} '
    f"(seeds {seeds}; each model under its strongest attack on "
    "calibration images, robust = correct before and after).",
    "",
    "| model | robust and clean accuracy on evaluation images; attack |",
    "|---|---|",
    f"| RSE (noise layers, mean softmax) | {side(sides['rse'])} |",
    f"| adversarial training (PGD-7) | {side(sides['reference'])} |",
    f"| noise injection on the clean model (BaRT) | {side(sides['defended'])} |",
    "",
    *_largest_budget_lines(record),
    "The blog's contrast (secondary, never decisive): noise injection − "
    f"adversarial training robust accuracy "
    f"{interval(record['defended_vs_reference'])}; RSE's invariance to its "
    "own noise (the fraction of draws keeping the noiseless prediction, "
    "95 % bootstrap): "
    + "; ".join(
      f"seed {s['seed']}: clean weights "
      f"{100 * s['rse_invariance']['before']['mean']:.1f} % "
      f"[{100 * s['rse_invariance']['before']['ci'][0]:.1f}, "
      f"{100 * s['rse_invariance']['before']['ci'][1]:.1f}], after "
      f"training with it {100 * s['rse_invariance']['after']['mean']:.1f} % "
      f"[{100 * s['rse_invariance']['after']['ci'][0]:.1f}, "
      f"{100 * s['rse_invariance']['after']['ci'][1]:.1f}]"
      for s in record["per_seed"]
    )
    + ".",
    "",
  ]
  return lines


def _largest_budget_lines(record: dict) -> list[str]:
  """A caveat naming each model whose strongest attack was its grid's
  largest budget (its robust accuracy is an upper bound the grid could not
  push further)."""
  at_edge = sorted({
    f"{s[role]['defense']} (seed {s['seed']})"
    for s in record["per_seed"] for role in BOOK_ENTRIES
    if s[role].get("at_largest_budget")
  })  # fmt: skip
  if not at_edge:
    return []
  return [
    "Strongest attack at its grid's largest budget, so a larger one might "
    f"break more (robust accuracy an upper bound): {', '.join(at_edge)}.",
    "",
  ]


def decide(runs: list[Run], plan: analysis.Plan = analysis.PLAN) -> dict:
  """The plan's records and decisions for `runs` (every run checked
  against `plan` first).

  Runs on the plan's primary setting (`analysis.PRIMARY_SETTING`) make the
  decisions; runs on any other data set or model are replications,
  decided alone per setting and never pooled across settings.

  Returns:
    ``{"analysis_plan", "analysis_plan_digest", "setting", "comparisons",
    "decisions", "claim_ii_contrasts", "replications"}``: comparisons
    (primary first, then secondary) as the plan's records; decisions
    ``{claim, defense, goal, experiment, decision, primary (index or
    indices), replicates, consistency}`` (and ``settings``, each
    replication's decision, where one ran it); replications ``[{dataset,
    model, comparisons, decisions, claim_ii_contrasts}]``.
  """
  for run in runs:
    check_plan(run, plan)
  by_setting = collections.defaultdict(list)
  for run in runs:
    by_setting[(run.dataset, run.model)].append(run)
  primary = _decide_setting(by_setting.pop(analysis.PRIMARY_SETTING, []), plan)
  replications = [
    {"dataset": dataset, "model": model} | _decide_setting(rs, plan)
    for (dataset, model), rs in sorted(by_setting.items())
  ]
  primary["decisions"] = [
    _replicated(d, replications) for d in primary["decisions"]
  ]
  dataset, model = analysis.PRIMARY_SETTING
  return {
    "analysis_plan": plan.to_json(),
    "analysis_plan_digest": plan.digest(),
    "analysis_plan_amended": list(analysis.AMENDED),
    "setting": {"dataset": dataset, "model": model},
    **primary,
    "replications": replications,
  }


def _decide_setting(runs: list[Run], plan: analysis.Plan) -> dict:
  """``{comparisons, decisions, claim_ii_contrasts}`` of one setting's
  runs."""
  comparisons, decisions = [], []

  def add(record):
    comparisons.append(record)
    return len(comparisons) - 1

  claim_i = _primaries(runs, plan, "i")
  _holm([r for _, r in claim_i])
  decisions += _family_decisions(claim_i, analysis.claim_i, add)
  claim_ii = _primaries(runs, plan, "ii")
  if all(r is not None for _, r in claim_ii):
    components = [(p.question, r["region"]) for p, r in claim_ii]
    decision = analysis.claim_ii(components)
    indices = []
    for _, r in claim_ii:
      r["decision"] = decision
      indices.append(add(r))
  else:
    decision, indices = "not run", None
  decisions.append({
    "claim": "ii", "defense": " & ".join(p.defense for p, _ in claim_ii),
    "goal": "targeted",
    "experiment": " & ".join(sorted({p.experiment for p, _ in claim_ii})),
    "decision": decision, "primary": indices, "replicates": None,
    "consistency": "one seed",
  })  # fmt: skip
  level = plan.interval_level("iii")
  claim_iii = []
  for p in plan.family("iii"):
    seeded = arms.pooled_by_seed(runs, (p.experiment,), "gap_arms", _gap_key)
    record = compare_gap(seeded, p.defense, p.goal, level=level, plan=plan)
    if record is not None:
      record |= {"claim": "iii", "experiment": p.experiment, "role": "primary",
                 "question": p.question}  # fmt: skip
    claim_iii.append((p, record))
  _holm([r for _, r in claim_iii])
  decisions += _family_decisions(claim_iii, analysis.claim_iii, add)
  primaries = plan.family("i") + plan.family("ii")
  comparisons += _secondary(runs, plan, primaries)
  comparisons += eps_sensitivity(runs, plan)
  strong, *weak = plan.family("ii")
  contrasts = []
  for w in weak:  # Noise injection (fig1) and sigma = 0.25 (fig2).
    # One seed's runs of both experiments must evaluate the same split.
    both = tuple(sorted({strong.experiment, w.experiment}))
    seeded = arms.pooled_by_seed(runs, both, "arms", arms.arm_key)
    contrast = arms.contrast(
      seeded, strong.defense, w.defense, strong.goal,
      strong.no_eot, strong.eot, plan=plan,
    )  # fmt: skip
    contrasts.append(contrast or {
      "strong": strong.defense, "weak": w.defense, "goal": strong.goal,
      "not_run": "an arm is missing in a seed's runs of "
                 f"{' and '.join(sorted({strong.experiment, w.experiment}))}",
    })  # fmt: skip
  return {
    "comparisons": comparisons,
    "decisions": decisions,
    "claim_ii_contrasts": contrasts,
    "book": book(runs, plan),
    "blog": blog.decide(runs, plan),
  }


def decision_table(decided: dict) -> list[str]:
  """The generated verdict table: claim, defense, goal, decision, the
  primary comparison's rates, the interval of the difference, adjusted p,
  replication."""
  lines = [
    "| claim | defense, goal (experiment) | decision | no EOT (iii: first "
    "checkpoint) | EOT (iii: last) | EOT − no EOT (iii: gap change) "
    "[interval] | p (Holm) | seeds |",
    "|---|---|---|---|---|---|---|---|",
  ]
  comparisons = decided["comparisons"]
  for d in decided["decisions"]:
    where = f"{d['defense']}, {d['goal']} (`{d['experiment']}`)"
    index = d["primary"]
    if index is None:
      lines.append(f"| ({d['claim']}) | {where} | {d['decision']} | – | – | "
                   "– | – | – |")  # fmt: skip
      continue
    for i in index if isinstance(index, list) else [index]:
      r = comparisons[i]
      diff = r["difference"]
      p = r.get("p_holm", r["p_one_sided"])
      seeds = ", ".join(map(str, r["seeds"]))
      if d.get("consistency") not in ("", "one seed"):
        seeds += f" ({d['consistency']})"
      for other in d.get("settings", []):
        seeds += f"; {other['dataset']}, {other['model']}: {other['decision']}"
      a, b = _gap_sides(r) if d["claim"] == "iii" else (
        _fmt_side(r["a"]), _fmt_side(r["b"]))  # fmt: skip
      lines.append(
        f"| ({d['claim']}) | {r['defense']}, {r['goal']} (`{r['experiment']}`)"
        f" | {_decision_text(d['decision'], r)} | {a} | "
        f"{b} | {100 * diff['estimate']:+.1f} "
        f"[{100 * diff['ci'][0]:+.1f}, {100 * diff['ci'][1]:+.1f}] at "
        f"{100 * diff['level']:.2f} % | {p:.2g} | {seeds} |"
      )
  notes = [f"* {r['defense']}, {r['goal']} (`{r['experiment']}`): "
           + "; ".join(r["notes"]) + "."
           for r in comparisons if r["role"] == "primary" and r.get("notes")]  # fmt: skip
  if notes:
    lines += ["", "Notes beside the primaries (never screens: no decision "
              "turns on them):", "", *notes]  # fmt: skip
  return lines


def _decision_text(decision: str, record: dict) -> str:
  """The decision, the comparison's region in words where they differ,
  and the screens that made it untestable."""
  text = f"**{decision}**"
  if record["words"] != decision:
    text += f": {record['words']}"
  if record["screens"]:
    text += f" ({'; '.join(record['screens'])})"
  return text


def _fmt_side(side: dict) -> str:
  return (f"{side['label']}: {100 * side['rate']:.1f} % "
          f"({side['successes']}/{side['n']})")  # fmt: skip


def _gap_sides(record: dict) -> tuple[str, str]:
  """Claim (iii)'s two columns: defended / undefended success before and
  after fine-tuning (the gap is their difference)."""
  cells = []
  for when in ("first", "last"):
    rates = {k: v for k, v in record["success"].items()
             if (k.endswith(f"epoch {record['per_seed'][0]['epochs'][0]}")
                 if when == "first" else
                 k.endswith(f"epoch {record['per_seed'][0]['epochs'][1]}"))}  # fmt: skip
    text = " / ".join(f"{100 * v:.1f} %" for v in rates.values())
    cells.append(f"defended / undefended, {when} checkpoint: {text} "
                 f"(n = {record['n']})")  # fmt: skip
  return cells[0], cells[1]


def secondary_table(decided: dict) -> list[str]:
  lines = [
    "| experiment | defense, goal | kind | no EOT | EOT | EOT − no EOT "
    "[95 %] | region | p (two-sided) |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for r in decided["comparisons"]:
    if r["role"] != "secondary":
      continue
    diff = r["difference"]
    lines.append(
      f"| {r['experiment']} | {r['defense']}, {r['goal']} | {r['kind']} | "
      f"{_fmt_side(r['a'])} | {_fmt_side(r['b'])} | "
      f"{100 * diff['estimate']:+.1f} [{100 * diff['ci'][0]:+.1f}, "
      f"{100 * diff['ci'][1]:+.1f}] | {r['words']} | {r['p_two_sided']:.2g} |"
    )
  return lines


def summary(decided: dict) -> list[str]:
  """The README's short verdict summary: per claim, how many primary
  decisions fell each way, naming the decided ones (supported or not) and
  whether their seeds replicate; the full table is in docs/results.md."""
  lines = []
  for claim in ("i", "ii", "iii"):
    mine = [d for d in decided["decisions"] if d["claim"] == claim]
    tally = collections.Counter(d["decision"] for d in mine)
    counts = ", ".join(f"{n} {word}" for word, n in sorted(tally.items()))
    named, levels = [], set()
    for d in mine:
      if d["decision"] not in ("supported", "not supported"):
        continue
      index = d["primary"]
      records = [decided["comparisons"][i]
                 for i in (index if isinstance(index, list) else [index])]  # fmt: skip
      levels |= {r["difference"]["level"] for r in records}
      seeds = records[0]["seeds"]
      where = (f"seeds {', '.join(map(str, seeds))}" if len(seeds) > 1
               else f"seed {seeds[0]}")  # fmt: skip
      for other in d.get("settings", []):
        where += f"; {other['dataset']}, {other['model']}: {other['decision']}"
      if d["replicates"]:
        where += ", replicated"
      detail = ", ".join(
        (f"{r['defense']} {r['words']} " if len(records) > 1 else "")
        + _points(r)
        for r in records
      )
      named.append(
        f"{d['defense'] if len(records) == 1 else ''} {d['goal']} "
        f"{d['decision']}{':' if len(records) > 1 else ''} {detail} "
        f"({where})".strip()
      )
    what = "gap change" if claim == "iii" else "EOT − no EOT"
    level = ", ".join(f"{100 * v:.2f} %" for v in sorted(levels))
    lines.append(
      f"* Claim ({claim}), {len(mine)} primary decision"
      f"{'s' if len(mine) > 1 else ''}: {counts}."
      + (f" {what}, points at {level}: {'; '.join(named)}." if named else "")
    )
  return (
    lines + _book_summary(decided.get("book"), decided.get("replications", []))
    + blog.summary(decided.get("blog"))
  )  # fmt: skip


def _book_summary(record: dict | None, replications: list[dict]) -> list[str]:
  """The README's line on the book's claim (amendment 5), with its decision
  in each replication setting that ran it."""
  if record is None:
    return []
  sides = record["sides"]
  elsewhere = "".join(
    f"; {rep['dataset']}, {rep['model']}: {rep['book']['decision']} "
    f"{_points(rep['book'])}"
    for rep in replications if rep.get("book")
  )  # fmt: skip
  return [
    "* The book's claim (RSE only slightly worse than adversarial "
    f"training, `rse`): {record['decision']}; RSE − adversarial training "
    f"robust accuracy {_points(record)} at 95 % "
    f"({100 * sides['rse']['robust_accuracy']:.1f} % vs "
    f"{100 * sides['reference']['robust_accuracy']:.1f} %; noise injection "
    f"{100 * sides['defended']['robust_accuracy']:.1f} %; seeds "
    f"{', '.join(map(str, record['seeds']))}{elsewhere})."
  ]


def _points(record: dict) -> str:
  """``+1.2 [−3.1, +5.6]``: the difference and its interval, in points."""
  diff = record["difference"]
  return (
    f"{100 * diff['estimate']:+.1f} "
    f"[{100 * diff['ci'][0]:+.1f}, {100 * diff['ci'][1]:+.1f}]"
  )
