"""scikit-learn's bundled handwritten digits: the embedded default dataset.

1,797 real 8x8 images that ship with scikit-learn (so they work offline),
upsampled bilinearly to 32x32 and repeated to 3 channels. Split by a seed
(`stochjax.data.splits.partition`): a permutation, its last 360 images the
test set; seed 0 is the split before seeds.
"""

import jax
import numpy as np

from stochjax.data import splits
from stochjax.data.core import Dataset

DIGITS_TEST_SIZE = 360


def _upsample(images: np.ndarray, size: int) -> np.ndarray:
  """Bilinear (half-pixel centres) resize of ``(N, h, w)`` to ``(N, s, s)``."""
  out = jax.image.resize(
    images, (images.shape[0], size, size), "linear", antialias=False
  )
  return np.clip(np.asarray(out, np.float32), 0.0, 1.0)


def load_digits(split: str, size: int = 32, seed: int = 0) -> Dataset:
  """scikit-learn's digits, upsampled to ``(size, size, 3)``, split by
  `seed`."""
  from sklearn import datasets  # noqa: PLC0415  (slow import)

  digits = datasets.load_digits()
  images = (digits.images / 16.0).astype(np.float32)
  train, test = splits.partition(len(images), seed, DIGITS_TEST_SIZE)
  index = {"train": train, "test": test}[split]
  pixels = _upsample(images[index], size)
  rgb = np.repeat(pixels[..., None], 3, axis=-1)
  return Dataset(rgb, digits.target[index].astype(np.int32), 10)
