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

import dataclasses
import time

import jax
import ml_collections
import numpy as np

from stochjax import (
  attacks,
  defenses,
  eps_rule,
  evaluate,
  models,
  prng,
  stats,
  validation,
  voting,
)
from stochjax.harness import experiment
from stochjax.harness import workdir as workdir_lib
from stochjax.paper import plots, setup


def _goal(targeted: bool) -> str:
  return "targeted" if targeted else "untargeted"


_FIELDS = ("benign_accuracy", "attack_success_rate", "num_retained")


def _fields(cell: dict) -> dict:
  """An Evaluation cell's summary fields: `_FIELDS` and the attack's exact
  interval."""
  ev = evaluate.Evaluation.from_json(cell)
  outcome = ev.attack
  return {
    "benign_accuracy": ev.benign_accuracy,
    "attack_success_rate": outcome.success_rate,
    "num_retained": ev.num_retained,
    "attack_success_ci": list(
      stats.rate_interval(outcome.successes, len(outcome.per_sample))
    ),
  }


def _summary(cells: dict, names, goals, eval_epochs) -> dict:
  """Per defense and goal: before, after and by-epoch benign accuracy,
  success rate (with its exact interval), retained count, the undefended
  control's success and the model's invariance to the defense."""
  summary = {}
  for name in names:
    summary[name] = {}
    for goal in goals:
      by_epoch = [
        _fields(cells[f"{name}/{goal}/epoch={e}"]) for e in eval_epochs
      ]
      control = [
        _fields(cells[f"{name}/{goal}/epoch={e}/undefended"])
        for e in eval_epochs
      ]
      invariant = [cells[f"{name}/invariance/epoch={e}"] for e in eval_epochs]

      def point(i, by_epoch=by_epoch, control=control, invariant=invariant):
        return by_epoch[i] | {
          "undefended_success_rate": control[i]["attack_success_rate"],
          "invariance": invariant[i]["mean"],
        }

      summary[name][goal] = {
        "before": point(0),
        "after": point(-1),
        "by_epoch": {"epoch": list(eval_epochs)}
        | {f: [c[f] for c in by_epoch] for f in _FIELDS}
        | {"invariance": [c["mean"] for c in invariant]},
      }
  return summary


@dataclasses.dataclass
class _Evaluation:
  """What every (defense, epoch) evaluation of a run shares."""

  config: ml_collections.ConfigDict
  images: np.ndarray  # the evaluation images
  labels: np.ndarray
  eval_key: jax.Array
  goals: list
  calibration: tuple  # (images, labels): the eps rule's, never evaluated

  def targets(self, logits_fn):
    k = validation.num_classes(logits_fn, self.images[:1])
    return np.full_like(self.labels, self.config.target % k)

  def attack(self, logits_fn, attack, defense, goal, kind, num_votes):
    """`attack` judged by `num_votes` votes through `defense`, on the
    stream of (`goal`, `kind`: "defended" or "undefended")."""
    targeted = goal == "targeted"
    config = self.config
    return evaluate.evaluate_attack(
      prng.stream(self.eval_key, goal, kind),
      logits_fn,
      self.images,
      self.labels,
      attack=attack,
      defense=defense,
      num_votes=num_votes,
      targets=self.targets(logits_fn) if targeted else None,
      batch_size=config.batch_size,
      mesh=experiment.mesh(config),
      chunk_size=config.vote_chunk_size,
    )


def _evaluate_epoch(ev: _Evaluation, work, cells, name, defense, attacks_for,
                    logits_fn, epoch) -> None:  # fmt: skip
  """One epoch's cells: per goal the attack through the defense (votes of
  n draws) and the same attack on the undefended model (one vote), and the
  model's invariance to the defense. The same keys every epoch: epochs
  differ only by the weights."""
  for goal in ev.goals:
    for kind, (attack, guard, votes) in (
      ("defended", (attacks_for[goal][0], defense, ev.config.num_votes)),
      ("undefended", (attacks_for[goal][1], None, 1)),
    ):
      cell = _cell(name, goal, epoch, kind)

      def attacked(cell=cell, goal=goal, kind=kind, attack=attack,
                   guard=guard, votes=votes):  # fmt: skip
        result = ev.attack(logits_fn, attack, guard, goal, kind, votes)
        work.log_metrics(phase="attack", cell=cell, **result.to_json())
        return result.to_json()

      cells[cell] = work.cell(cell, attacked)

  def invariant():
    kept = voting.map_images(
      lambda keys, f, x: voting.invariance(
        keys, f, x, defense=defense, num_draws=ev.config.num_votes,
        chunk_size=ev.config.vote_chunk_size,
      ),
      prng.stream(ev.eval_key, "invariance"), logits_fn, ev.images,
      batch_size=ev.config.batch_size, mesh=experiment.mesh(ev.config),
      desc="invariance",
    )  # fmt: skip
    return {
      "mean": float(np.mean(kept)),
      "majority_kept": float(np.mean(np.asarray(kept) > 0.5)),
    }

  cell = f"{name}/invariance/epoch={epoch}"
  cells[cell] = work.cell(cell, invariant)


def _working_eps(config, work, ev: _Evaluation, logits_fn, cell: str) -> dict:
  """A checkpoint's radius: ``config.eps_rule`` on that checkpoint's own
  undefended model, on the calibration images (cell `cell`, so a resumed
  run keeps it), or the spec's eps.

  Returns:
    ``{"overrides": attack keyword overrides, "sweep": the rule's record}``.
  """
  if not config.eps_rule.use:
    return {"overrides": {}, "sweep": None}
  sweep = work.cell(
    cell,
    lambda: eps_rule.from_config(
      prng.stream(ev.eval_key, "eps_rule"),
      logits_fn,
      *ev.calibration,
      config.eps_rule,
    ),
  )
  eps = sweep["picked"]
  if eps is None:
    return {"overrides": {}, "sweep": sweep}
  step = eps * config.attack.step_fraction
  return {"overrides": {"eps": eps, "step_size": step}, "sweep": sweep}


def gap_arms(cells: dict, names, goals, eval_epochs, sweeps) -> list[dict]:
  """Every (defense, goal, checkpoint, kind) evaluation at its checkpoint's
  own eps, as an arm of the analysis plan's claim (iii)
  (`stochjax.harness.verdicts`): per-image outcomes by evaluation position,
  and the checkpoint's eps rule record."""
  out = []
  for name in names:
    for goal in goals:
      for epoch in eval_epochs:
        for kind in ("defended", "undefended"):
          ev = evaluate.Evaluation.from_json(
            cells[_cell(name, goal, epoch, kind)]
          )
          sweep = sweeps.get((name, epoch)) or {}
          out.append({
            "defense": name, "goal": goal, "epoch": int(epoch), "kind": kind,
            "eps": sweep.get("picked"),
            "eps_is_largest_candidate": bool(
              sweep.get("picked") is not None
              and sweep["picked"] == sweep["candidates"][-1]
            ),
            "indices": list(ev.retained_indices),
            "per_sample": list(ev.attack.per_sample),
          })  # fmt: skip
  return out


def _cell(name: str, goal: str, epoch: int, kind: str) -> str:
  return f"{name}/{goal}/epoch={epoch}" + (
    "" if kind == "defended" else "/undefended"
  )


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
  goals = [_goal(t) for t in config.goals]
  # Calibration and evaluation test images (the seed's split); the eps
  # rule reads only the calibration images.
  split = experiment.test_split(config, len(run.test_set.labels))
  evaluation = split["evaluation"][: config.num_examples]
  calibration = split["calibration"]
  ev = _Evaluation(
    config,
    run.test_set.images[evaluation],
    run.test_set.labels[evaluation],
    run.eval_key,
    goals,
    (run.test_set.images[calibration], run.test_set.labels[calibration]),
  )
  cells = workdir.cells()
  started = time.time()
  start_model = models.classifier(run.model, run.start)
  working = _working_eps(config, workdir, ev, start_model, "eps_sweep")
  sweeps, built_attacks = {}, {}

  def attacks_at(defense_name, defense, overrides):
    """The attacks per goal (through the defense, and undefended) at
    `overrides`' eps, built once per (defense, eps): a new attack object is
    a new jitted program, and epochs at one eps differ only by weights."""
    key = (defense_name, tuple(sorted(overrides.items())))
    if key not in built_attacks:
      built_attacks[key] = {
        goal: tuple(
          attacks.lookup(config.attack.spec, defense=d,
                         targeted=goal == "targeted", **overrides)
          for d in (defense, None)
        )
        for goal in goals
      }  # fmt: skip
    return built_attacks[key]

  for name, defense in built.items():
    run_name = f"finetune_{name}"
    setup.fine_tune(config, workdir, run, name=run_name, defense=defense)
    checkpoint_dir = experiment.checkpoint_dir(workdir, run_name)
    for epoch in config.eval_epochs:
      variables = (
        run.start
        if epoch == 0
        else setup.epoch_variables(checkpoint_dir, epoch)
      )
      logits_fn = models.classifier(run.model, variables)
      # Each checkpoint at its own undefended model's eps (claim (iii)'s
      # gap, docs/analysis_plan.md section 7); epoch 0 is the clean model.
      own = working if epoch == 0 else _working_eps(
        config, workdir, ev, logits_fn, f"eps_sweep/{name}/epoch={epoch}"
      )  # fmt: skip
      sweeps[(name, epoch)] = own["sweep"]
      _evaluate_epoch(
        ev, workdir, cells, name, defense,
        attacks_at(name, defense, own["overrides"]), logits_fn, epoch,
      )  # fmt: skip
  summary = _summary(cells, built, goals, config.eval_epochs)
  results = {
    "split": experiment.split_record(split)
    | {"evaluated": np.asarray(evaluation).tolist()},
    "gap_arms": gap_arms(cells, built, goals, config.eval_epochs, sweeps),
    "eps_by_checkpoint": {
      f"{name}/epoch={epoch}": sweep for (name, epoch), sweep in sweeps.items()
    },
    "defenses": summary,
    "labels": list(config.labels),
    "goals": goals,
    "attack": config.attack.spec,
    "attack_overrides": working["overrides"],
    "eps_sweep": working["sweep"],
    "num_examples": int(len(ev.labels)),
    "seconds": time.time() - started,
  }
  plots.plot_before_after(results, workdir.file("before_after.png"))
  plots.plot_by_epoch(results, workdir.file("success_by_epoch.png"))
  plots.plot_gap_vs_invariance(results, workdir.file("gap_vs_invariance.png"))
  return results
