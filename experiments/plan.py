"""The bill of every `:paper` run, as the markdown table in
docs/performance.md: cells, images, model evaluations, a one-GPU estimate.

    python -m experiments.plan

Counted from the configs by `stochjax.paper.plan` (what a dry run prints
first); nothing is run.
"""

from absl import app

from configs import (
  audit,
  eot_ablation,
  fig1,
  fig2,
  fig3,
  fig4,
  finetune,
  section5,
  table1,
  table2,
  table2_cifar,
)
from stochjax.paper import plan

CONFIGS = (eot_ablation, table1, table2, table2_cifar, fig1, fig2, fig3,
           fig4, finetune, section5, audit)  # fmt: skip


def table() -> str:
  lines = [
    "| `:paper` config | data | cells | input gradients | forward passes "
    "| training examples | estimate, one GPU |",
    "|---|---|---|---|---|---|---|",
  ]
  for module in CONFIGS:
    config = module.get_config("paper")
    counts = plan.plan(config)
    hours = counts["gpu_hours"]
    when = f"{hours:.1f} h" if hours >= 1 else f"{60 * hours:.0f} min"
    data = config.get("dataset", "–")
    lines.append(
      f"| `{module.__name__.split('.')[-1]}` | {data} | {counts['cells']:,} | "
      f"{counts['grad_evals']:,} | {counts['forward_evals']:,} | "
      f"{counts['train_examples']:,} | {when} |"
    )
  return "\n".join(lines)


def main(argv):
  del argv
  print(table())


if __name__ == "__main__":
  app.run(main)
