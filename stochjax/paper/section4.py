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
import itertools
import os
import time

import ml_collections
import numpy as np
from absl import logging

from stochjax import attacks, defenses, evaluate, models, prng, progress
from stochjax import data as data_lib
from stochjax import workdir as workdir_lib
from stochjax.paper import plots, setup


def _panel_name(defense: str, goal: str, fraction: float) -> str:
  """One heatmap: a defense, a goal and a step size (a fraction of eps)."""
  return f"{defense}/{goal}/step={fraction:g}eps"


def equal_budget(grid: np.ndarray, steps, draws) -> list[dict]:
  """Every pair of cells with the same budget k x m, EOT vs no EOT: the
  paper's Section 4 comparison (e.g. PGD-50 x EOT-1 vs PGD-10 x EOT-5)."""
  pairs = []
  for (i, m), (j, k) in itertools.product(enumerate(draws), enumerate(steps)):
    for (i2, m2), (j2, k2) in itertools.product(
      enumerate(draws), enumerate(steps)
    ):
      if m2 > m == 1 and k * m == k2 * m2:
        pairs.append(
          {
            "budget": k * m,
            "no_eot": {"k": k, "m": m, "success": grid[i, j]},
            "eot": {"k": k2, "m": m2, "success": grid[i2, j2]},
          }
        )
  return pairs


def markdown_table(grids: dict, steps, draws) -> str:
  lines = []
  for name, grid in grids.items():
    lines.append(f"**{name}** (attack success rate, %)\n")
    lines.append("| EOT m \\ PGD k | " + " | ".join(map(str, steps)) + " |")
    lines.append("|---" * (len(steps) + 1) + "|")
    for i, m in enumerate(draws):
      row = " | ".join(f"{100 * grid[i][j]:.1f}" for j in range(len(steps)))
      lines.append(f"| {m} | {row} |")
    lines.append("")
  return "\n".join(lines)


@dataclasses.dataclass
class _Grid:
  """One run's data, models and settings (see `run`)."""

  config: ml_collections.ConfigDict
  images: np.ndarray
  labels: np.ndarray
  classifiers: dict  # model source (weights folder or training spec) -> fn

  @property
  def settings(self):
    return self.config.defenses

  def classifier(self, name: str):
    setting = self.settings[name]
    return self.classifiers[setting.weights or setting.model]

  def protocol(self, goal: str, name: str, num_votes: int | None = None):
    """The evaluation settings; a defense may set its own vote count and
    aggregation (e.g. Guo et al.'s 30-crop mean softmax)."""
    setting, config = self.settings[name], self.config
    targets = np.full_like(self.labels, config.attack.target)
    return dict(
      num_votes=num_votes
      or setting.get("num_votes")
      or config.attack.num_votes,
      targets=targets if goal == "targeted" else None,
      batch_size=config.batch_size,
      chunk_size=config.vote_chunk_size,
      mesh=setup.mesh(config),
      aggregate=setting.get("aggregate", "hard"),
    )

  def pgd(self, name: str, goal: str, fraction: float, **kwargs):
    eps = self.settings[name].eps
    return attacks.make_pgd(
      eps=eps, step_size=eps * fraction, targeted=goal == "targeted", **kwargs
    )


def _classifiers(config, work, train_key) -> dict:
  """One logits_fn per model source: converted weights, or trained here."""
  classifiers = {}
  for setting in config.defenses.values():
    source = setting.weights or setting.model
    if source in classifiers:
      continue
    if setting.weights:
      classifiers[source] = models.classifier(*models.load(setting.weights))
    else:
      train_set = data_lib.load(
        config.dataset, "train", data_dir=config.data_dir
      )
      classifiers[source] = setup.trained_classifier(
        config, work, train_key, train_set, setting.model
      )
  return classifiers


def _grid_row(grid: _Grid, eval_key, name, defense, goal, fraction, m):
  """One row (defense, goal, step size, m): PGD-max(k) keeping its iterate
  after every k of the grid, which equals PGD-k (step t's draws depend only
  on t). Returns ``{cell name: result}``."""
  steps = list(grid.config.grid.steps)
  panel = _panel_name(name, goal, fraction)
  result = evaluate.evaluate_attack(
    prng.fold(eval_key, 1),
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
  by_steps = result.pop("attack_success_rate_by_steps", {})
  return {
    f"{panel}/k={k}/m={m}": result
    | {
      "attack_success_rate": by_steps.get(k, float("nan")),
      "grad_evals_per_example": k * m,
    }
    for k in steps
  }


def _run_grid(grid: _Grid, work, eval_key, goals, fractions):
  """Every row of the grid (resuming); returns ``(grids, benign,
  grad_evals)``: success rates per panel ``(len(m), len(k))``, benign vote
  accuracy per (defense, goal), and the input gradients spent."""
  steps, draws = (
    list(grid.config.grid.steps),
    list(grid.config.grid.eot_samples),
  )
  cells = work.cells()
  grids, benign, grad_evals = {}, {}, 0
  # One defense object per name, so the jitted votes compile once per defense.
  built = {name: defenses.lookup(s.spec) for name, s in grid.settings.items()}
  todo = list(itertools.product(built.items(), goals, fractions, draws))
  for (name, defense), goal, fraction, m in progress.bar(
    todo, desc="grid rows"
  ):
    panel = _panel_name(name, goal, fraction)
    names = [f"{panel}/k={k}/m={m}" for k in steps]
    if not all(cell in cells for cell in names):
      for cell, value in _grid_row(
        grid, eval_key, name, defense, goal, fraction, m
      ).items():
        cells[cell] = value
        work.save_cell(cell, value)
        work.log_metrics(phase="attack", cell=cell, **value)
    panel_grid = grids.setdefault(panel, np.zeros((len(draws), len(steps))))
    for j, cell in enumerate(names):
      panel_grid[draws.index(m), j] = cells[cell]["attack_success_rate"]
    benign[f"{name}/{goal}"] = cells[names[0]]["benign_accuracy"]
    # Spent: one run of the largest k per row.
    grad_evals += max(steps) * m * cells[names[0]]["num_retained"]
  # Fig. 1's last panels: the best step size per cell.
  for name, goal in itertools.product(grid.settings, goals):
    panels = [grids[_panel_name(name, goal, f)] for f in fractions]
    if len(panels) > 1:
      grids[f"{name}/{goal}/best step"] = np.max(panels, axis=0)
  return grids, benign, grad_evals


def _write_tables(grid: _Grid, work, grids) -> dict:
  """Heatmaps and table.md; returns the equal-budget comparisons."""
  config = grid.config
  steps, draws = list(config.grid.steps), list(config.grid.eot_samples)
  titles = {}
  for panel, rates in grids.items():
    name = panel.split("/")[0]
    titles[panel] = f"{panel}, eps = {255 * grid.settings[name].eps:.3g}/255"
    plots.heatmap(
      rates,
      steps,
      draws,
      f"{titles[panel]} ({config.dataset})",
      work.file(f"heatmap_{setup.file_safe(panel)}.png"),
    )
  table = markdown_table(
    {titles[panel]: rates for panel, rates in grids.items()}, steps, draws
  )
  with open(work.file("table.md"), "w") as f:
    f.write(table)
  print(table)
  return {
    panel: equal_budget(rates, steps, draws) for panel, rates in grids.items()
  }


def run(config: ml_collections.ConfigDict, work: workdir_lib.Workdir) -> dict:
  """Runs the ablation; returns the results dict (also written to workdir)."""
  train_key, eval_key = setup.run_keys(config, 2)
  test_set = data_lib.load_arrays(
    config.dataset, "test", data_dir=config.data_dir
  )
  grid = _Grid(
    config,
    test_set.images[: config.num_examples],
    test_set.labels[: config.num_examples],
    _classifiers(config, work, train_key),
  )
  mesh = setup.mesh(config)
  # Clean (undefended, no noise) test accuracy of each attacked model.
  clean_accuracy = {
    name: evaluate.accuracy(grid.classifier(name), test_set, mesh=mesh)
    for name in grid.settings
  }
  logging.info("clean test accuracy %s", clean_accuracy)
  goals = ["targeted" if t else "untargeted" for t in config.grid.targeted]
  fractions = list(config.grid.step_fractions)
  # The undefended baseline: how strong is PGD at the defense's eps, on the
  # model it attacks, with no defense at all (the first step size)?
  undefended = {
    f"{name}/{goal}": evaluate.evaluate_attack(
      prng.fold(eval_key, 0),
      grid.classifier(name),
      grid.images,
      grid.labels,
      attack=grid.pgd(
        name, goal, fractions[0], num_steps=max(config.grid.steps)
      ),
      defense=None,
      **grid.protocol(goal, name, num_votes=1),
    )
    for name in grid.settings
    for goal in goals
  }
  start = time.time()
  grids, benign, grad_evals = _run_grid(grid, work, eval_key, goals, fractions)
  comparisons = _write_tables(grid, work, grids)
  return {
    "clean_accuracy": clean_accuracy,
    "undefended_attack": undefended,
    "benign_accuracy": benign,
    "success_rate": {panel: g.tolist() for panel, g in grids.items()},
    "equal_budget": comparisons,
    "steps": list(config.grid.steps),
    "eot_samples": list(config.grid.eot_samples),
    "attack_grad_evals": grad_evals,
    "grid_seconds": time.time() - start,
    "table_md": os.path.basename(work.file("table.md")),
  }
