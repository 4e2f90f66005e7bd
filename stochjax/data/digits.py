"""scikit-learn's bundled handwritten digits: the embedded default dataset.

1,797 real 8x8 images that ship with scikit-learn (so they work offline),
upsampled bilinearly to 32x32 and repeated to 3 channels. Fixed split: a
seed-0 permutation; the last 360 images are the test set.
"""

import jax
import numpy as np

from stochjax.data.core import Dataset

DIGITS_TEST_SIZE = 360


def _upsample(images: np.ndarray, size: int) -> np.ndarray:
  """Bilinear (half-pixel centres) resize of ``(N, h, w)`` to ``(N, s, s)``."""
  out = jax.image.resize(
    images, (images.shape[0], size, size), "linear", antialias=False
  )
  return np.clip(np.asarray(out, np.float32), 0.0, 1.0)


def load_digits(split: str, size: int = 32) -> Dataset:
  """scikit-learn's digits, upsampled to ``(size, size, 3)``."""
  from sklearn import datasets  # noqa: PLC0415  (slow import)

  digits = datasets.load_digits()
  images = (digits.images / 16.0).astype(np.float32)
  order = np.random.RandomState(0).permutation(len(images))
  test, train = order[-DIGITS_TEST_SIZE:], order[:-DIGITS_TEST_SIZE]
  index = {"train": train, "test": test}[split]
  pixels = _upsample(images[index], size)
  rgb = np.repeat(pixels[..., None], 3, axis=-1)
  return Dataset(rgb, digits.target[index].astype(np.int32), 10)
