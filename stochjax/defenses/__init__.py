"""Stochastic pre-processing defenses: ``defense(key, image) -> image``.

Importing this package registers every defense. Build one from a spec::

    from stochjax import defenses
    defense = defenses.lookup("noise_injection()|rotation(max_degrees=90)")
    out = defenses.batched(defense)(key, images)   # (N, H, W, C) in [0, 1]
"""

from stochjax.defenses import noise, transforms  # noqa: F401  (registration)
from stochjax.defenses.core import (
  REGISTRY,
  batched,
  bpda,
  compose,
  eot,
  example_keys,
  identity,
  lookup,
  straight_through,
)
from stochjax.defenses.noise import (
  NOISE_MODES,
  gaussian_noise,
  inject_noise,
  noise_injection,
)
from stochjax.defenses.transforms import rotate, rotation

__all__ = [
  "NOISE_MODES",
  "REGISTRY",
  "batched",
  "bpda",
  "compose",
  "eot",
  "example_keys",
  "gaussian_noise",
  "identity",
  "inject_noise",
  "lookup",
  "noise_injection",
  "rotate",
  "rotation",
  "straight_through",
]
