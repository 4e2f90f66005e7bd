"""stochjax: stochastic pre-processing defenses and EOT attacks in JAX.

Importing stochjax first switches off XLA:CPU's YNNPACK fusions, which gave
wrong input gradients on jaxlib 0.10 (see `stochjax._xla_flags`).
"""

from stochjax import _xla_flags

SAFE_XLA_CPU = _xla_flags.configure()

from stochjax import (  # noqa: E402
  attacks,
  defenses,
  evaluate,
  models,
  prng,
  registry,
  voting,
)

__version__ = "0.1.0"
__all__ = [
  "attacks",
  "defenses",
  "evaluate",
  "models",
  "prng",
  "registry",
  "voting",
]
