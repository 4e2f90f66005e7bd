"""The paper's Section 4 finding: at equal budget k x m, is EOT needed?

`run` trains (or restores) a classifier, then for each defense runs PGD-k with
EOT-m over a grid of (k, m), evaluates every cell with the paper's
majority-vote protocol, and writes the success-rate table (results.json and a
markdown table) and one heatmap per defense (as the paper's Fig. 1).
Finished cells are recorded in the workdir, so an interrupted run resumes
where it stopped and gives the same table.
"""

import itertools
import os
import re
import time

import jax
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import tqdm
from absl import logging

from stochjax import (
  app,
  attacks,
  defenses,
  evaluate,
  models,
  sharding,
  train,
)
from stochjax import data as data_lib


def build_classifier(config, workdir: app.Workdir, key, train_set, augment):
  """Trains the model (resuming), returns its logits_fn.

  `augment` is a defense spec applied to training images (randomized
  smoothing models are trained on their own noise, as Cohen et al.'s), or
  "" for clean training.
  """
  model = models.get_model(
    config.model.name,
    num_classes=train_set.num_classes,
    stem=config.model.stem,
  )

  name = _file_safe(augment) or "clean"

  def on_epoch(epoch, metrics):
    workdir.log_metrics(phase="train", model=name, epoch=epoch, **metrics)

  variables = train.train(
    key=key,
    model=model,
    train_set=train_set,
    defense_spec=augment or None,
    epochs=config.train.epochs,
    batch_size=config.train.batch_size,
    mesh=sharding.from_config(config),
    learning_rate=config.train.learning_rate,
    weight_decay=config.train.weight_decay,
    checkpoint_dir=os.path.join(train.checkpoint_path(workdir.path), name),
    on_epoch=on_epoch,
  )
  return models.classifier(model, variables)


def _panel_name(defense: str, goal: str, fraction: float) -> str:
  """One heatmap: a defense, a goal and a step size (a fraction of eps)."""
  return f"{defense}/{goal}/step={fraction:g}eps"


def _file_safe(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_")


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


def heatmap(rates: np.ndarray, steps, draws, title: str, path: str) -> None:
  """A Fig. 1-style heatmap: rows EOT samples, columns PGD steps, in %."""
  fig, ax = plt.subplots(figsize=(1.1 * len(steps) + 1.5, 0.8 * len(draws) + 1))
  image = ax.imshow(100 * rates, cmap="Blues", vmin=0, vmax=100, origin="lower")
  ax.set_xticks(range(len(steps)), [str(s) for s in steps])
  ax.set_yticks(range(len(draws)), [str(m) for m in draws])
  ax.set_xlabel("PGD steps k")
  ax.set_ylabel("EOT samples m")
  ax.set_title(title)
  for (i, j), value in np.ndenumerate(100 * rates):
    ax.text(
      j,
      i,
      f"{value:.1f}",
      ha="center",
      va="center",
      color="white" if value > 60 else "black",
      fontsize=9,
    )
  fig.colorbar(image, ax=ax, label="attack success rate (%)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


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


def run(config: ml_collections.ConfigDict, workdir: app.Workdir) -> dict:
  """Runs the ablation; returns the results dict (also written to workdir)."""
  key = jax.random.key(config.seed)
  train_key, eval_key = jax.random.split(key)
  test_set = data_lib.load_arrays(
    config.dataset, "test", data_dir=config.data_dir
  )
  settings = config.defenses

  def source(setting):
    return setting.weights or setting.model

  classifiers = {}
  for setting in settings.values():
    if source(setting) in classifiers:
      continue
    if setting.weights:
      classifiers[source(setting)] = models.classifier(
        *models.load(setting.weights)
      )
    else:
      train_set = data_lib.load(
        config.dataset, "train", data_dir=config.data_dir
      )
      classifiers[source(setting)] = build_classifier(
        config, workdir, train_key, train_set, setting.model
      )
  # Clean (undefended, no noise) test accuracy of each attacked model.
  clean_accuracy = {
    name: train.accuracy(
      classifiers[source(setting)], test_set, mesh=sharding.from_config(config)
    )
    for name, setting in settings.items()
  }
  logging.info("clean test accuracy %s", clean_accuracy)
  images = test_set.images[: config.num_examples]
  labels = test_set.labels[: config.num_examples]
  steps, draws = list(config.grid.steps), list(config.grid.eot_samples)
  goals = ["targeted" if t else "untargeted" for t in config.grid.targeted]
  fractions = list(config.grid.step_fractions)

  def protocol(goal, name, num_votes=None):
    """The evaluation settings; a defense may set its own vote count and
    aggregation (e.g. Guo et al.'s 30-crop mean softmax)."""
    setting = settings[name]
    targets = np.full_like(labels, config.attack.target)
    return dict(
      num_votes=num_votes
      or setting.get("num_votes")
      or config.attack.num_votes,
      targets=targets if goal == "targeted" else None,
      batch_size=config.batch_size,
      chunk_size=config.vote_chunk_size,
      mesh=sharding.from_config(config),
      aggregate=setting.get("aggregate", "hard"),
    )

  def pgd(name, goal, fraction, **kwargs):
    eps = settings[name].eps
    return attacks.make_pgd(
      eps=eps,
      step_size=eps * fraction,
      targeted=goal == "targeted",
      **kwargs,
    )

  # The undefended baseline: how strong is PGD at the defense's eps, on the
  # model it attacks, with no defense at all (the first step size)?
  undefended = {
    f"{name}/{goal}": evaluate.evaluate_attack(
      jax.random.fold_in(eval_key, 0),
      classifiers[source(setting)],
      images,
      labels,
      attack=pgd(name, goal, fractions[0], num_steps=max(steps)),
      defense=None,
      **protocol(goal, name, num_votes=1),
    )
    for name, setting in settings.items()
    for goal in goals
  }
  cells = workdir.cells()
  grids, benign, grad_evals = {}, {}, 0
  # One defense object per name, so the jitted votes compile once per defense.
  built = {name: defenses.lookup(s.spec) for name, s in settings.items()}
  # One attack per row (defense, goal, step size, m): PGD-max(k) keeping its
  # iterate after every k of the grid, which equals PGD-k (step t's draws
  # depend only on t).
  todo = list(itertools.product(built.items(), goals, fractions, draws))
  start = time.time()
  for (name, defense), goal, fraction, m in tqdm.tqdm(todo, desc="grid rows"):
    panel = _panel_name(name, goal, fraction)
    names = [f"{panel}/k={k}/m={m}" for k in steps]
    if not all(cell in cells for cell in names):
      result = evaluate.evaluate_attack(
        jax.random.fold_in(eval_key, 1),
        classifiers[source(settings[name])],
        images,
        labels,
        attack=pgd(
          name,
          goal,
          fraction,
          num_steps=max(steps),
          eot_samples=m,
          defense=defense,
          snapshot_steps=tuple(steps),
        ),
        defense=defense,
        **protocol(goal, name),
      )
      by_steps = result.pop("attack_success_rate_by_steps", {})
      for k, cell in zip(steps, names, strict=True):
        cells[cell] = result | {
          "attack_success_rate": by_steps.get(k, float("nan")),
          "grad_evals_per_example": k * m,
        }
        workdir.save_cell(cell, cells[cell])
        workdir.log_metrics(phase="attack", cell=cell, **cells[cell])
    grid = grids.setdefault(panel, np.zeros((len(draws), len(steps))))
    for j, cell in enumerate(names):
      grid[draws.index(m), j] = cells[cell]["attack_success_rate"]
    benign[f"{name}/{goal}"] = cells[names[0]]["benign_accuracy"]
    # Spent: one run of the largest k per row.
    grad_evals += max(steps) * m * cells[names[0]]["num_retained"]
  # Fig. 1's last panels: the best step size per cell.
  for name, goal in itertools.product(settings, goals):
    panels = [grids[_panel_name(name, goal, f)] for f in fractions]
    if len(panels) > 1:
      grids[f"{name}/{goal}/best step"] = np.max(panels, axis=0)
  titles = {}
  for panel, grid in grids.items():
    name = panel.split("/")[0]
    titles[panel] = f"{panel}, eps = {255 * settings[name].eps:.3g}/255"
    heatmap(
      grid,
      steps,
      draws,
      f"{titles[panel]} ({config.dataset})",
      workdir.file(f"heatmap_{_file_safe(panel)}.png"),
    )
  table = markdown_table(
    {titles[panel]: grid for panel, grid in grids.items()}, steps, draws
  )
  comparisons = {
    panel: equal_budget(grid, steps, draws) for panel, grid in grids.items()
  }
  with open(workdir.file("table.md"), "w") as f:
    f.write(table)
  print(table)
  return {
    "clean_accuracy": clean_accuracy,
    "undefended_attack": undefended,
    "benign_accuracy": benign,
    "success_rate": {panel: g.tolist() for panel, g in grids.items()},
    "equal_budget": comparisons,
    "steps": steps,
    "eot_samples": draws,
    "attack_grad_evals": grad_evals,
    "grid_seconds": time.time() - start,
    "table_md": os.path.basename(workdir.file("table.md")),
  }
