"""Figs. 3 and 4: training on a defense's randomness helps the attacker.

For each defense, the clean model is fine-tuned on the defense's
augmentation (a fresh draw per example per step, a checkpoint per epoch).
The starting model (epoch 0) and chosen epochs are then evaluated with the
paper's protocol: benign accuracy of the majority vote, and the success of
an adaptive attack through the defense. The paper's claim (iii): the
fine-tuned model is more accurate *and* easier to attack, because it is
more invariant to the randomness the defense relies on.

Every (defense, goal, epoch) is a cell recorded in the workdir, and
fine-tuning resumes from its checkpoints, so an interrupted run computes
only what is missing.
"""

import os
import time

import jax
import matplotlib.pyplot as plt
import ml_collections
import numpy as np

from stochjax import (
  app,
  attacks,
  checkpoint,
  defenses,
  evaluate,
  finetune,
  models,
  sharding,
  train,
)


def epoch_variables(checkpoint_dir: str, epoch: int) -> dict:
  """``{"params", "batch_stats"}`` of a fine-tuning epoch's checkpoint."""
  mngr = checkpoint.manager(checkpoint_dir)
  try:
    state = checkpoint.restore(mngr, epoch, None)
  finally:
    mngr.close()
  return {"params": state["params"], "batch_stats": state["batch_stats"]}


def _goal(targeted: bool) -> str:
  return "targeted" if targeted else "untargeted"


def plot_before_after(results: dict, path: str) -> None:
  """Fig. 3a/3c, 4a/4c: benign accuracy (green) and attack success (red),
  before (dashed) and after (solid) fine-tuning, per defense."""
  names = list(results["defenses"])
  goals = results["goals"]
  fig, axes = plt.subplots(
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
  plt.close(fig)


def plot_by_epoch(results: dict, path: str) -> None:
  """Fig. 3b/3d, 4b/4d: attack success by fine-tuning epoch per defense."""
  goals = results["goals"]
  fig, axes = plt.subplots(
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
  plt.close(fig)


def run(config: ml_collections.ConfigDict, workdir: app.Workdir) -> dict:
  """Fine-tunes on each defense and evaluates the chosen epochs."""
  built = {n: defenses.lookup(s) for n, s in config.defenses.items()}
  if config.train.epochs not in config.eval_epochs:
    raise ValueError(
      f"eval_epochs {config.eval_epochs} must include the last epoch "
      f"{config.train.epochs} (the 'after' point)."
    )
  setup = finetune.prepare(config, workdir)
  finetune_key, eval_key = setup.finetune_key, setup.eval_key
  train_set, test_set, eval_set = (
    setup.train_set,
    setup.test_set,
    setup.eval_set,
  )
  model, start = setup.model, setup.start
  images = test_set.images[: config.num_examples]
  labels = test_set.labels[: config.num_examples]
  cells = workdir.cells()
  goals = [_goal(t) for t in config.goals]
  started = time.time()
  for name, defense in built.items():
    # One attack per goal, built once: a new attack object is a new jitted
    # program, and the epochs differ only by the weights (jit arguments).
    attack_for = {
      goal: attacks.lookup(
        config.attack.spec, defense=defense, targeted=goal == "targeted"
      )
      for goal in goals
    }
    run_name = f"finetune_{name}"
    finetune.train_phase(
      config,
      workdir,
      finetune_key,
      model,
      train_set,
      eval_set,
      name=run_name,
      defense_spec=config.defenses[name],
      epochs=config.train.epochs,
      initial_variables=start,
    )
    checkpoint_dir = os.path.join(train.checkpoint_path(workdir.path), run_name)
    for epoch in config.eval_epochs:
      todo = [g for g in goals if f"{name}/{g}/epoch={epoch}" not in cells]
      if not todo:
        continue
      variables = (
        start if epoch == 0 else epoch_variables(checkpoint_dir, epoch)
      )
      logits_fn = models.classifier(model, variables)
      for goal in todo:
        targeted = goal == "targeted"
        cell = f"{name}/{goal}/epoch={epoch}"
        # The same evaluation key for every epoch: epochs differ only by
        # the weights.
        cells[cell] = evaluate.evaluate_attack(
          jax.random.fold_in(eval_key, int(targeted)),
          logits_fn,
          images,
          labels,
          attack=attack_for[goal],
          defense=defense,
          num_votes=config.num_votes,
          targets=np.full_like(labels, config.target) if targeted else None,
          batch_size=config.batch_size,
          mesh=sharding.from_config(config),
          chunk_size=config.vote_chunk_size,
        )
        workdir.save_cell(cell, cells[cell])
        workdir.log_metrics(phase="attack", cell=cell, **cells[cell])
  fields = ("benign_accuracy", "attack_success_rate", "num_retained")
  summary = {}
  for name in built:
    summary[name] = {}
    for goal in goals:
      by_epoch = [cells[f"{name}/{goal}/epoch={e}"] for e in config.eval_epochs]
      summary[name][goal] = {
        "before": {f: by_epoch[0][f] for f in fields},
        "after": {f: by_epoch[-1][f] for f in fields},
        "by_epoch": {"epoch": list(config.eval_epochs)}
        | {f: [c[f] for c in by_epoch] for f in fields},
      }
  results = {
    "defenses": summary,
    "labels": list(config.labels),
    "goals": goals,
    "attack": config.attack.spec,
    "num_examples": int(len(labels)),
    "seconds": time.time() - started,
  }
  plot_before_after(results, workdir.file("before_after.png"))
  plot_by_epoch(results, workdir.file("success_by_epoch.png"))
  for name in built:
    for goal in goals:
      s = summary[name][goal]
      print(
        f"{name} {goal}: benign {100 * s['before']['benign_accuracy']:.1f} -> "
        f"{100 * s['after']['benign_accuracy']:.1f}%, success "
        f"{100 * s['before']['attack_success_rate']:.1f} -> "
        f"{100 * s['after']['attack_success_rate']:.1f}%"
      )
  return results
