"""The report of experiment workdirs: the claims under the analysis plan,
then one section per workdir.

`write` decides the paper's claims from the runs' arms under the
pre-registered plan (`stochjax.harness.verdicts`, which refuses results
made under another plan), writes the decisions and comparison records to
``results.json``, and ``results.md``: the generated verdict table, the
secondary comparisons, then one section per workdir (recognised by its
results.json: an equal-budget grid, a fine-tuning invariance run, the
Section 5 theory, or a fine-tuning run), figures linked relative to it.
"""

import math
import os
import shutil

import numpy as np

from stochjax import analysis, audit, evaluate, figures, stats
from stochjax.harness import blog, verdicts
from stochjax.harness import workdir as workdir_lib

# What each claim predicts for its comparisons (a = without EOT, b = with).
CLAIMS = {
  "i": "at equal budget, PGD without EOT is not weaker than with EOT by "
  "more than the margin",
  "ii": "EOT is stronger for sigma = 0.5 smoothing, and not stronger by the "
  "margin for the weakly randomized noise injection and sigma = 0.25",
  "iii": "fine-tuning on the defense closes the gap between defended and "
  "undefended attack success",
}

# The paper's numbers (ImageNet / ImageNette; official_code.md §1.6, §7).
PAPER = {
  "table1": {
    "rotation/untargeted": {"no_eot": 100.0, "eot": 100.0},
    "rotation/targeted": {"no_eot": 99.0, "eot": 99.0},
  },
  # Fig. 1's noise injection: both attacks reach ~100 %.
  "eot_ablation": {"noise": {"no_eot": 100.0, "eot": 100.0}},
  "fig1": {"noise": {"no_eot": 100.0, "eot": 100.0}},
  # No-EOT ablations (Table 2).
  "table2": {"guo_crop": 99.0, "xie_resize_pad": 100.0, "sap": 100.0,
             "kwta": 98.4, "odds": 96.1},
  # PGD-1000 x EOT-1 vs PGD-100 x EOT-10: shown only beside that budget.
  "fig2": {"smoothing_0_50": {"no_eot": 34.8, "eot": 40.3, "budget": 1000}},
  "fig3": {
    "untargeted": {
      "benign_before": [86.88, 86.75, 74.65, 74.14, 74.01, 72.48],
      "benign_after": [94.65, 95.29, 92.48, 93.25, 92.48, 92.48],
      "success_before": [87.39, 59.91, 66.72, 79.55, 80.55, 42.36],
      "success_after": [98.79, 98.13, 96.97, 94.54, 96.01, 92.84],
    },
    "targeted": {
      "success_before": [92.22, 55.31, 50.14, 50.51, 52.11, 52.95],
      "success_after": [99.57, 98.02, 90.96, 96.17, 96.59, 95.47],
    },
  },
  "fig4": {
    "untargeted": {
      "benign_before": [93.5, 81.53, 56.43, 37.32, 26.5, 21.4, 19.24, 18.34,
                        17.96, 14.9],
      "benign_after": [95.92, 95.16, 94.52, 94.78, 93.38, 92.99, 92.99, 93.25,
                       91.21, 91.72],
      "success_before": [99.05, 98.75, 94.58, 87.71, 81.73, 74.4, 64.24,
                         63.89, 62.41, 58.12],
      "success_after": [99.6, 99.06, 98.79, 98.12, 94.82, 92.33, 90.14, 85.11,
                        79.33, 75.69],
    },
    "targeted": {
      "success_before": [99.86, 99.44, 91.87, 60.74, 22.44, 5.01, 1.15, 0.89,
                         0.0, 0.0],
      "success_after": [99.86, 99.72, 98.16, 95.62, 88.95, 80.0, 73.8, 64.04,
                        53.6, 49.44],
    },
  },
}  # fmt: skip


def _pct(x) -> str:
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "–"
  return f"{100 * x:.1f}"


def _paper_index(experiment: str, name: str) -> int | None:
  """The paper's column for a Fig. 3 (bart_k<k>) or Fig. 4 (sigma_<100s>)
  defense, or None."""
  if experiment == "fig3" and name.startswith("bart_k"):
    return int(name.removeprefix("bart_k")) - 1
  if experiment == "fig4" and name.startswith("sigma_"):
    sigma = int(name.removeprefix("sigma_"))
    return sigma // 5 - 1 if sigma % 5 == 0 and 5 <= sigma <= 50 else None
  return None


def _figure(path: str, name: str, out_dir: str) -> str:
  """A markdown image of `path`, copied to ``<out_dir>/figures/<run>/`` so
  the report keeps its figures wherever the workdirs go."""
  run = os.path.basename(os.path.dirname(os.path.abspath(path)))
  target = os.path.join(out_dir, "figures", run, os.path.basename(path))
  if os.path.exists(path):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(path, target)
  return f"![{name}]({os.path.relpath(target, out_dir)})\n"


def _rate(results: dict, panel: str, cell: dict) -> str:
  """A grid cell's rate with its exact interval when counts were kept."""
  counts = results.get("success_counts", {}).get(panel)
  if counts is None:
    return _pct(cell["success"])
  steps, draws = results.get("axes", {}).get(
    panel, (results["steps"], results["eot_samples"])
  )
  i, j = draws.index(cell["m"]), steps.index(cell["k"])
  return stats.format_rate(*counts[i][j])


def grid_section(experiment: str, results: dict, workdir: str, out_dir: str):
  lines = [
    "| panel | budget k×m | no EOT (k, m) | success | EOT (k, m) | success "
    "| paper no EOT / EOT |",
    "|---|---|---|---|---|---|---|",
  ]
  paper = PAPER.get(experiment, {})
  for panel, pairs in results.get("equal_budget", {}).items():
    defense, goal = panel.split("/")[:2]
    paper_entry = paper.get(f"{defense}/{goal}", paper.get(defense))
    for pair in pairs:
      a, b = pair["no_eot"], pair["eot"]
      reported = paper_entry
      if isinstance(reported, dict):
        at = reported.get("budget", pair["budget"])
        reported = (
          f"{reported['no_eot']} / {reported['eot']}"
          if at == pair["budget"]
          else None
        )
      elif reported is not None:
        reported = f"{reported} / –"
      lines.append(
        f"| {panel} | {pair['budget']} | ({a['k']}, {a['m']}) | "
        f"{_rate(results, panel, a)} | ({b['k']}, {b['m']}) | "
        f"{_rate(results, panel, b)} | {reported or '–'} |"
      )
  lines.append("")
  for name, control in results.get("undefended_attack", {}).items():
    if "attack" not in control:
      continue
    outcomes = evaluate.Evaluation.from_json(control).attack.per_sample
    eps = results.get("eps", {}).get(name.split("/")[0])
    at = f" at eps {255 * eps:.3g}/255" if eps else ""
    lines.append(
      f"Undefended control {name}{at} (the same PGD, no defense): "
      f"{stats.format_rate(int(sum(outcomes)), len(outcomes))}."
    )
  for name, sweep in results.get("eps_sweep", {}).items():
    lines.extend(_eps_rule_lines(name, sweep))
  lines.append("")
  lines.append(
    "Benign vote accuracy: "
    + ", ".join(
      f"{k} {_pct(v)} %" for k, v in results["benign_accuracy"].items()
    )
    + "."
  )
  lines.append("")
  for file in sorted(os.listdir(workdir)):
    if file.startswith("heatmap_") and file.endswith(".png"):
      lines.append(_figure(os.path.join(workdir, file), file, out_dir))
  return lines


def _eps_rule_lines(name: str, sweep: dict | None) -> list[str]:
  """The eps rule's record as one sentence (none when it did not apply)."""
  if not sweep or sweep.get("picked") is None:
    return []
  rates = ", ".join(
    f"{255 * e:.3g}/255: {_pct(r)}"
    for e, r in zip(sweep["candidates"], sweep["success"], strict=True)
  )
  return [
    f"Eps rule for {name}: undefended PGD success on {sweep['n']} correct "
    f"images by eps ({rates}) picked {255 * sweep['picked']:.3g}/255."
  ]


def invariance_section(experiment: str, results: dict, workdir, out_dir):
  lines = [
    "| defense | goal | benign before → after | success before → after "
    "(exact 95 % interval) | undefended control before → after | "
    "invariance before → after | paper benign | paper success |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for label, (name, goals) in zip(
    results["labels"], results["defenses"].items(), strict=True
  ):
    index = _paper_index(experiment, name)
    for goal, s in goals.items():
      paper = PAPER.get(experiment, {}).get(goal, {})

      def reported(field, paper=paper, index=index):
        before = paper.get(f"{field}_before")
        if index is None or before is None:
          return "–"
        return f"{before[index]} → {paper[f'{field}_after'][index]}"

      def arrow(field, s=s):
        b, a = s["before"].get(field), s["after"].get(field)
        return f"{_pct(b)} → {_pct(a)}"

      def rate(point):
        ci = point.get("attack_success_ci")
        text = _pct(point["attack_success_rate"])
        if ci is None:
          return text
        return (
          f"{text} [{_pct(ci[0])}, {_pct(ci[1])}] (n={point['num_retained']})"
        )

      lines.append(
        f"| {label} | {goal} | {arrow('benign_accuracy')} | "
        f"{rate(s['before'])} → {rate(s['after'])} | "
        f"{arrow('undefended_success_rate')} | {arrow('invariance')} | "
        f"{reported('benign')} | {reported('success')} |"
      )
  lines.append("")
  lines.extend(_eps_rule_lines("the clean model", results.get("eps_sweep")))
  lines.append(f"Attack: {_attack_text(results)}.")
  lines.append("")
  for file in (
    "before_after.png",
    "success_by_epoch.png",
    "gap_vs_invariance.png",
  ):
    lines.append(_figure(os.path.join(workdir, file), file, out_dir))
  return lines


def _attack_text(results: dict) -> str:
  """The attack spec with the eps rule's overrides, if any."""
  overrides = results.get("attack_overrides") or {}
  if not overrides:
    return results["attack"]
  changed = ", ".join(f"{k} = {255 * v:.3g}/255" for k, v in overrides.items())
  return f"{results['attack']} with {changed} (the eps rule)"


def section5_section(results: dict, workdir: str, out_dir: str):
  with open(os.path.join(workdir, "table.md")) as f:
    table = f.read().splitlines()
  return [
    "Closed forms (simulated in parentheses); votes with fresh draws.",
    "",
    *table,
    "",
    f"Largest |simulation - closed form|: "
    f"{results['max_abs_simulation_error']:.4f}.",
    "",
    _figure(os.path.join(workdir, "section5.png"), "section5", out_dir),
  ]


def blackbox_section(results: dict, workdir: str, out_dir: str):
  """Success over forward passes per image, per defense and attack (on
  the evaluation images, exact 95 % intervals), and the figure."""
  lines = ["| defense | attack | " + " | ".join(
    f"{b:,} passes" for b in results["budgets"]) + " |",
    "|---" * (len(results["budgets"]) + 2) + "|"]  # fmt: skip
  for defense, kinds in sorted(results["curves"].items()):
    eps = 255 * results["eps"][defense]
    for kind, points in sorted(kinds.items()):
      cells = [stats.format_rate(p["successes"], p["n"]) for p in points]
      if kind == "pgd":
        kind = f"PGD x EOT, step eps*{points[0]['step_fraction']:g}"
        cells = [f"{cells[0]} ({points[0]['budget']} gradients)"]
      lines.append(f"| {defense} ({eps:.3g}/255) | {kind} | "
                   + " | ".join(cells) + " |")  # fmt: skip
  return [
    *lines, "",
    _figure(os.path.join(workdir, "blackbox.png"), "black-box", out_dir),
  ]  # fmt: skip


def finetune_section(results: dict):
  b, a = results["before"], results["after"]
  return [
    f"{results['defense']}: clean {_pct(b['clean'])} → {_pct(a['clean'])} %, "
    f"defended {_pct(b['defended'])} → {_pct(a['defended'])} % "
    f"({results['num_eval']} held-out images).",
  ]


def section(workdir: str, out_dir: str, dry_run: bool = False) -> list[str]:
  """The report section of one workdir (title, numbers, figures)."""
  name = os.path.basename(os.path.normpath(workdir))
  results = workdir_lib.read_json(os.path.join(workdir, "results.json"))
  lines = [f"## {name}{' (DRY RUN)' if dry_run else ''}", ""]
  # The paper's numbers follow the config's experiment (a workdir of any
  # name, e.g. runs/table2_network for config table2_cifar).
  config_path = os.path.join(workdir, "config.json")
  experiment = name
  if os.path.exists(config_path):
    config = workdir_lib.read_json(config_path).get("config", {})
    experiment = config.get("experiment", name)
  if "success_rate" in results:
    lines += grid_section(experiment, results, workdir, out_dir)
  elif "defenses" in results and "goals" in results:
    lines += invariance_section(experiment, results, workdir, out_dir)
  elif "max_abs_simulation_error" in results:
    lines += section5_section(results, workdir, out_dir)
  elif "by_epoch" in results:
    lines += finetune_section(results)
  elif "sanity" in results:  # An audit (`stochjax.audit`).
    lines += [
      f"* {section}: {verdict}"
      for section, verdict in audit.verdicts(results).items()
    ]
  elif "curves" in results:  # The blog's black-box claim.
    lines += blackbox_section(results, workdir, out_dir)
  elif "eps_arms" in results:
    eps = ", ".join(f"{255 * e:.3g}" for e in results["eps_values"])
    lines += [f"ε sensitivity at ε = {eps} /255: the secondary comparisons "
              "and the figure above."]  # fmt: skip
  elif "comparisons" in results or "arms" in results:
    lines += ["Comparisons only (see the verdict table)."]
  else:
    raise ValueError(f"{workdir}/results.json is not from a known experiment.")
  wall = results.get("wall_seconds")
  if wall is not None:
    lines += ["", f"Wall time {wall:.0f} s."]
  return [*lines, ""]


def _contrast_lines(contrast: dict) -> list[str]:
  """One of claim (ii)'s secondary contrasts, as a sentence."""
  if "not_run" in contrast:
    return [f"Claim (ii)'s contrast of {contrast['strong']} with "
            f"{contrast['weak']}: not run ({contrast['not_run']}).", ""]  # fmt: skip
  diff = contrast["difference"]
  low, high = diff["ci"]
  return [
    f"Claim (ii)'s contrast (secondary): on {contrast['n']} evaluation "
    f"images retained under both {contrast['strong']} and "
    f"{contrast['weak']} ({contrast['goal']}; other models and eps), the "
    f"EOT gain under {contrast['strong']} minus under {contrast['weak']}: "
    f"{100 * diff['estimate']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] "
    f"points (bootstrap 95 %); exact sign-flip p = "
    f"{contrast['p_one_sided']:.3g} (one-sided).",
    "",
  ]


def _replication_lines(decided: dict) -> list[str]:
  """A section per replication setting (another data set or model): its
  own decisions by the same plan, never pooled with the primary's."""
  lines = []
  for rep in decided.get("replications", []):
    ran = any(d["decision"] != "not run" for d in rep["decisions"])
    lines += [
      f"### Replication: {rep['dataset']}, {rep['model']}",
      "",
      "The plan's rules, families and Holm adjustment within this setting "
      "alone (amendment 4); a primary decision replicates only where it "
      "holds here too, at every seed run.",
      "",
      *(verdicts.decision_table(rep) if ran else ["No claim config ran here."]),
      "",
      *verdicts.book_lines(rep.get("book")),
      *blog.lines(rep.get("blog")),
      *(line for c in rep["claim_ii_contrasts"] for line in _contrast_lines(c)),
    ]
  return lines


def eps_sensitivity_figure(records: list[dict], path: str) -> None:
  """EOT − no EOT against eps, one line per defense and goal, with 95 %
  intervals; hollow markers where the comparison is untestable
  (saturated or too few retained images)."""
  groups = sorted({(r["defense"], r["goal"]) for r in records})
  fig, ax = figures.subplots(figsize=(6.4, 4.0))
  for i, (defense, goal) in enumerate(groups):
    mine = sorted((r for r in records
                   if (r["defense"], r["goal"]) == (defense, goal)),
                  key=lambda r: r["eps"])  # fmt: skip
    # Dodged a little on the log axis, so intervals do not overlap.
    dodge = 2 ** (0.06 * (i - (len(groups) - 1) / 2))
    x = np.array([255 * r["eps"] * dodge for r in mine])
    y = np.array([100 * r["difference"]["estimate"] for r in mine])
    err = np.array([[100 * (r["difference"]["estimate"]
                            - r["difference"]["ci"][0]),
                     100 * (r["difference"]["ci"][1]
                            - r["difference"]["estimate"])]
                    for r in mine]).T  # fmt: skip
    line = ax.errorbar(x, y, yerr=err, fmt="-", capsize=3,
                       label=f"{defense}, {goal}")[0]  # fmt: skip
    testable = np.array([r["region"] != "untestable" for r in mine])
    ax.plot(x[testable], y[testable], "o", color=line.get_color())
    ax.plot(x[~testable], y[~testable], "o", mfc="white",
            color=line.get_color())  # fmt: skip
  margin = 100 * records[0]["margin"]
  for level in (-margin, margin):
    ax.axhline(level, color="grey", lw=0.8, ls="--")
  ax.axhline(0, color="grey", lw=0.8)
  ax.set_xscale("log", base=2)
  ticks = sorted({255 * r["eps"] for r in records})
  ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
  ax.minorticks_off()
  ax.set_xlabel("ε (/255)")
  ax.set_ylabel("EOT − no EOT success (points, 95 %)")
  ax.set_title("PGD-10 x EOT-10 vs PGD-100 x EOT-1, steps chosen on "
               "calibration images; hollow: untestable", fontsize=8)  # fmt: skip
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


ARCHIVED = ("results.json", "config.json")


def archive(workdirs: list[str], folder: str) -> list[str]:
  """Copies each finished workdir's `ARCHIVED` files (not dry runs, not
  checkpoints) to ``<folder>/<workdir name>/``, replacing an older copy;
  returns the runs to report: the finished `workdirs` themselves (their
  figures are there) and the archived copies of every other run in
  `folder`. A report of the archive covers every run archived so far, so
  runs re-done in one session join those of earlier sessions.

  Raises:
    ValueError: a dry run or a ``:smoke`` run among `workdirs`.
  """
  done = [w for w in workdirs if os.path.exists(os.path.join(w, ARCHIVED[0]))]
  _dry_runs(done, allow=False)
  for workdir in done:
    path = os.path.join(workdir, "config.json")
    command = workdir_lib.read_json(path).get("command", []) if os.path.exists(
      path) else []  # fmt: skip
    if any(a.startswith("--config") and a.endswith(":smoke") for a in command):
      raise ValueError(
        f"{workdir}: a :smoke run (CI sizes), not a result; leave it out."
      )
  for workdir in done:
    target = os.path.join(folder, os.path.basename(os.path.normpath(workdir)))
    os.makedirs(target, exist_ok=True)
    for name in ARCHIVED:
      if os.path.exists(os.path.join(workdir, name)):
        workdir_lib.write_json_atomic(
          os.path.join(target, name),
          workdir_lib.read_json(os.path.join(workdir, name)),
        )
  live = {os.path.basename(os.path.normpath(w)): w for w in done}
  return sorted(
    live.get(name, os.path.join(folder, name))
    for name in os.listdir(folder)
    if os.path.exists(os.path.join(folder, name, ARCHIVED[0]))
  )


def runs(workdirs: list[str]) -> list[verdicts.Run]:
  """The claim-bearing runs among `workdirs` (results with arms), each with
  its config's experiment, seed, data set and model."""
  out = []
  for workdir in workdirs:
    results = workdir_lib.read_json(os.path.join(workdir, "results.json"))
    if not {"arms", "gap_arms", "eps_arms", "comparisons"} & results.keys():
      continue
    config_path = os.path.join(workdir, "config.json")
    config = {}
    if os.path.exists(config_path):
      config = workdir_lib.read_json(config_path).get("config", {})
    experiment = config.get("experiment", os.path.basename(workdir))
    dataset, model = analysis.PRIMARY_SETTING
    out.append(verdicts.Run(
      experiment, int(config.get("seed", 0)), results, workdir,
      dataset=config.get("dataset", dataset),
      model=config.get("model", {}).get("name", model),
    ))  # fmt: skip
  return out


def _dry_runs(workdirs: list[str], allow: bool) -> list[str]:
  """The workdirs holding dry runs (`stochjax.harness.dry_run`).

  Raises:
    ValueError: a dry run, unless `allow`.
  """
  dry = [
    w
    for w in workdirs
    if workdir_lib.read_json(os.path.join(w, "results.json")).get("dry_run")
  ]
  if dry and not allow:
    raise ValueError(
      f"{', '.join(dry)}: dry runs (random weights, synthetic data), not "
      "results; leave them out, or pass allow_dry_run (--allow_dry_run)."
    )
  return dry


README_BEGIN = "<!-- verdicts: generated by stochjax report --readme -->"
README_END = "<!-- verdicts: end -->"


def write_readme_summary(readme: str, decided: dict) -> None:
  """Rewrites the generated verdict summary between `README_BEGIN` and
  `README_END` in `readme`.

  Raises:
    ValueError: the README lacks the markers.
  """
  with open(readme) as f:
    text = f.read()
  if README_BEGIN not in text or README_END not in text:
    raise ValueError(f"{readme} has no '{README_BEGIN}' ... '{README_END}'.")
  head, rest = text.split(README_BEGIN, 1)
  _, tail = rest.split(README_END, 1)
  body = "\n".join(verdicts.summary(decided))
  workdir_lib.write_text_atomic(
    readme, f"{head}{README_BEGIN}\n{body}\n{README_END}{tail}"
  )


def write(workdirs: list[str], out: str, json_out: str | None = None, *,
          allow_dry_run: bool = False, readme: str | None = None) -> str:  # fmt: skip
  """Writes the report for `workdirs` (those without results.json are
  skipped and listed) to `out` and, if asked, the comparisons to
  `json_out`; returns the markdown.

  Raises:
    ValueError: a dry run among the workdirs, unless `allow_dry_run` (the
      report then says so in its title and sections).
  """
  out_dir = os.path.dirname(os.path.abspath(out))
  done = [
    w for w in workdirs if os.path.exists(os.path.join(w, "results.json"))
  ]
  missing = sorted(set(workdirs) - set(done))
  dry = _dry_runs(done, allow_dry_run)
  arm_runs = runs(sorted(done))
  decided = verdicts.decide(arm_runs)
  lines = ["# stochjax results", ""]
  if dry:
    lines = [
      "# stochjax results: DRY RUN",
      "",
      f"Dry runs ({', '.join(dry)}): random weights and synthetic data at "
      "minimal sizes. These numbers test the code path; they are not results.",
      "",
    ]
  if missing:
    lines += [f"Not finished (no results.json): {', '.join(missing)}.", ""]
  claim_experiments = {
    e for d in decided["decisions"] for e in d["experiment"].split(" & ")
  }
  if not {r.experiment for r in arm_runs} & claim_experiments:
    # A report of other experiments only (the audit, the book's claim,
    # the eps sensitivity): no table of claims that none of them ran.
    lines += [
      "No run of a claim experiment among these workdirs (claims (i)–(iii) "
      "are decided where one is).",
      "",
    ]
  else:
    lines += _claim_lines(decided)
  lines += [
    *verdicts.book_lines(decided.get("book")),
    *blog.lines(decided.get("blog")),
    *_replication_lines(decided),
    "### Secondary comparisons (fixed steps, Table 2's ablation; 95 %, "
    "unadjusted, never decisive)",
    "",
    *verdicts.secondary_table(decided),
    "",
  ]
  sensitivity = [r for r in decided["comparisons"] if "eps" in r]
  if sensitivity:
    path = os.path.join(out_dir, "figures", "eps_sensitivity.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    eps_sensitivity_figure(sensitivity, path)
    lines += ["ε sensitivity (secondary, the plan's section 8):", "",
              f"![eps sensitivity]({os.path.relpath(path, out_dir)})", ""]  # fmt: skip
  for workdir in sorted(done):
    lines += section(workdir, out_dir, dry_run=workdir in dry)
  text = "\n".join(lines)
  workdir_lib.write_text_atomic(out, text)
  if json_out is not None:
    workdir_lib.write_json_atomic(json_out, decided)
  if readme is not None:
    write_readme_summary(readme, decided)
  return text


def _claim_lines(decided: dict) -> list[str]:
  """The claims, how the plan decides them, and the decision table."""
  plan = decided["analysis_plan"]
  return [
    "## The paper's claims, under the analysis plan",
    "",
    *[f"* ({c}) {text}." for c, text in CLAIMS.items()],
    "",
    "Decided by the pre-registered plan ([analysis_plan.md]"
    "(analysis_plan.md), version "
    f"{plan['version']}, sha256 {decided['analysis_plan_digest'][:12]}; "
    f"secondary analyses amended {', '.join(analysis.AMENDED)}): "
    "each side at the step its calibration images choose; the interval of "
    "EOT − no EOT (Newcombe's paired score interval) on evaluation images "
    "at the family's Bonferroni level against the margin "
    f"δ = {100 * plan['margin']:g} points; p is the exact one-sided "
    'McNemar p of "EOT stronger", Holm-adjusted over the claim\'s '
    "primaries. Claim (iii): per image retained in all four arms, the "
    "gap (defended − undefended success, each checkpoint at its own ε) "
    "after minus before fine-tuning; exact one-sided sign-flip p, "
    "bootstrap interval at the Bonferroni level, Holm. Claim (ii): one "
    "intersection–union test, each component's interval at 90 %. Digits, "
    "ResNet-8s trained here, ε by the rule: not the paper's ImageNet setup.",
    "",
    *verdicts.decision_table(decided),
    "",
    *(
      line
      for contrast in decided.get("claim_ii_contrasts", [])
      for line in _contrast_lines(contrast)
    ),  # fmt: skip
  ]
