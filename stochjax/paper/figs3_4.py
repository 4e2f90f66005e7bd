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

import time

import ml_collections
import numpy as np

from stochjax import attacks, defenses, evaluate, models, prng
from stochjax import workdir as workdir_lib
from stochjax.paper import plots, setup


def _goal(targeted: bool) -> str:
  return "targeted" if targeted else "untargeted"


def _summary(cells: dict, names, goals, eval_epochs) -> dict:
  """Per defense and goal: before, after and by-epoch benign accuracy,
  success rate and retained count."""
  fields = ("benign_accuracy", "attack_success_rate", "num_retained")
  summary = {}
  for name in names:
    summary[name] = {}
    for goal in goals:
      by_epoch = [cells[f"{name}/{goal}/epoch={e}"] for e in eval_epochs]
      summary[name][goal] = {
        "before": {f: by_epoch[0][f] for f in fields},
        "after": {f: by_epoch[-1][f] for f in fields},
        "by_epoch": {"epoch": list(eval_epochs)}
        | {f: [c[f] for c in by_epoch] for f in fields},
      }
  return summary


def run(
  config: ml_collections.ConfigDict, workdir: workdir_lib.Workdir
) -> dict:
  """Fine-tunes on each defense and evaluates the chosen epochs."""
  built = {n: defenses.lookup(s) for n, s in config.defenses.items()}
  if config.train.epochs not in config.eval_epochs:
    raise ValueError(
      f"eval_epochs {config.eval_epochs} must include the last epoch "
      f"{config.train.epochs} (the 'after' point)."
    )
  run = setup.fine_tuning(config, workdir)
  eval_key, model, start = run.eval_key, run.model, run.start
  images = run.test_set.images[: config.num_examples]
  labels = run.test_set.labels[: config.num_examples]
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
    setup.fine_tune(config, workdir, run, name=run_name, defense=defense)
    checkpoint_dir = setup.checkpoint_dir(workdir, run_name)
    for epoch in config.eval_epochs:
      todo = [g for g in goals if f"{name}/{g}/epoch={epoch}" not in cells]
      if not todo:
        continue
      variables = (
        start if epoch == 0 else setup.epoch_variables(checkpoint_dir, epoch)
      )
      logits_fn = models.classifier(model, variables)
      for goal in todo:
        targeted = goal == "targeted"
        cell = f"{name}/{goal}/epoch={epoch}"
        # The same evaluation key for every epoch: epochs differ only by
        # the weights.
        cells[cell] = evaluate.evaluate_attack(
          prng.fold(eval_key, int(targeted)),
          logits_fn,
          images,
          labels,
          attack=attack_for[goal],
          defense=defense,
          num_votes=config.num_votes,
          targets=np.full_like(labels, config.target) if targeted else None,
          batch_size=config.batch_size,
          mesh=setup.mesh(config),
          chunk_size=config.vote_chunk_size,
        )
        workdir.save_cell(cell, cells[cell])
        workdir.log_metrics(phase="attack", cell=cell, **cells[cell])
  summary = _summary(cells, built, goals, config.eval_epochs)
  results = {
    "defenses": summary,
    "labels": list(config.labels),
    "goals": goals,
    "attack": config.attack.spec,
    "num_examples": int(len(labels)),
    "seconds": time.time() - started,
  }
  plots.plot_before_after(results, workdir.file("before_after.png"))
  plots.plot_by_epoch(results, workdir.file("success_by_epoch.png"))
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
