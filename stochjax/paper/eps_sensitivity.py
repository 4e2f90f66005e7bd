"""ε sensitivity (docs/analysis_plan.md section 8, secondary): the primary
comparisons of claims (i) and (ii) repeated at each ε of
``config.eps_values``.

The grid of `stochjax.paper.section4` (its models, votes, split and rows)
at fixed radii instead of the ε rule's: per defense, goal (a defense's own
``grid.targeted`` may narrow the config's), ε, step fraction and m, one
row, every row a cell group the workdir keeps. Each cell becomes an arm
with its ``eps``; the verdicts compare, at each ε, the plan's primary pair
of that defense and goal, each side at the step its calibration images
choose, and plot EOT − no EOT against ε (`stochjax.harness.verdicts`).
"""

import functools

import ml_collections

from stochjax import arms as arms_lib
from stochjax import defenses, evaluate, prng, progress
from stochjax.harness import experiment
from stochjax.harness import grid as grid_lib
from stochjax.harness import workdir as workdir_lib
from stochjax.paper import attacked, section4


def panel(name: str, goal: str, eps: float, fraction: float) -> str:
  """A row's panel: the defense, goal, radius (in 1/255) and step."""
  return f"eps={255 * eps:.4g}/{section4.panel_name(name, goal, fraction)}"


def rows(grid: section4.Grid) -> list[tuple]:
  """``(name, goal, eps, fraction, m, steps)`` of every row to run."""
  out = []
  for name in grid.settings:
    axes = grid.axes(name)
    radii = grid.settings[name].get("eps_values") or grid.config.eps_values
    for goal in ("targeted" if t else "untargeted" for t in axes.targeted):
      for eps in radii:
        for fraction in axes.step_fractions:
          for m in axes.eot_samples:
            steps = grid_lib.in_budget(axes.steps, m, axes.get("max_budget", 0))
            if steps:
              out.append((name, goal, float(eps), fraction, m, tuple(steps)))
  return out


def _check_radii(todo) -> None:
  radii = {eps for _, _, eps, *_ in todo}
  if not radii or min(radii) <= 0:
    raise ValueError(f"eps_values must be positive radii, got {sorted(radii)}.")
  names = {panel("d", "g", eps, 1.0) for eps in radii}
  if len(names) < len(radii):
    raise ValueError(
      f"eps_values {sorted(radii)}: two radii share a cell name "
      "(equal to 4 digits in 1/255)."
    )


def run(config: ml_collections.ConfigDict, work: workdir_lib.Workdir) -> dict:
  """Runs every row (resuming); returns the results (``eps_arms``).

  Raises:
    ValueError: radii that are not positive, or so close that two rows
      would share a cell name.
  """
  todo = rows(section4.Grid(config, None, None, {}, {}))
  _check_radii(todo)  # Before any training.
  train_key, eval_key = experiment.run_streams(config, ("train", "evaluation"))
  test_set = experiment.dataset(config, "test", arrays=True)
  images = test_set.images[: config.num_examples]
  grid = section4.Grid(
    config,
    images,
    test_set.labels[: config.num_examples],
    attacked.build(config, work, train_key, prng.stream(eval_key, "detectors")),
    experiment.test_split(config, len(images)),
  )
  built = {name: defenses.lookup(s.spec) for name, s in grid.settings.items()}
  cells, arms = work.cells(), []
  for name, goal, eps, fraction, m, steps in progress.bar(
    todo, desc="eps sensitivity rows"
  ):
    grid.eps[name] = eps
    where = panel(name, goal, eps, fraction)
    names = [f"{where}/k={k}/m={m}" for k in steps]
    cells |= work.cell_group(
      names,
      functools.partial(section4.grid_row, grid, eval_key, name, built[name],
                        goal, fraction, m, steps=list(steps), panel=where),
    )  # fmt: skip
    for k, cell in zip(steps, names, strict=True):
      arms.append(
        arms_lib.arm(
          evaluate.Evaluation.from_json(cells[cell]),
          grid.split["calibration"],
          defense=name, goal=goal, k=k, m=m, step_fraction=fraction,
          ablation=False, eps=eps,
        )
      )  # fmt: skip
  return {
    "split": experiment.split_record(grid.split),
    "eps_values": sorted({eps for _, _, eps, *_ in todo}),
    "eps_arms": arms,
    "detectors": attacked.summary(grid.attacked),
  }
