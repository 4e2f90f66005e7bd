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

from stochjax import app, attacks, defenses, evaluate, models, train
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

  name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", augment).strip("_") or "clean"

  def on_epoch(epoch, metrics):
    workdir.log_metrics(phase="train", model=name, epoch=epoch, **metrics)

  variables = train.train(
    key=key,
    model=model,
    train_set=train_set,
    defense_spec=augment or None,
    epochs=config.train.epochs,
    batch_size=config.train.batch_size,
    learning_rate=config.train.learning_rate,
    weight_decay=config.train.weight_decay,
    checkpoint_dir=os.path.join(train.checkpoint_path(workdir.path), name),
    on_epoch=on_epoch,
  )
  return models.classifier(model, variables)


def _cell_name(defense: str, steps: int, draws: int) -> str:
  return f"{defense}/k={steps}/m={draws}"


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
    name: train.accuracy(classifiers[source(setting)], test_set)
    for name, setting in settings.items()
  }
  logging.info("clean test accuracy %s", clean_accuracy)
  images = test_set.images[: config.num_examples]
  labels = test_set.labels[: config.num_examples]
  targets = (
    np.full_like(labels, config.attack.target)
    if config.attack.targeted
    else None
  )
  protocol = dict(
    num_votes=config.attack.num_votes,
    targets=targets,
    batch_size=config.batch_size,
    chunk_size=config.vote_chunk_size,
  )
  steps, draws = list(config.grid.steps), list(config.grid.eot_samples)

  def pgd(name, **kwargs):
    setting = settings[name]
    return attacks.make_pgd(
      eps=setting.eps,
      step_size=setting.step_size,
      targeted=config.attack.targeted,
      **kwargs,
    )

  # The undefended baseline per defense: how strong is PGD at its eps, on
  # the model it attacks, with no defense at all?
  undefended = {
    name: evaluate.evaluate_attack(
      jax.random.fold_in(eval_key, 0),
      classifiers[source(setting)],
      images,
      labels,
      attack=pgd(name, num_steps=max(steps)),
      defense=None,
      **(protocol | {"num_votes": 1}),
    )
    for name, setting in settings.items()
  }
  cells = workdir.cells()
  grids, benign, grad_evals = {}, {}, 0
  # One defense object per name, so the jitted votes compile once per defense.
  built = {name: defenses.lookup(s.spec) for name, s in settings.items()}
  # One attack per (defense, m): PGD-max(k) keeping its iterate after every
  # k of the grid, which equals PGD-k (step t's draws depend only on t).
  todo = list(itertools.product(built.items(), draws))
  start = time.time()
  for (name, defense), m in tqdm.tqdm(todo, desc="grid rows (defense, m)"):
    names = [_cell_name(name, k, m) for k in steps]
    if not all(cell in cells for cell in names):
      result = evaluate.evaluate_attack(
        jax.random.fold_in(eval_key, 1),
        classifiers[source(settings[name])],
        images,
        labels,
        attack=pgd(
          name,
          num_steps=max(steps),
          eot_samples=m,
          defense=defense,
          snapshot_steps=tuple(steps),
        ),
        defense=defense,
        **protocol,
      )
      by_steps = result.pop("attack_success_rate_by_steps", {})
      for k, cell in zip(steps, names, strict=True):
        cells[cell] = result | {
          "attack_success_rate": by_steps.get(k, float("nan")),
          "grad_evals_per_example": k * m,
        }
        workdir.save_cell(cell, cells[cell])
        workdir.log_metrics(phase="attack", cell=cell, **cells[cell])
    for k, cell in zip(steps, names, strict=True):
      rate = cells[cell]["attack_success_rate"]
      grids.setdefault(name, np.zeros((len(draws), len(steps))))
      grids[name][draws.index(m), steps.index(k)] = rate
      benign[name] = cells[cell]["benign_accuracy"]
    # Spent: one run of the largest k per row.
    grad_evals += max(steps) * m * cells[names[0]]["num_retained"]
  titles = {
    name: f"{name}, eps = {255 * s.eps:.3g}/255" for name, s in settings.items()
  }
  for name, grid in grids.items():
    heatmap(
      grid,
      steps,
      draws,
      f"{titles[name]} ({config.dataset})",
      workdir.file(f"heatmap_{name}.png"),
    )
  table = markdown_table(
    {titles[name]: grid for name, grid in grids.items()}, steps, draws
  )
  with open(workdir.file("table.md"), "w") as f:
    f.write(table)
  print(table)
  return {
    "clean_accuracy": clean_accuracy,
    "undefended_attack": undefended,
    "benign_accuracy": benign,
    "success_rate": {name: g.tolist() for name, g in grids.items()},
    "steps": steps,
    "eot_samples": draws,
    "attack_grad_evals": grad_evals,
    "grid_seconds": time.time() - start,
    "table_md": os.path.basename(workdir.file("table.md")),
  }
