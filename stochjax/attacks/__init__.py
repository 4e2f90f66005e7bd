"""Attacks: factories returning pure ``attack(key, logits_fn, images, labels)``.

from stochjax import attacks
attack = attacks.lookup("pgd(eps=0.03, step_size=0.004, num_steps=10)",
                        defense=defense)
"""

from stochjax import registry as registry_lib
from stochjax.attacks import (
  apgd,
  apgd_art,
  apgd_t,
  attack,
  ensemble,
  fab,
  losses,
  norms,
  results,
  spsa,
  square,
)
from stochjax.attacks.apgd import make_apgd
from stochjax.attacks.apgd_t import make_apgd_t
from stochjax.attacks.attack import Attack, RecompileWarning, as_pytree_fn
from stochjax.attacks.ensemble import RandomizedDefenseWarning, autoattack
from stochjax.attacks.eot import make_eot, make_value_and_grad
from stochjax.attacks.fab import make_fab
from stochjax.attacks.losses import (
  LOSSES,
  cross_entropy,
  dlr,
  dlr_targeted,
  get_loss,
  margin,
)
from stochjax.attacks.pgd import make_pgd
from stochjax.attacks.results import AttackResult, Cost
from stochjax.attacks.spsa import make_spsa
from stochjax.attacks.square import make_square

REGISTRY = registry_lib.Registry("attack")
REGISTRY.register("pgd")(make_pgd)
REGISTRY.register("apgd")(make_apgd)
REGISTRY.register("apgd_t")(make_apgd_t)
REGISTRY.register("square")(make_square)
REGISTRY.register("spsa")(make_spsa)
REGISTRY.register("fab")(make_fab)
REGISTRY.register("autoattack")(autoattack)


def lookup(spec: str, **extra):
  """Builds an attack from a spec; `extra` adds non-literal arguments.

  Args:
    spec: e.g. ``"pgd(eps=0.0314, step_size=0.0078, num_steps=10)"``.
    **extra: e.g. ``defense=...``.

  Raises:
    ValueError: unknown attack or argument names, or bad values.
  """
  return REGISTRY.lookup(spec, **extra)()


__all__ = [
  "LOSSES",
  "REGISTRY",
  "Attack",
  "AttackResult",
  "RecompileWarning",
  "Cost",
  "RandomizedDefenseWarning",
  "apgd",
  "apgd_art",
  "apgd_t",
  "as_pytree_fn",
  "attack",
  "autoattack",
  "ensemble",
  "cross_entropy",
  "dlr",
  "dlr_targeted",
  "fab",
  "get_loss",
  "lookup",
  "losses",
  "make_apgd",
  "make_apgd_t",
  "make_eot",
  "make_fab",
  "make_pgd",
  "make_spsa",
  "make_square",
  "make_value_and_grad",
  "margin",
  "norms",
  "results",
  "spsa",
  "square",
]
