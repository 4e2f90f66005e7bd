"""The axes of a Section 4 grid config: which (k, m) cells a row runs.

A grid config has ``grid`` (steps, eot_samples, step_fractions,
max_budget, ablation), and each defense entry may carry its own ``grid``
block over it. The drivers, the plan and the dry run read it here.
"""

import ml_collections


def in_budget(steps, m: int, max_budget: int) -> list[int]:
  """The step counts k of row m with k x m within `max_budget` (0: all)."""
  return [k for k in steps if not max_budget or k * m <= max_budget]


def axes(config, name: str) -> ml_collections.ConfigDict:
  """``config.grid`` with defense `name`'s own ``grid`` block over it
  (steps, eot_samples, step_fractions, max_budget, ablation): Table 2's
  rows each have the paper's own (k, m, step). An own ``ablation=None``
  drops the grid's ablation for that defense."""
  axes = ml_collections.ConfigDict(config.grid.to_dict())
  own = config.defenses[name].get("grid")
  if own is not None:
    own = own.to_dict()
    if "ablation" in own and own["ablation"] is None:
      del own["ablation"]
      axes.ablation = None
    axes.update(own)
  return axes
