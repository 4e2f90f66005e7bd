"""The blog's black-box claim (docs/analysis_plan.md, amendment 7;
`configs/blackbox.py`): per defense entry, Square on the undefended
network and under the defense, EOT-Square at equal forward passes, and
PGD x EOT (white-box), each evaluated by the paper's vote.

Square keeps its points after each budget of ``config.blackbox.budgets``
(forward passes per image) in one scan (`attacks.make_square`'s
snapshots); EOT-Square with m draws per query keeps them after a m-th of
those queries. Every arm is a workdir cell, so a killed run resumes; the
arms (`stochjax.arms.arm`, with their ``attack`` kind) go to results.json
for `stochjax.harness.verdicts.blog`, the success curves to
``blackbox.png``.
"""

import functools

import ml_collections
import numpy as np

from stochjax import arms as arms_lib
from stochjax import attacks, defenses, evaluate, figures, prng, progress, stats
from stochjax.harness import experiment
from stochjax.harness import workdir as workdir_lib
from stochjax.paper import section4

GOAL = "untargeted"
KINDS = ("square_undefended", "square", "eot_square")


def _square(grid, name, defense, m, budgets) -> attacks.Attack:
  """Square at the entry's eps, `m` draws per query, its points kept after
  each budget of forward passes (`budgets` // m queries)."""
  queries = tuple(b // m for b in budgets)
  return attacks.make_square(
    eps=grid.eps[name], num_queries=max(queries), snapshot_queries=queries,
    p_init=grid.config.blackbox.p_init, eot_samples=m, defense=defense,
  )  # fmt: skip


def _cell(name: str, kind: str, k: int, m: int, fraction: float = 0.0):
  step = f"/step={fraction:g}eps" if kind == "pgd" else ""
  return f"{name}/{kind}{step}/k={k}/m={m}"


def _square_arms(grid, key, name, defense, kind) -> dict:
  """One Square arm at every budget: ``{cell: Evaluation JSON}``."""
  bb = grid.config.blackbox
  budgets = tuple(bb.budgets)
  m = bb.eot_samples if kind == "eot_square" else 1
  undefended = kind == "square_undefended"
  result = evaluate.evaluate_attack(
    key,
    grid.classifier(name, defended=not undefended),
    grid.images,
    grid.labels,
    attack=_square(grid, name, None if undefended else defense, m, budgets),
    defense=None if undefended else defense,
    **grid.protocol(
      GOAL, name, num_votes=1 if undefended else None, defended=not undefended
    ),  # fmt: skip
  )
  return {
    _cell(name, kind, b // m, m): result.at_steps(b // m).to_json()
    for b in budgets
  }


def _whitebox(grid, key, name, defense, fraction) -> dict:
  wb = grid.config.blackbox.whitebox
  result = evaluate.evaluate_attack(
    key,
    grid.classifier(name),
    grid.images,
    grid.labels,
    attack=grid.pgd(
      name,
      GOAL,
      fraction,
      num_steps=wb["steps"],
      eot_samples=wb["eot_samples"],
      defense=defense,
    ),  # fmt: skip
    defense=defense,
    **grid.protocol(GOAL, name),
  )
  cell = _cell(name, "pgd", wb["steps"], wb["eot_samples"], fraction)
  return {cell: result.to_json()}


def _arm(grid, cell: dict, name: str, kind: str, k, m, fraction) -> dict:
  return arms_lib.arm(
    evaluate.Evaluation.from_json(cell), grid.split["calibration"],
    defense=name, goal=GOAL, k=int(k), m=int(m),
    step_fraction=float(fraction), attack=kind,
  )  # fmt: skip


def curves(arms: list[dict]) -> dict:
  """Per defense and Square kind: success over forward passes per image
  (``k * m``) on the evaluation images, with exact 95 % intervals; the
  white-box arms' gradient budget beside."""
  out: dict = {}
  for a in sorted(arms, key=lambda a: (a["defense"], a["attack"], a["k"])):
    ev = a["evaluation"]["per_sample"]
    low, high = stats.rate_interval(int(sum(ev)), len(ev))
    point = {
      "budget": a["k"] * a["m"], "successes": int(sum(ev)), "n": len(ev),
      "rate": float(np.mean(ev)) if ev else None, "ci": [low, high],
    }  # fmt: skip
    if a["attack"] == "pgd":
      point["step_fraction"] = a["step_fraction"]
    out.setdefault(a["defense"], {}).setdefault(a["attack"], []).append(point)
  return out


def plot(curves_: dict, eps: dict, path: str) -> None:
  """Success over forward passes per image, one panel per defense."""
  names = sorted(curves_)
  fig, axes = figures.subplots(
    1, len(names), figsize=(3.4 * len(names), 3.0), squeeze=False
  )
  labels = {
    "square_undefended": "Square, undefended",
    "square": "Square, defended",
    "eot_square": "EOT-Square, defended",
  }
  for ax, name in zip(axes[0], names, strict=True):
    for kind, label in labels.items():
      points = curves_[name].get(kind, [])
      if not points:
        continue
      x = [p["budget"] for p in points]
      rates = [np.nan if p["rate"] is None else 100 * p["rate"] for p in points]
      ax.plot(x, rates, marker="o", label=label)
      ax.fill_between(
        x, [100 * p["ci"][0] for p in points],
        [100 * p["ci"][1] for p in points], alpha=0.15,
      )  # fmt: skip
    # One dash pattern per white-box step size.
    for i, p in enumerate(curves_[name].get("pgd", [])):
      if p["rate"] is None:
        continue
      ax.axhline(
        100 * p["rate"], linestyle=("--", ":", "-.")[i % 3], color="black",
        linewidth=0.8,
        label=f"PGD x EOT (white-box), step eps*{p['step_fraction']:g}",
      )  # fmt: skip
    ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_title(f"{name}, eps = {255 * eps[name]:.3g}/255", fontsize=9)
    ax.set_xlabel("forward passes per image")
  axes[0][0].set_ylabel("attack success (%)")
  axes[0][-1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def check_budgets(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError unless every budget is a positive multiple of
  EOT-Square's draws (its queries are budget // m: equal forward passes)."""
  bb = config.blackbox
  m = bb.eot_samples
  bad = [b for b in bb.budgets if not (b > 0 and b % m == 0)]
  if bad or m < 1 or not bb.budgets:
    raise ValueError(
      f"blackbox.budgets {tuple(bb.budgets)} must be positive multiples of "
      f"blackbox.eot_samples = {m}."
    )


def run(config: ml_collections.ConfigDict, work: workdir_lib.Workdir) -> dict:
  """Every arm of every defense (resuming); returns the results.

  Raises:
    ValueError: budgets that are not multiples of EOT-Square's draws
      (before anything trains).
  """
  check_budgets(config)
  grid, eval_key, clean_accuracy, sweeps = section4.setup(config, work)
  bb = config.blackbox
  built = {name: defenses.lookup(s.spec) for name, s in grid.settings.items()}
  cells = work.cells()
  todo = [(name, kind, None) for name in built for kind in KINDS] + [
    (name, "pgd", f) for name in built for f in bb.whitebox["step_fractions"]
  ]
  arms = []
  for name, kind, fraction in progress.bar(todo, desc="blackbox arms"):
    # One stream for every arm: the same benign votes, so a defense's arms
    # retain the same images and pair.
    key = prng.stream(eval_key, "blackbox")
    if kind == "pgd":
      wb = bb.whitebox
      index = [(wb["steps"], wb["eot_samples"], fraction)]
      compute = functools.partial(
        _whitebox, grid, key, name, built[name], fraction
      )
    else:
      m = bb.eot_samples if kind == "eot_square" else 1
      index = [(b // m, m, 0.0) for b in bb.budgets]
      compute = functools.partial(
        _square_arms, grid, key, name, built[name], kind
      )
    names = [_cell(name, kind, *i) for i in index]
    cells |= work.cell_group(names, compute)
    for cell, (k, m, f) in zip(names, index, strict=True):
      arms.append(_arm(grid, cells[cell], name, kind, k, m, f))
  curves_ = curves(arms)
  plot(curves_, grid.eps, work.file("blackbox.png"))
  return {
    "split": experiment.split_record(grid.split),
    "arms": arms,
    "clean_accuracy": clean_accuracy,
    "eps": grid.eps,
    "eps_sweep": sweeps,
    "budgets": list(bb.budgets),
    "curves": curves_,
  }
