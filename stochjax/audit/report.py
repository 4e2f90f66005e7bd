"""An audit as markdown and figures (success against eps; how much the
defense moves each image's prediction)."""

import os

from stochjax import figures as figures_lib
from stochjax import stats

TITLES = {
  "accuracy": "1. Accuracy",
  "randomness": "2. Randomness",
  "adaptive_vs_transfer": "3. Non-adaptive (transfer) vs adaptive",
  "eot_needed": "4. Is EOT needed?",
  "robustness_source": "5. Where the robustness comes from",
  "blackbox": "6. Black-box: Square with and without EOT averaging",
  "sanity": "7. Sanity checks (Carlini et al. 2019; AutoAttack's black-box "
  "flag)",
}


def _side(side: dict) -> str:
  return f"{side['label']}: {stats.format_rate(side['successes'], side['n'])}"


def _test(test: dict) -> str:
  discordant = (
    f", only a / only b {test['only_a']} / {test['only_b']}"
    if test["test"] == "mcnemar"
    else ""
  )
  return (
    f"{_side(test['a'])} vs {_side(test['b'])} ({test['test']}{discordant}, "
    f"p = {test['p_value']:.3g}: {test['verdict']})"
  )


def _plan_record(record: dict) -> str:
  """A comparison under the analysis plan (`stochjax.arms.compare`)."""
  diff = record["difference"]
  low, high = diff["ci"]
  return (
    f"{_side(record['a'])} vs {_side(record['b'])}; EOT − no EOT "
    f"{100 * diff['estimate']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] "
    f"points at {100 * diff['level']:.1f} % (margin "
    f"{100 * record['margin']:g}): {record['words']}, claim (i) "
    f"{record['decision']}; one-sided McNemar p = {record['p_one_sided']:.3g}"
  )


def _lines(name: str, section: dict) -> list[str]:
  """The numbers of one section, one bullet each."""
  if name == "accuracy":
    return [f"* {_side(section['clean'])}", f"* {_side(section['defended'])}"]
  if name == "randomness":
    low, high = section["changed_ci"]
    return [
      f"* draws that change the clean prediction: "
      f"{100 * section['changed_fraction']:.1f} % [{100 * low:.1f}, "
      f"{100 * high:.1f}] of {section['num_draws']} draws per image",
      f"* images whose prediction no draw changes: "
      f"{100 * section['always_kept']:.1f} %",
      f"* logit spread across draws (relative to the clean logits' spread): "
      f"{section['logit_spread']:.3g}",
    ]
  if name in ("adaptive_vs_transfer", "robustness_source"):
    return [f"* {_test(section['test'])}"]
  if name == "blackbox":
    return [f"* {_test(section['eot_test'])}",
            f"* {_test(section['whitebox_test'])}"]  # fmt: skip
  if name == "eot_needed":
    return [f"* budget {t['budget']}: {_plan_record(t)}"
            for t in section["comparisons"]]  # fmt: skip
  if name == "sanity":
    lines = []
    for check in section["checks"]:
      mark = "pass" if check["passed"] else "**FAIL**"
      detail = ""
      if "test" in check:
        detail = _test(check["test"])
      elif "rates" in check:
        detail = ", ".join(
          f"eps {r:g}: {100 * v:.1f} %"
          for r, v in zip(check["radii"], check["rates"], strict=True)
        )
      else:
        side = check.get("largest") or check.get("unbounded")
        detail = _side(side)
      lines.append(f"* {mark}: {check['name']}: {detail}")
    return lines
  return []


def markdown(report: dict, title: str) -> str:
  """The audit as a markdown page: verdicts first, then each section."""
  settings, cost = report["settings"], report["cost"]
  lines = [
    f"# Audit: {title}",
    "",
    f"eps = {255 * settings['eps']:.3g}/255 ({settings['norm']}), "
    f"{settings['num_examples']} images, votes of {settings['num_votes']} "
    f"draws; adaptive attack PGD-{settings['steps']} x "
    f"EOT-{settings['eot_samples']}. Rates carry exact 95 % intervals; comparisons "
    "on the same samples are exact McNemar tests (p < 0.05).",
    "",
    "| section | verdict |",
    "|---|---|",
  ]
  shown = [name for name in TITLES if name in report]
  lines += [f"| {TITLES[name]} | {report[name]['verdict']} |" for name in shown]
  for name in shown:
    lines += ["", f"## {TITLES[name]}", "", *_lines(name, report[name])]
  lines += [
    "",
    "## 8. Cost",
    "",
    f"{cost['grad_evals']:,} input gradients, {cost['forward_evals']:,} "
    f"forward passes, {cost['wall_seconds']:.0f} s on "
    f"{', '.join(cost['devices'])}.",
    "",
    "![success against eps](success_vs_eps.png)",
    "",
    "![randomness](randomness.png)",
    "",
  ]
  return "\n".join(lines)


def figures(report: dict, folder: str) -> None:
  """``success_vs_eps.png`` and ``randomness.png`` in `folder`."""
  check = report["sanity"]["checks"][0]
  fig, ax = figures_lib.subplots(figsize=(5, 3.5))
  ax.plot([255 * r for r in check["radii"]],
          [100 * v for v in check["rates"]], "o-")  # fmt: skip
  ax.set_xscale("log")
  ax.set_xlabel("eps (x 1/255)")
  ax.set_ylabel("adaptive attack success (%)")
  ax.set_ylim(0, 102)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(os.path.join(folder, "success_vs_eps.png"), dpi=120)
  fig, ax = figures_lib.subplots(figsize=(5, 3.5))
  ax.hist(report["randomness"]["invariance_per_sample"], bins=20,
          range=(0, 1))  # fmt: skip
  ax.set_xlabel("fraction of draws keeping the clean prediction")
  ax.set_ylabel("images")
  fig.tight_layout()
  fig.savefig(os.path.join(folder, "randomness.png"), dpi=120)
