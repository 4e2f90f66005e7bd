"""Stochastic pre-processing defenses: ``defense(key, image) -> image``.

Importing this package registers every defense. Build one from a spec::

    from stochjax import defenses
    defense = defenses.lookup("noise_injection()|rotation(max_degrees=90)")
    out = defenses.batched(defense)(key, images)   # (N, H, W, C) in [0, 1]
"""

from stochjax.defenses import (  # noqa: F401  (registration)
  clahe,
  color,
  compression,
  contrast,
  denoise,
  disk_filters,
  ensemble,
  filters,
  jpeg,
  nl_means,
  noise,
  rescaling,
  transforms,
  wavelet,
)
from stochjax.defenses.color import shift_color
from stochjax.defenses.compression import dct_quantize, fft_perturb, quantize
from stochjax.defenses.core import (
  REGISTRY,
  batched,
  bpda,
  compose,
  draws,
  identity,
  lookup,
  straight_through,
)
from stochjax.defenses.denoise import (
  denoise_tv_chambolle,
  masked_tv,
  tv_chambolle,
)
from stochjax.defenses.ensemble import PAPER_STACK, RAFF_GROUPS, bart
from stochjax.defenses.filters import (
  blur,
  filter_median,
  gaussian_blur,
  median,
)
from stochjax.defenses.jpeg import jpeg_compress
from stochjax.defenses.nl_means import denoise_nl_means
from stochjax.defenses.noise import (
  NOISE_MODES,
  gaussian_noise,
  inject_noise,
  noise_injection,
)
from stochjax.defenses.rescaling import resize_and_pad
from stochjax.defenses.transforms import rotate, rotation, swirl, swirl_image

__all__ = [
  "NOISE_MODES",
  "PAPER_STACK",
  "RAFF_GROUPS",
  "bart",
  "dct_quantize",
  "fft_perturb",
  "blur",
  "denoise_nl_means",
  "denoise_tv_chambolle",
  "filter_median",
  "gaussian_blur",
  "median",
  "swirl_image",
  "jpeg_compress",
  "masked_tv",
  "resize_and_pad",
  "shift_color",
  "tv_chambolle",
  "quantize",
  "swirl",
  "REGISTRY",
  "batched",
  "bpda",
  "compose",
  "draws",
  "gaussian_noise",
  "identity",
  "inject_noise",
  "lookup",
  "noise_injection",
  "rotate",
  "rotation",
  "straight_through",
]
