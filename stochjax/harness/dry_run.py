"""Dry runs: a paper run's code path at its true shapes, in minutes.

``--config.dry_run=True`` on any experiment first prints the real run's
plan (`stochjax.harness.plan`), then runs the *same* driver on a copy of the
config where only sizes and paths change:

* data: a few images written in the real on-disk layout under
  ``<workdir>/dry_run/data`` (`stochjax.data.synthetic`), read by the real
  loaders; the digits stay the digits;
* weights: every converted-weights folder the config names is replaced by
  random weights of the same architecture, written and read through
  `stochjax.models.save` / `load`, the converter's format;
* sizes: 2 images and 2 votes; every grid axis becomes (1, 2) (one value
  stays one) within 2 gradients per example (cells 1 x 1, 2 x 1, 1 x 2),
  so every kind of cell, equal-budget pair and ablation exists, at the
  first step size;
  1 training epoch of one batch, then 1-step attacks at epochs 0 and 1;
  2 detector draws; of a list of defenses the last of each kind runs
  (spec functions, and for a network entry its activation, attack noise,
  detector, adversarial training, noise layers and aggregation: what
  selects code, not what only changes numbers); every one is still built,
  so a bad spec fails.

It then runs the driver a second time on the same workdir, which must
resume without computing anything, and writes the report. config.json,
results.json and the report say ``dry_run``; `stochjax.harness.report`
refuses them as inputs unless asked.
"""

import difflib
import functools
import importlib
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from stochjax import data as data_lib
from stochjax import defenses, models, registry
from stochjax.data import synthetic
from stochjax.harness import plan, report
from stochjax.harness import workdir as workdir_lib

NUM_CLASSES = {"imagenet": 1000, "imagenette": 10, "cifar10": 10}
# The train batch of a dry run: one batch is an epoch of the synthetic
# training split (10 images for ImageNette and CIFAR-10), and 8 divides
# over meshes of 1, 2, 4 and 8 devices.
TRAIN_BATCH = 8
# The gradients per example of a dry run's largest grid cell.
DRY_BUDGET = 2


def _ranks(values) -> tuple:
  """The axis at minimal cost: 1 for one value, else (1, 2) (its first
  and last values; what lies between runs the same code)."""
  return (1,) if len(values) == 1 else (1, 2)


def _rank_of(values, value) -> int:
  """Where `value` of the axis lands in `_ranks`: the largest at 2."""
  return 2 if len(values) > 1 and value == max(values) else 1


def _shrink_grid(grid: ml_collections.ConfigDict, fractions=()) -> None:
  """Every axis keeps its length with values 1, 2, ...; within a budget
  of 2 gradients per example (cells 1 x 1, 2 x 1 and 1 x 2: an
  equal-budget pair); one step size, the first (a step size is a number
  in the same program; the best-step panel runs in the smoke tests). The
  ablation's reference cell maps to the largest shrunk cell of its row.
  `fractions`: the step sizes the grid inherits when it has none. A
  defense's own block may set only some axes (the goals, say): those it
  lacks it inherits, shrunk already."""
  if "steps" not in grid:
    return
  steps, draws = list(grid.steps), list(grid.eot_samples)
  grid.steps, grid.eot_samples = _ranks(steps), _ranks(draws)
  grid.max_budget = DRY_BUDGET
  if "step_fractions" in grid:
    # The dropped step sizes never run: check them here.
    for fraction in grid.step_fractions:
      if not fraction > 0:
        raise ValueError(
          f"grid.step_fractions has {fraction}: each step_size (a fraction "
          "of eps) must be positive."
        )
    grid.step_fractions = tuple(grid.step_fractions)[:1]
    fractions = grid.step_fractions
  if grid.get("ablation") is not None:
    ablation = grid.ablation
    ablation.versus_m = _rank_of(draws, ablation.versus_m)
    ablation.versus_k = max(
      k for k in grid.steps if k * ablation.versus_m <= DRY_BUDGET
    )
    ablation.versus_fraction = fractions[0]
    ablation.steps = _ranks(ablation.steps)


# The fields of a network entry that select code, beside its spec.
_CODE_FIELDS = (
  "activation",
  "attack_spec",
  "adversarial",
  "noise",
  "aggregate",
)


def _kind(setting) -> tuple:
  """What code a defense entry runs: its spec's functions, and for a
  network entry the fields in `_CODE_FIELDS` and whether it has a
  detector. Entries of one kind differ only in numbers (a sigma, a
  member list of the same functions, a model's weights)."""
  spec = setting if isinstance(setting, str) else setting.spec
  functions = (
    (spec,) if ":" in spec and "(" not in spec
    else tuple(call.name for call in registry.parse(spec))
  )  # fmt: skip
  if isinstance(setting, str):
    return functions
  return (
    functions
    + tuple(
      bool(setting.get(field)) and str(setting.get(field))
      for field in _CODE_FIELDS
    )
    + (setting.get("detector") is not None,)
  )


def _representatives(defenses_config) -> list[int]:
  """Keeps the last entry of each kind (`_kind`: for BaRT's prefixes the
  one with every member) of a config mapping; returns the kept
  positions, in order."""
  names = list(defenses_config)
  kinds = [_kind(defenses_config[name]) for name in names]
  kept = [i for i, kind in enumerate(kinds) if kind not in kinds[i + 1 :]]
  for index, name in enumerate(names):
    if index not in kept:
      del defenses_config[name]
  return kept


def _shrink_grid_run(config) -> None:
  config.attack.num_votes = 2
  _shrink_grid(config.grid)
  for setting in config.defenses.values():
    if setting.get("num_votes"):
      setting.num_votes = min(setting.num_votes, 2)
    if setting.get("grid") is not None:
      _shrink_grid(setting.grid, config.grid.step_fractions)
    if setting.get("detector") is not None:
      setting.detector.update(
        dict(num_noise=2, num_calibration=4, only_correct=False)
      )
  if "eps_values" in config:  # Two radii: the loop over radii runs.
    config.eps_values = tuple(config.eps_values)[:2]
  rule = config.eps_rule
  rule.num_steps, rule.num_examples = 1, 2
  rule.candidates = tuple(rule.candidates)[:2]


def _shrink_fine_tuning(config) -> None:
  """Epochs 0 and 1, 2 votes, and an attack of one step: its steps are a
  `lax.scan` of static length, so one step compiles and runs the same
  step program as 200."""
  config.num_votes = config.vote_chunk_size = 2
  config.eval_epochs = (0, 1)
  (call,) = registry.parse(config.attack.spec)
  kwargs = call.kwargs | {"num_steps": 1}
  arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
  config.attack.spec = f"{call.name}({arguments})"


def shrink(config: ml_collections.ConfigDict, root: str):
  """A copy of `config` for a dry run: data and weights under `root`,
  every size minimal (see the module docstring)."""
  config = ml_collections.ConfigDict(config.to_dict())
  for spec in _defense_specs(config):
    defenses.lookup(spec)  # Every defense is built: a bad spec fails here.
  if "num_samples" in config:  # Section 5: no model, no data.
    config.num_samples = 1_000
    config.eps, config.sigmas = tuple(config.eps)[:2], tuple(config.sigmas)[:2]
    return config
  label = 0
  if config.dataset in synthetic.NAMES:
    config.data_dir = synthetic.write(
      config.dataset, os.path.join(root, "data", config.dataset)
    )
    test = data_lib.load(config.dataset, "test", data_dir=config.data_dir)
    label = int(test.labels[0])
  for field in ("num_examples", "batch_size", "num_eval"):
    if field in config:
      config[field] = 2
  if "calibration_size" in config:
    config.calibration_size = 1
  if "vote_chunk_size" in config:
    config.vote_chunk_size = 2
  config.train.epochs = 1
  config.train.batch_size = TRAIN_BATCH
  if "pretrain_epochs" in config:
    config.pretrain_epochs = 1
  if "defenses" in config:
    kept = _representatives(config.defenses)
    if "labels" in config:
      config.labels = [config.labels[i] for i in kept]
  if "grid" in config:
    _shrink_grid_run(config)
  if "blackbox" in config:
    config.blackbox.budgets = (2, 4)
    config.blackbox.eot_samples = 2
    config.blackbox.whitebox = dict(
      steps=1,
      eot_samples=2,
      step_fractions=tuple(config.blackbox.whitebox["step_fractions"])[:1],
    )
  if "eval_epochs" in config:
    _shrink_fine_tuning(config)
  if "budget" in config:  # The audit.
    config.num_votes = config.num_draws = 2
    config.budget.update(dict(steps=1, eot_samples=2, budgets=(2,)))
    if config.budget.get("blackbox_queries"):
      config.budget.blackbox_queries = 2
  _random_weights(config, os.path.join(root, "weights"), label)
  return config


def _defense_specs(config) -> list[str]:
  """Every defense spec the config names (not ``module:function`` ones)."""
  specs = [config.defense] if "defense" in config else []
  for setting in config.get("defenses", {}).values():
    specs.append(setting if isinstance(setting, str) else setting.spec)
  return [s for s in specs if not (":" in s and "(" not in s)]


def _random_weights(config, folder: str, label: int) -> None:
  """Points every converted-weights folder at random weights of the same
  architecture, written in the converter's format; the head's bias favours
  class `label` (the first test image's), so the dry run retains it and
  its attacks run."""
  classes = NUM_CLASSES.get(config.dataset, 10)
  blocks = [config.model] + [
    s for s in config.get("defenses", {}).values() if not isinstance(s, str)
  ]
  for block in blocks:
    if not block.get("weights"):
      continue
    name = os.path.basename(os.path.normpath(block.weights))
    target = os.path.join(folder, name)
    if not os.path.exists(os.path.join(target, "model.json")):
      model = models.get_model(
        config.model.name, num_classes=classes, stem=config.model.stem
      )
      variables = _init(model, label)
      models.save(target, config.model.name, model, variables)
    block.weights = target


_CONSTANT_INIT = {"bias": 0.0, "scale": 1.0, "mean": 0.0, "var": 1.0}


def _init(model, label: int):
  """Random variables of `model`'s shapes, drawn in NumPy: compiling the
  model's own init (a ResNet-50's) took 12-24 s of each dry run. Kernels
  are N(0, 2 / fan_in) (He), BatchNorm an identity on its statistics, and
  biases zero but the head's."""
  shapes = jax.eval_shape(
    model.init, jax.random.key(0), jnp.zeros((1, 224, 224, 3))
  )
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    name = path[-1].key
    if name == "kernel":
      std = np.sqrt(2.0 / np.prod(leaf.shape[:-1]))
      return (std * rng.standard_normal(leaf.shape)).astype(leaf.dtype)
    if name not in _CONSTANT_INIT:
      raise ValueError(f"No dry-run init for {jax.tree_util.keystr(path)}")
    return np.full(leaf.shape, _CONSTANT_INIT[name], leaf.dtype)

  variables = jax.tree_util.tree_map_with_path(draw, shapes)
  variables["params"]["Dense_0"]["bias"][label] = 10.0
  return variables


def _paths(tree: dict, prefix: str = "") -> set[str]:
  """Dotted field paths of a config dict; entries under ``defenses`` are
  user-named, so their names read as ``*``."""
  paths = set()
  for key, value in tree.items():
    name = "*" if prefix.endswith("defenses.") else key
    path = f"{prefix}{name}"
    if isinstance(value, dict) and value:
      paths |= _paths(value, f"{path}.")
    else:
      paths.add(path)
  return paths


def check_fields(config, references: tuple[str, ...]) -> None:
  """Refuses fields that no variant of the shipped configs `references`
  (names of modules in `stochjax.configs`) has: in a copied config, a misspelt
  field would otherwise be carried, unread, through a whole run.

  Raises:
    ValueError: naming each unknown field and the closest known ones.
  """
  known = set()
  for name in references:
    module = importlib.import_module(f"stochjax.configs.{name}")
    # A config module may name variants of its own (table2's "network").
    for variant in getattr(module, "VARIANTS", ("smoke", None, "paper")):
      known |= _paths(module.get_config(variant).to_dict())
  unknown = sorted(_paths(config.to_dict()) - known)
  if unknown:
    hints = [
      f"{path} (did you mean {', '.join(close)}?)"
      if (close := difflib.get_close_matches(path, known, n=2)) else path
      for path in unknown
    ]  # fmt: skip
    raise ValueError(
      f"Config fields no shipped config ({', '.join(references)}) has in any "
      "variant: "
      f"{'; '.join(hints)}."
    )


# The shipped configs of each driver (its ``run``'s module).
REFERENCES = {
  "stochjax.paper.section4": ("eot_ablation", "table1", "table2",
                              "table2_cifar", "fig1", "fig2"),
  "stochjax.paper.figs3_4": ("fig3", "fig4"),
  "stochjax.paper.eps_sensitivity": ("eps_sensitivity",),
  "stochjax.paper.rse": ("rse",),
  "stochjax.paper.blackbox": ("blackbox",),
  "stochjax.paper.finetune": ("finetune",),
  "stochjax.paper.section5": ("section5",),
  "stochjax.audit.run": ("audit",),
}  # fmt: skip


def supporting(main):
  """`main(config, workdir)` (a `stochjax.paper` driver's ``run``) that
  checks the config's fields against its driver's shipped configs
  (`REFERENCES`) and honours ``config.dry_run``."""
  references = REFERENCES[main.__module__]

  @functools.wraps(main)
  def run(config, work: workdir_lib.Workdir) -> dict:
    check_fields(config, references)
    if not config.get("dry_run", False):
      return main(config, work)
    print("DRY RUN.", plan.describe(plan.plan(config)), flush=True)
    small = shrink(config, work.file("dry_run"))
    workdir_lib.write_json_atomic(
      work.file("dry_run_config.json"), json.loads(small.to_json_best_effort())
    )
    results = main(small, work)
    # Resumes from the files (a fresh Workdir): must compute nothing new.
    resumed = workdir_lib.Workdir(work.path)
    again = main(small, resumed)
    if resumed.num_saved:
      raise RuntimeError("The resumed dry run computed cells again.")
    del again
    results |= {"dry_run": True, "plan": plan.plan(config)}
    work.write_results(results)
    report.write(
      [work.path], work.file("report.md"), allow_dry_run=True
    )  # fmt: skip
    logging.info("dry run finished: %s", work.path)
    return results

  return run
