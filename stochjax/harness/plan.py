"""The bill of a paper run, before paying it: cells, images, model
evaluations and a one-GPU time estimate, counted from its config.

Counts are upper bounds (every image attacked; only those that do not
already meet the goal are). The estimate uses the rates
docs/performance.md states for a float32 ResNet-50 at 224 x 224 on one
A100-class GPU (`RATES`); measure your own with `benchmarks/pgd_eot.py`.
"""

import importlib

from stochjax import attacks
from stochjax.harness import grid as grid_lib

# Input gradients and forward passes per second (docs/performance.md).
RATES = {"grad": 1_000.0, "forward": 3_000.0}
# Training images per epoch of each dataset (ImageNet is never trained on).
TRAIN_SIZES = {
  "digits": 1_437,
  "photos": 2_000,
  "cifar10": 50_000,
  "imagenette": 9_469,
}


def _grid_plan(config) -> dict:
  """A Section 4 grid: every row, ablation, control, eps rule, detector;
  with ``eps_values`` (`stochjax.paper.eps_sensitivity`), every row at
  each radius and no control."""
  n = config.num_examples
  cells = grads = forwards = train = 0
  radii = len(config.get("eps_values", ())) or 1
  for name, setting in config.defenses.items():
    axes = grid_lib.axes(config, name)
    goals = len(axes.targeted)
    votes = setting.get("num_votes") or config.attack.num_votes
    noise = setting.detector.num_noise if setting.get("detector") else 0
    for _ in range(goals):
      rows = [
        grid_lib.in_budget(axes.steps, m, axes.get("max_budget", 0)) + [m]
        for _ in axes.step_fractions
        for m in axes.eot_samples
      ]
      if axes.get("ablation") is not None:
        rows.append([*axes.ablation.steps, 1])
      for *steps, m in rows:
        if steps:
          cells += len(steps) * radii
          grads += max(steps) * m * n * radii
          forwards += (votes + noise) * (1 + len(steps)) * n * radii
      if "eps_values" not in config:
        grads += max(axes.steps) * n  # The undefended control.
    if config.eps_rule.use:
      rule = config.eps_rule
      grads += rule.num_steps * len(rule.candidates) * rule.num_examples
    if setting.get("detector"):
      forwards += noise * setting.detector.num_calibration
    if not setting.weights:
      examples = config.train.epochs * TRAIN_SIZES.get(config.dataset, 0)
      train += examples
      if setting.get("adversarial"):  # Each example's PGD, in the step.
        grads += examples * setting.adversarial.num_steps
  # RSE's invariance (`stochjax.paper.rse`): draws before and after.
  forwards += 2 * config.get("invariance_draws", 0) * n
  return dict(cells=cells, images=n, grad_evals=grads, forward_evals=forwards,
              train_examples=train)  # fmt: skip


def _blackbox_plan(config) -> dict:
  """`stochjax.paper.blackbox`: per defense, three Square arms (up to the
  largest budget of forward passes, votes at every budget), the white-box
  PGD x EOT arms, the eps rule and training."""
  n, bb = config.num_examples, config.blackbox
  budgets, wb = tuple(bb.budgets), bb.whitebox
  cells = grads = forwards = train = 0
  for setting in config.defenses.values():
    votes = setting.get("num_votes") or config.attack.num_votes
    cells += 3 * len(budgets) + len(wb["step_fractions"])
    forwards += 3 * max(budgets) * n  # Square undefended, defended, EOT.
    forwards += (1 + 2 * votes) * len(budgets) * n  # Their votes.
    fractions = len(wb["step_fractions"])
    grads += fractions * wb["steps"] * wb["eot_samples"] * n
    forwards += fractions * 2 * votes * n
    if config.eps_rule.use:
      rule = config.eps_rule
      grads += rule.num_steps * len(rule.candidates) * rule.num_examples
    if not setting.weights:
      train += config.train.epochs * TRAIN_SIZES.get(config.dataset, 0)
  return dict(cells=cells, images=n, grad_evals=grads, forward_evals=forwards,
              train_examples=train)  # fmt: skip


def _fine_tuning_plan(config) -> dict:
  """Figs. 3-4: per defense, fine-tuning and every evaluated epoch."""
  n, votes = config.num_examples, config.num_votes
  cost = attacks.lookup(config.attack.spec).cost
  per_attack = (cost.grad_evals, cost.forward_evals)
  goals, epochs = len(config.goals), len(config.eval_epochs)
  evaluations = len(config.defenses) * epochs
  size = TRAIN_SIZES.get(config.dataset, 0)
  return dict(
    cells=evaluations * (2 * goals + 1),
    images=n,
    grad_evals=evaluations * goals * 2 * per_attack[0] * n,
    forward_evals=evaluations * n
    * (goals * (2 * votes + 2 + 2 * per_attack[1]) + votes),
    train_examples=len(config.defenses) * config.train.epochs * size,
  )  # fmt: skip


def _finetune_plan(config) -> dict:
  size = TRAIN_SIZES.get(config.dataset, 0)
  epochs = config.train.epochs + (0 if config.model.weights else
                                  config.pretrain_epochs)  # fmt: skip
  return dict(cells=config.train.epochs, images=config.num_eval, grad_evals=0,
              forward_evals=2 * config.num_eval * (config.train.epochs + 1),
              train_examples=epochs * size)  # fmt: skip


def _audit_plan(config) -> dict:
  """`stochjax.audit`: its attacks (step counts x draws) and votes."""
  b, n, votes = config.budget, config.num_examples, config.num_votes
  radii = len(set(b.eps_scales) | {e / config.threat.eps[0]
                                   for e in config.threat.eps})  # fmt: skip
  adaptive = b.steps * b.eot_samples
  attacks_run = [b.steps, adaptive, b.steps]  # Transfer, adaptive, bare.
  for budget in b.budgets:
    attacks_run += [budget, budget, budget]  # EOT and two no-EOT.
  attacks_run += [adaptive] * (radii + 2) + [2 * adaptive]  # Sanity.
  queries = b.get("blackbox_queries", 0)  # Square and EOT-Square.
  squares = 2 if queries else 0
  return dict(cells=len(attacks_run) + squares + 2, images=n,
              grad_evals=sum(attacks_run) * n,
              forward_evals=((len(attacks_run) + squares) * 2 * votes
                             + 3 * config.num_draws
                             + squares * queries) * n,
              train_examples=0 if config.model.weights or config.model.factory
              else config.train.epochs * TRAIN_SIZES.get(config.dataset, 0))  # fmt: skip


def plan(config) -> dict:
  """``{"cells", "images", "grad_evals", "forward_evals",
  "train_examples", "gpu_hours"}`` of the run `config` describes; training
  counts as 3 forward passes per example."""
  if "blackbox" in config:
    counts = _blackbox_plan(config)
  elif "grid" in config:
    counts = _grid_plan(config)
  elif "eval_epochs" in config:
    counts = _fine_tuning_plan(config)
  elif "pretrain_epochs" in config:
    counts = _finetune_plan(config)
  elif "budget" in config:
    counts = _audit_plan(config)
  else:  # Section 5: closed forms and Monte Carlo, no model.
    counts = dict(cells=len(config.eps) * len(config.sigmas), images=0,
                  grad_evals=0, forward_evals=0, train_examples=0)  # fmt: skip
  seconds = (
    counts["grad_evals"] / RATES["grad"]
    + (counts["forward_evals"] + 3 * counts["train_examples"])
    / RATES["forward"]
  )
  return counts | {"gpu_hours": seconds / 3600}


def describe(counts: dict) -> str:
  """The plan as one paragraph."""
  hours = counts["gpu_hours"]
  when = f"{hours:.1f} h" if hours >= 1 else f"{60 * hours:.0f} min"
  return (
    f"The real run: {counts['cells']:,} cells on {counts['images']:,} "
    f"images, {counts['grad_evals']:,} input gradients, "
    f"{counts['forward_evals']:,} forward passes, "
    f"{counts['train_examples']:,} training examples: about {when} on one "
    f"A100-class GPU (at {RATES['grad']:,.0f} gradients/s and "
    f"{RATES['forward']:,.0f} forward passes/s, docs/performance.md)."
  )


# The shipped configs of the paper's runs, in the table's order.
PAPER_CONFIGS = ("eot_ablation", "table1", "table2", "table2_cifar", "fig1",
                 "fig2", "eps_sensitivity", "rse", "blackbox", "fig3", "fig4",
                 "finetune", "section5", "audit")  # fmt: skip


def table() -> str:
  """The bill of every shipped ``:paper`` config, as a markdown table (the
  one in docs/performance.md): nothing is run."""
  lines = [
    "| `:paper` config | data | cells | input gradients | forward passes "
    "| training examples | estimate, one GPU |",
    "|---|---|---|---|---|---|---|",
  ]
  for name in PAPER_CONFIGS:
    config = importlib.import_module(f"stochjax.configs.{name}").get_config(
      "paper"
    )
    counts = plan(config)
    hours = counts["gpu_hours"]
    when = f"{hours:.1f} h" if hours >= 1 else f"{60 * hours:.0f} min"
    data = config.get("dataset", "–")
    lines.append(
      f"| `{name}` | {data} | {counts['cells']:,} | "
      f"{counts['grad_evals']:,} | {counts['forward_evals']:,} | "
      f"{counts['train_examples']:,} | {when} |"
    )
  return "\n".join(lines)
