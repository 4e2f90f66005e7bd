"""What attacks return: the budget (`Cost`), the jitted body's `Run`, and
the `AttackResult` of ``attack.with_info(...)``."""

import dataclasses
from typing import NamedTuple

import jax


@dataclasses.dataclass(frozen=True)
class Cost:
  """The budget of one attack, per example.

  Attributes:
    num_steps: k, steps per restart.
    eot_samples: m, defense draws per gradient.
    restarts: independent restarts.
    grad_evals: model forward + backward passes, in all restarts.
    forward_evals: extra forward-only passes (loss checks, predictions).
  """

  num_steps: int
  eot_samples: int
  restarts: int
  grad_evals: int
  forward_evals: int

  @property
  def strength(self) -> int:
    """The paper's attack strength k x m (per restart)."""
    return self.num_steps * self.eot_samples

  def as_dict(self) -> dict[str, int]:
    return dataclasses.asdict(self) | {"strength": self.strength}


class AttackResult(NamedTuple):
  """What ``attack.with_info(...)`` returns.

  Attributes:
    images: ``(N, H, W, C)`` adversarial images in [0, 1].
    losses: ``(restarts, num_steps, N)`` EOT loss at the point each step's
      gradient was taken.
    goal_rates: ``(restarts, num_steps, N)`` fraction of those draws whose
      prediction met the goal (untargeted: != label; targeted: == target).
    grad_evals: gradient evaluations spent on the batch (fewer than the
      budget when an early stop skipped steps).
    forward_evals: extra forward-only evaluations spent on the batch.
    cost: the per-example budget.
  """

  images: jax.Array
  losses: jax.Array
  goal_rates: jax.Array
  grad_evals: int
  forward_evals: int
  cost: Cost


class Run(NamedTuple):
  """What a jitted attack body returns (device values)."""

  images: jax.Array
  losses: jax.Array  # (restarts, num_steps, N)
  goal_rates: jax.Array  # (restarts, num_steps, N)
  grad_evals: jax.Array  # () int32, per example (the batch runs together)
  forward_evals: jax.Array  # () int32, per example
