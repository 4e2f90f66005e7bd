"""Every figure of the paper experiments, drawn from results dicts.

Each function writes one PNG at `path`; none computes anything but layout.
"""

import numpy as np

from stochjax import figures, stats, theory


def heatmap(
  rates: np.ndarray, steps, draws, title: str, path: str, counts=None
) -> None:
  """A Fig. 1-style heatmap: rows EOT samples, columns PGD steps, in %;
  with `counts` (``[[(successes, n)]]``) each cell also shows its exact 95 %
  interval. NaN cells (outside the grid's budget) stay blank."""
  fig, ax = figures.subplots(
    figsize=(1.5 * len(steps) + 1.5, 0.9 * len(draws) + 1)
  )
  image = ax.imshow(100 * rates, cmap="Blues", vmin=0, vmax=100, origin="lower")
  ax.set_xticks(range(len(steps)), [str(s) for s in steps])
  ax.set_yticks(range(len(draws)), [str(m) for m in draws])
  ax.set_xlabel("PGD steps k")
  ax.set_ylabel("EOT samples m")
  ax.set_title(title, fontsize=9)
  for (i, j), value in np.ndenumerate(100 * rates):
    if np.isnan(value):
      continue
    text = f"{value:.1f}"
    if counts is not None and counts[i][j][1]:
      low, high = stats.rate_interval(*counts[i][j])
      text += f"\n[{100 * low:.0f}, {100 * high:.0f}]"
    ax.text(
      j,
      i,
      text,
      ha="center",
      va="center",
      color="white" if value > 60 else "black",
      fontsize=8,
    )
  fig.colorbar(image, ax=ax, label="attack success rate (%)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def plot_before_after(results: dict, path: str) -> None:
  """Fig. 3a/3c, 4a/4c: benign accuracy (green) and attack success (red),
  before (dashed) and after (solid) fine-tuning, per defense."""
  names = list(results["defenses"])
  goals = results["goals"]
  fig, axes = figures.subplots(
    1, len(goals), figsize=(5.5 * len(goals), 3.6), squeeze=False
  )
  x = np.arange(len(names))
  for ax, goal in zip(axes[0], goals, strict=True):
    twin = ax.twinx()
    for when, style in (("before", "--"), ("after", "-")):
      rows = [results["defenses"][n][goal][when] for n in names]
      ax.plot(x, [100 * r["benign_accuracy"] for r in rows], style,
              color="tab:green", marker="o")  # fmt: skip
      twin.plot(x, [100 * r["attack_success_rate"] for r in rows], style,
                color="tab:red", marker="s")  # fmt: skip
    ax.set_xticks(x, results["labels"], rotation=20, fontsize=8)
    ax.set_ylabel("benign accuracy (%)", color="tab:green")
    twin.set_ylabel("attack success rate (%)", color="tab:red")
    ax.set_title(f"{goal}: dashed before, solid after fine-tuning", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def plot_by_epoch(results: dict, path: str) -> None:
  """Fig. 3b/3d, 4b/4d: attack success by fine-tuning epoch per defense."""
  goals = results["goals"]
  fig, axes = figures.subplots(
    1, len(goals), figsize=(5 * len(goals), 3.4), squeeze=False
  )
  for ax, goal in zip(axes[0], goals, strict=True):
    for label, name in zip(results["labels"], results["defenses"], strict=True):
      curve = results["defenses"][name][goal]["by_epoch"]
      ax.plot(curve["epoch"], [100 * r for r in curve["attack_success_rate"]],
              "o-", label=label)  # fmt: skip
    ax.set_xlabel("fine-tuning epoch (0 = clean model)")
    ax.set_ylabel("attack success rate (%)")
    ax.set_title(goal, fontsize=9)
    ax.grid(alpha=0.3)
  axes[0][-1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def accuracy_by_epoch(records: list[dict], defense: str, path: str) -> None:
  """Clean and defended held-out accuracy by fine-tuning epoch (0 = the
  starting model)."""
  epochs = [r["epoch"] for r in records]
  fig, ax = figures.subplots(figsize=(5, 3.5))
  for field, label in (
    ("eval_accuracy", "clean"),
    ("eval_defended_accuracy", "defended (one draw)"),
  ):
    ax.plot(epochs, [100 * r[field] for r in records], "o-", label=label)
  ax.set_xlabel("fine-tuning epoch")
  ax.set_ylabel("held-out accuracy (%)")
  ax.set_title(defense, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)


_LABELS = {
  "undefended": "undefended F (Eq. 4)",
  "defended": "defended F_theta (Eq. 5)",
  "trained": "trained invariant F+ (Eq. 6)",
  "voted": "vote limit = invariant (Eqs. 7-8)",
}


def section5(results: dict, path: str) -> None:
  """Robust accuracy vs sigma: closed forms (lines), simulations (dots),
  finite-n votes (dashed), one panel per eps."""
  rows = results["rows"]
  epsilons = sorted({r["eps"] for r in rows})
  fig, axes = figures.subplots(
    1, len(epsilons), figsize=(5 * len(epsilons), 3.8), squeeze=False
  )
  for ax, eps in zip(axes[0], epsilons, strict=True):
    mine = [r for r in rows if r["eps"] == eps]
    sigmas = [r["sigma"] for r in mine]
    for i, stage in enumerate(theory.STAGES):
      color = f"C{i}"
      ax.plot(sigmas, [r["closed"][stage] for r in mine], color=color,
              label=_LABELS[stage])  # fmt: skip
      if stage != "voted":
        ax.plot(sigmas, [r["simulated"][stage] for r in mine], "o",
                color=color, markersize=3)  # fmt: skip
    for j, n in enumerate(results["num_votes"]):
      ax.plot(sigmas, [r["vote"][str(n)] for r in mine], "--",
              color=f"C{4 + j}", label=f"{n}-vote, fresh draws")  # fmt: skip
    ax.set_xlabel("sigma (std of the randomness)")
    ax.set_ylabel("robust accuracy")
    ax.set_title(f"eps = {eps}")
    ax.grid(alpha=0.3)
  axes[0][-1].legend(fontsize=7, loc="lower right")
  fig.suptitle("Section 5: lines closed form, dots Monte Carlo", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def gap_points(results: dict) -> list[dict]:
  """Per defense, goal and evaluated checkpoint: the gap (defended minus
  undefended success on the images retained in both, each checkpoint at
  its own eps) with its paired 95 % interval (`stats.
  paired_difference_interval`), and the model's invariance."""
  arms = {(a["defense"], a["goal"], a["epoch"], a["kind"]): a
          for a in results["gap_arms"]}  # fmt: skip
  points = []
  for (name, goal, epoch, kind), arm in sorted(arms.items()):
    if kind != "defended":
      continue
    other = arms[(name, goal, epoch, "undefended")]
    defended = dict(zip(arm["indices"], arm["per_sample"], strict=True))
    undefended = dict(zip(other["indices"], other["per_sample"], strict=True))
    common = sorted(set(defended) & set(undefended))
    d = np.array([defended[i] for i in common], bool)
    u = np.array([undefended[i] for i in common], bool)
    estimate, low, high = stats.paired_difference_interval(u, d)
    curve = results["defenses"][name][goal]["by_epoch"]
    invariance = curve["invariance"][curve["epoch"].index(epoch)]
    points.append({"defense": name, "goal": goal, "epoch": epoch,
                   "gap": estimate, "ci": [low, high], "n": len(common),
                   "invariance": invariance})  # fmt: skip
  return points


def plot_gap_vs_invariance(results: dict, path: str) -> None:
  """Claim (iii)'s quantity: the gap (defended minus undefended success,
  with 95 % intervals) against the model's measured invariance to the
  defense, one line per defense from the first to the last checkpoint."""
  points = gap_points(results)
  goals = results["goals"]
  fig, axes = figures.subplots(
    1, len(goals), figsize=(5 * len(goals), 3.6), squeeze=False
  )
  for ax, goal in zip(axes[0], goals, strict=True):
    for label, name in zip(results["labels"], results["defenses"], strict=True):
      mine = [p for p in points if p["defense"] == name and p["goal"] == goal]
      x = [p["invariance"] for p in mine]
      y = [100 * p["gap"] for p in mine]
      err = [[100 * (p["gap"] - p["ci"][0]) for p in mine],
             [100 * (p["ci"][1] - p["gap"]) for p in mine]]  # fmt: skip
      ax.errorbar(x, y, yerr=err, fmt="o-", capsize=3, label=label)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("invariance to the defense (prediction kept)")
    ax.set_ylabel("gap: defended − undefended success (points)")
    ax.set_title(f"{goal}; each checkpoint at its own eps", fontsize=9)
    ax.grid(alpha=0.3)
  axes[0][-1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
