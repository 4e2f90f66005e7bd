"""The paper's Section 4 finding: at equal budget k x m, is EOT needed?

The engine of the main job, Tables 1-2 and Figs. 1-2: `run` trains (or
restores) a classifier per defense, then runs PGD-k with EOT-m over a grid
of (k, m) (per goal and step size), evaluates every cell with the paper's
majority-vote protocol, and writes the success-rate tables (results.json and
table.md) and one heatmap per panel (as the paper's Fig. 1). Finished cells
are recorded in the workdir, so an interrupted run resumes where it stopped
and gives the same table.
"""

import dataclasses
import functools
import itertools
import os
import time

import ml_collections
import numpy as np
from absl import logging

from stochjax import arms as arms_lib
from stochjax import (
  attacks,
  defenses,
  eps_rule,
  evaluate,
  prng,
  progress,
  stats,
  validation,
  voting,
)
from stochjax.harness import experiment
from stochjax.harness import grid as grid_lib
from stochjax.harness import workdir as workdir_lib
from stochjax.paper import attacked, plots


def panel_name(defense: str, goal: str, fraction: float) -> str:
  """One heatmap: a defense, a goal and a step size (a fraction of eps)."""
  return f"{defense}/{goal}/step={fraction:g}eps"


def equal_budget(grid: np.ndarray, steps, draws) -> list[dict]:
  """Every pair of cells with the same budget k x m, EOT vs no EOT: the
  paper's Section 4 comparison (e.g. PGD-50 x EOT-1 vs PGD-10 x EOT-5).
  Cells outside the grid's budget (NaN) pair with nothing."""
  pairs = []
  for (i, m), (j, k) in itertools.product(enumerate(draws), enumerate(steps)):
    for (i2, m2), (j2, k2) in itertools.product(
      enumerate(draws), enumerate(steps)
    ):
      if m2 > m == 1 and k * m == k2 * m2:
        if np.isnan(grid[i, j]) or np.isnan(grid[i2, j2]):
          continue
        pairs.append(
          {
            "budget": k * m,
            "no_eot": {"k": k, "m": m, "success": grid[i, j]},
            "eot": {"k": k2, "m": m2, "success": grid[i2, j2]},
          }
        )
  return pairs


def _cell(panel: str, k: int, m: int) -> str:
  return f"{panel}/k={k}/m={m}"


def markdown_table(grids: dict, counts: dict, axes: dict) -> str:
  """One table per panel: each cell's success rate, its exact 95 %
  interval and the samples behind it; `axes` maps a panel to its
  ``(steps, eot_samples)``."""
  lines = []
  for name, grid in grids.items():
    steps, draws = axes[name]
    lines.append(f"**{name}** (attack success rate, exact 95 % interval)\n")
    lines.append("| EOT m \\ PGD k | " + " | ".join(map(str, steps)) + " |")
    lines.append("|---" * (len(steps) + 1) + "|")
    for i, m in enumerate(draws):
      row = []
      for j in range(len(steps)):
        if np.isnan(grid[i][j]):
          row.append("–")
        elif name in counts:
          row.append(stats.format_rate(*counts[name][i][j]))
        else:
          row.append(f"{100 * grid[i][j]:.1f} %")
      lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines.append("")
  return "\n".join(lines)


@dataclasses.dataclass
class Grid:
  """One run's data, models and settings (see `run`)."""

  config: ml_collections.ConfigDict
  images: np.ndarray
  labels: np.ndarray
  attacked: dict  # defense name -> `attacked.Attacked`
  split: dict  # "calibration", "evaluation" -> positions in `images`
  eps: dict = dataclasses.field(default_factory=dict)  # defense -> radius

  @property
  def settings(self):
    return self.config.defenses

  def classifier(self, name: str, defended: bool = True):
    """The model defense `name` protects (with SAP's randomness when
    `defended`), or the bare network."""
    entry = self.attacked[name]
    return entry.model if defended else entry.undefended

  def axes(self, name: str) -> ml_collections.ConfigDict:
    return grid_lib.axes(self.config, name)

  def target(self, name: str) -> int:
    """The target class: ``config.attack.target`` (negative counts from the
    last class, as the paper's code targets the last one)."""
    k = validation.num_classes(self.classifier(name), self.images[:1])
    return self.config.attack.target % k

  def protocol(self, goal: str, name: str, num_votes: int | None = None,
               defended: bool = True):  # fmt: skip
    """The evaluation settings; a defense may set its own vote count and
    aggregation (e.g. Guo et al.'s 30-crop mean softmax), and a detector."""
    setting, config = self.settings[name], self.config
    targets = np.full_like(self.labels, self.target(name))
    return dict(
      num_votes=num_votes
      or setting.get("num_votes")
      or config.attack.num_votes,
      targets=targets if goal == "targeted" else None,
      batch_size=config.batch_size,
      chunk_size=config.vote_chunk_size,
      mesh=experiment.mesh(config),
      aggregate=setting.get("aggregate", "hard"),
      detector=self.attacked[name].detector if defended else None,
    )

  def pgd(self, name: str, goal: str, fraction: float, defended=True, **kw):
    """PGD at the defense's eps; `defended`, with the entry's loss and the
    defense its EOT draws from (`attacked.Attacked`)."""
    eps, entry = self.eps[name], self.attacked[name]
    m = kw.get("eot_samples", 1)
    most = self.config.attack.get("max_eot_chunk", 0) or m
    # Draws at a time: the largest divisor of m within the config's bound.
    kw["eot_chunk_size"] = max(
      d for d in range(1, min(m, most) + 1) if m % d == 0
    )
    if defended:
      kw["loss"] = entry.loss
      if entry.defense_for_attack(eps) is not None:
        kw["defense"] = entry.defense_for_attack(eps)
    return attacks.make_pgd(
      eps=eps, step_size=eps * fraction, targeted=goal == "targeted", **kw
    )


def eps_sweep(grid: Grid, name: str, key) -> dict:
  """The config's ``eps_rule`` (`stochjax.eps_rule.from_config`) on the
  model that defense `name` attacks, on the calibration images only."""
  calibration = grid.split["calibration"]
  return eps_rule.from_config(
    key,
    grid.classifier(name, defended=False),
    grid.images[calibration],
    grid.labels[calibration],
    grid.config.eps_rule,
  )


def grid_row(grid: Grid, eval_key, name, defense, goal, fraction, m,
              steps=None, panel=None):  # fmt: skip
  """One row (defense, goal, step size, m): PGD-max(k) keeping its iterate
  after every k of the row, which equals PGD-k (step t's draws depend only
  on t). `steps` default to the grid's within its budget, `panel` to the
  grid's panel name. Returns ``{cell name: Evaluation JSON}`` (PGD-k's,
  `evaluate.Evaluation.at_steps`)."""
  grid_config = grid.axes(name)
  if steps is None:
    steps = grid_lib.in_budget(
      grid_config.steps, m, grid_config.get("max_budget", 0)
    )
  panel = panel or panel_name(name, goal, fraction)
  result = evaluate.evaluate_attack(
    prng.stream(eval_key, "grid"),
    grid.classifier(name),
    grid.images,
    grid.labels,
    attack=grid.pgd(
      name, goal, fraction, num_steps=max(steps), eot_samples=m,
      defense=defense, snapshot_steps=tuple(steps),
    ),
    defense=defense,
    **grid.protocol(goal, name),
  )  # fmt: skip
  return {_cell(panel, k, m): result.at_steps(k).to_json() for k in steps}


def _ablation(grid: Grid, work, eval_key, goals, cells) -> None:
  """Table 2's own comparison: PGD without EOT run much longer with a much
  smaller step (``grid.ablation``: its step counts, one compile through
  snapshot steps, and ``step_fraction`` x eps); its cells join `cells`
  (arms the plan compares with the EOT cell, as secondary rows)."""
  for name, setting in grid.settings.items():
    ablation = grid.axes(name).get("ablation")
    if ablation is None:
      continue
    defense = defenses.lookup(setting.spec)
    for goal in goals:
      steps = tuple(ablation.steps)
      panel = f"{name}/{goal}/ablation"
      names = [_cell(panel, k, 1) for k in steps]
      cells |= work.cell_group(
        names,
        functools.partial(
          grid_row, grid, eval_key, name, defense, goal,
          ablation.step_fraction, 1, steps=steps, panel=panel,
        ),
      )  # fmt: skip


def _run_grid(grid: Grid, work, eval_key, goals):
  """Every row of the grid (resuming); returns ``(grids, counts, benign,
  grad_evals, cells)``: success rates per panel ``(len(m), len(k))`` of
  its defense's axes (NaN outside the budget), their ``(successes, n)``,
  benign vote accuracy per (defense, goal), the input gradients spent, and
  the finished cells."""
  cells = work.cells()
  grids, counts, benign, grad_evals = {}, {}, {}, 0
  # One defense object per name, so the jitted votes compile once per defense.
  built = {name: defenses.lookup(s.spec) for name, s in grid.settings.items()}
  todo = [
    (name, goal, fraction, m)
    for name in built
    for goal in goals
    for fraction in grid.axes(name).step_fractions
    for m in grid.axes(name).eot_samples
  ]
  for name, goal, fraction, m in progress.bar(todo, desc="grid rows"):
    axes = grid.axes(name)
    steps, draws = list(axes.steps), list(axes.eot_samples)
    panel = panel_name(name, goal, fraction)
    row_steps = grid_lib.in_budget(steps, m, axes.get("max_budget", 0))
    if not row_steps:
      continue
    names = [_cell(panel, k, m) for k in row_steps]

    def row(name=name, goal=goal, fraction=fraction, m=m):
      done = grid_row(grid, eval_key, name, built[name], goal, fraction, m)
      for cell, value in done.items():
        work.log_metrics(phase="attack", cell=cell, **value)
      return done

    cells |= work.cell_group(names, row)
    rates = grids.setdefault(panel, np.full((len(draws), len(steps)), np.nan))
    count = counts.setdefault(panel, [[(0, 0)] * len(steps) for _ in draws])
    for k, cell in zip(row_steps, names, strict=True):
      i, j = draws.index(m), steps.index(k)
      outcome = evaluate.Evaluation.from_json(cells[cell]).attack
      rates[i, j] = outcome.success_rate
      count[i][j] = (outcome.successes, len(outcome.per_sample))
    first = evaluate.Evaluation.from_json(cells[names[0]])
    benign[f"{name}/{goal}"] = first.benign_accuracy
    # Spent: one run of the row's largest k.
    grad_evals += max(row_steps) * m * first.num_retained
  # Fig. 1's last panels: the best step size per cell.
  for name, goal in itertools.product(grid.settings, goals):
    fractions = grid.axes(name).step_fractions
    panels = [grids[panel_name(name, goal, f)] for f in fractions]
    if len(panels) > 1:
      grids[f"{name}/{goal}/best step"] = np.fmax.reduce(panels)
  return grids, counts, benign, grad_evals, cells


def panel_axes(grid: Grid, panel: str) -> tuple[list, list]:
  """``(steps, eot_samples)`` of a panel (its defense's axes)."""
  axes = grid.axes(panel.split("/")[0])
  return list(axes.steps), list(axes.eot_samples)


def _control_line(undefended: dict, panel: str) -> str:
  """The panel's undefended control: the same PGD, no defense, one vote."""
  control = undefended.get("/".join(panel.split("/")[:2]))
  if control is None:
    return ""
  outcome = evaluate.Evaluation.from_json(control).attack
  return (
    f"Undefended control (PGD-{outcome.num_steps}, no defense, same eps): "
    f"{stats.format_rate(outcome.successes, len(outcome.per_sample))}.\n"
  )


def _write_tables(grid: Grid, work, grids, counts, undefended) -> dict:
  """Heatmaps and table.md (each panel with its undefended control);
  returns the equal-budget pairs per panel."""
  config = grid.config
  titles = {}
  for panel, rates in grids.items():
    name = panel.split("/")[0]
    titles[panel] = f"{panel}, eps = {255 * grid.eps[name]:.3g}/255"
    plots.heatmap(
      rates,
      *panel_axes(grid, panel),
      f"{titles[panel]} ({config.dataset})",
      work.file(f"heatmap_{experiment.file_safe(panel)}.png"),
      counts=counts.get(panel),
    )
  table = markdown_table(
    {titles[panel]: rates for panel, rates in grids.items()},
    {titles[panel]: c for panel, c in counts.items()},
    {titles[panel]: panel_axes(grid, panel) for panel in grids},
  )
  table += "\n" + "".join(
    f"{titles[panel]}: " + _control_line(undefended, panel)
    for panel in grids
    if _control_line(undefended, panel)
  )
  with open(work.file("table.md"), "w") as f:
    f.write(table)
  print(table)
  return {
    panel: equal_budget(rates, *panel_axes(grid, panel))
    for panel, rates in grids.items()
  }


def _undefended(grid: Grid, work, eval_key, goals) -> dict:
  """The control: PGD-max(k) at each defense's eps on the model it
  attacks, with no defense (the first step size), per goal; one cell
  each (a resumed run keeps it)."""

  def control(name, goal):
    return evaluate.evaluate_attack(
      prng.stream(eval_key, "undefended_control"),
      grid.classifier(name, defended=False),
      grid.images,
      grid.labels,
      attack=grid.pgd(
        name,
        goal,
        grid.axes(name).step_fractions[0],
        defended=False,
        num_steps=max(grid.axes(name).steps),
      ),
      defense=None,
      **grid.protocol(goal, name, num_votes=1, defended=False),
    ).to_json()

  return {
    f"{name}/{goal}": work.cell(
      f"undefended_control/{name}/{goal}",
      functools.partial(control, name, goal),
    )
    for name in grid.settings
    for goal in goals
  }


def grid_arms(grid: Grid, cells: dict) -> list[dict]:
  """Every grid cell as an arm of the analysis plan (`stochjax.arms`):
  its attack (defense, goal, k, m, step fraction), success on the retained
  calibration images, and per-image outcomes on the retained evaluation
  images (by position)."""
  out = []
  for name, cell in sorted(cells.items()):
    parts = name.split("/")
    if len(parts) != 5 or parts[0] not in grid.settings:
      continue
    if parts[2] == "ablation":  # Table 2's long no-EOT runs.
      fraction = grid.axes(parts[0]).ablation.step_fraction
    elif parts[2].startswith("step="):
      fraction = float(parts[2].removeprefix("step=").removesuffix("eps"))
    else:
      continue
    out.append(
      arms_lib.arm(
        evaluate.Evaluation.from_json(cell),
        grid.split["calibration"],
        defense=parts[0],
        goal=parts[1],
        k=int(parts[3].removeprefix("k=")),
        m=int(parts[4].removeprefix("m=")),
        step_fraction=fraction,
        ablation=parts[2] == "ablation",
      )
    )
  return out


def _with_interval(cell: dict) -> dict:
  """An Evaluation's JSON with its attack's successes and exact interval."""
  outcome = evaluate.Evaluation.from_json(cell).attack
  k, n = outcome.successes, len(outcome.per_sample)
  return cell | {
    "attack_successes": k,
    "attack_success_ci": list(stats.rate_interval(k, n)),
  }


def setup(config: ml_collections.ConfigDict, work: workdir_lib.Workdir):
  """The data, split, models (trained or restored), clean accuracies and
  working eps of every defense entry (each a workdir cell); returns
  ``(grid, eval_key, clean_accuracy, eps_sweeps)``."""
  train_key, eval_key = experiment.run_streams(config, ("train", "evaluation"))
  test_set = experiment.dataset(config, "test", arrays=True)
  images = test_set.images[: config.num_examples]
  grid = Grid(
    config,
    images,
    test_set.labels[: config.num_examples],
    attacked.build(config, work, train_key, prng.stream(eval_key, "detectors")),
    experiment.test_split(config, len(images)),
  )
  mesh = experiment.mesh(config)
  # Clean (undefended, no noise) test accuracy of each attacked network.
  clean_accuracy = {
    name: work.cell(
      f"clean_accuracy/{name}",
      lambda name=name: voting.accuracy(
        grid.classifier(name, defended=False), test_set, mesh=mesh
      ),
    )
    for name in grid.settings
  }
  logging.info("clean test accuracy %s", clean_accuracy)
  sweeps = {}
  for name, setting in grid.settings.items():
    grid.eps[name] = setting.eps
    if config.eps_rule.use:
      sweeps[name] = work.cell(
        f"eps_sweep/{name}",
        functools.partial(
          eps_sweep, grid, name, prng.stream(eval_key, "eps_rule", name)
        ),
      )
      if sweeps[name]["picked"] is None:
        logging.warning("%s: no correct image for the eps rule.", name)
      else:
        grid.eps[name] = sweeps[name]["picked"]
  logging.info("working eps %s", grid.eps)
  return grid, eval_key, clean_accuracy, sweeps


def run(config: ml_collections.ConfigDict, work: workdir_lib.Workdir) -> dict:
  """Runs the ablation; returns the results dict (also written to workdir)."""
  grid, eval_key, clean_accuracy, sweeps = setup(config, work)
  goals = ["targeted" if t else "untargeted" for t in config.grid.targeted]
  undefended = _undefended(grid, work, eval_key, goals)
  start = time.time()
  grids, counts, benign, grad_evals, cells = _run_grid(
    grid, work, eval_key, goals
  )
  pairs = _write_tables(grid, work, grids, counts, undefended)
  _ablation(grid, work, eval_key, goals, cells)
  return {
    # Every cell attacks all images (an image's outcome does not depend on
    # the others: keys fold its index); the analysis reads calibration and
    # evaluation positions apart (`stochjax.analysis`).
    "split": experiment.split_record(grid.split),
    "arms": grid_arms(grid, cells),
    "clean_accuracy": clean_accuracy,
    "eps": grid.eps,
    "eps_sweep": sweeps,
    "detectors": attacked.summary(grid.attacked),
    "undefended_attack": {
      name: _with_interval(cell) for name, cell in undefended.items()
    },
    "benign_accuracy": benign,
    "success_rate": {panel: g.tolist() for panel, g in grids.items()},
    "success_counts": counts,
    "equal_budget": pairs,
    "steps": list(config.grid.steps),
    "eot_samples": list(config.grid.eot_samples),
    "axes": {panel: panel_axes(grid, panel) for panel in grids},
    "attack_grad_evals": grad_evals,
    "grid_seconds": time.time() - start,
    "table_md": os.path.basename(work.file("table.md")),
  }
