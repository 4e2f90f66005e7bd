"""BaRT's contrast group: histogram equalization and contrast stretching.

Both are piecewise constant or clipped in the pixel values, so their
gradient is BPDA identity. The random parameters are keyword arguments
(bins, percentiles); the defaults are our reading of Raff et al.'s
appendix, which the paper's code does not include.

BaRT's adaptive histogram equalization (CLAHE) is in `clahe`.
"""

import jax
import jax.numpy as jnp

from stochjax import types
from stochjax.defenses import core

MAX_BINS = 256


def equalize_histogram(
  image: jax.Array, num_bins: jax.typing.ArrayLike
) -> jax.Array:
  """`skimage.exposure.equalize_hist(image, nbins=num_bins)`: the empirical
  CDF over `num_bins` equal bins between the array's min and max (all
  channels together), linearly interpolated between bin centres.

  Args:
    image: any-shape float32 array.
    num_bins: 1..256 (may be traced).

  Returns:
    Same shape, in [0, 1].
  """
  lo, hi = jnp.min(image), jnp.max(image)
  num_bins = jnp.asarray(num_bins, jnp.int32)
  width = jnp.where(hi > lo, (hi - lo) / num_bins.astype(image.dtype), 1.0)
  # np.histogram's bin of x; the last edge belongs to the last bin.
  index = jnp.clip(
    jnp.floor((image - lo) / width).astype(jnp.int32), 0, num_bins - 1
  )
  counts = jnp.zeros(MAX_BINS, image.dtype).at[index.ravel()].add(1.0)
  cdf = jnp.cumsum(counts) / image.size
  bins = jnp.arange(MAX_BINS)
  centers = lo + (bins.astype(image.dtype) + 0.5) * width
  # Bins past num_bins: increasing centres beyond the data, CDF 1.
  valid = bins < num_bins
  centers = jnp.where(valid, centers, hi + 1.0 + bins.astype(image.dtype))
  cdf = jnp.where(valid, cdf, 1.0)
  return jnp.interp(image.ravel(), centers, cdf).reshape(image.shape)


def stretch_contrast(
  image: jax.Array, low: jax.typing.ArrayLike, high: jax.typing.ArrayLike
) -> jax.Array:
  """`skimage.exposure.rescale_intensity(image, in_range=(p_low, p_high))`
  with the `low` and `high` percentiles (in [0, 100], NumPy's linear
  interpolation) of all channels together: ``clip((x - p_lo) / (p_hi -
  p_lo), 0, 1)``; a constant image is returned unchanged."""
  p_low, p_high = jnp.percentile(image, jnp.stack([low, high]))
  span = p_high - p_low
  stretched = (image - p_low) / jnp.where(span > 0, span, 1.0)
  return jnp.where(span > 0, jnp.clip(stretched, 0.0, 1.0), image)


@core.register("histogram_equalization", gradient="bpda")
def histogram_equalization(
  key: types.PRNGKey,
  image: types.Image,
  *,
  bins_low: int = 40,
  bins_high: int = 257,
) -> types.Image:
  """BaRT histogram equalization with an integer number of bins drawn from
  [bins_low, bins_high). BPDA identity.

  Args:
    key: the bins key.
    image: ``(H, W, C)`` float32 in [0, 1].
    bins_low, bins_high: 2 <= low < high <= 257.
  """
  if not (
    isinstance(bins_low, int)
    and isinstance(bins_high, int)
    and 2 <= bins_low < bins_high <= MAX_BINS + 1
  ):
    raise ValueError(
      f"Need integers 2 <= bins_low < bins_high <= {MAX_BINS + 1}, got "
      f"{bins_low}, {bins_high}."
    )

  def fn(key, image):
    num_bins = jax.random.randint(key, (), bins_low, bins_high)
    return equalize_histogram(image, num_bins)

  return core.bpda(fn)(key, image)


@core.register("contrast_stretch", gradient="bpda")
def contrast_stretch(
  key: types.PRNGKey,
  image: types.Image,
  *,
  low_range: tuple[float, float] = (1.0, 4.0),
  high_range: tuple[float, float] = (96.0, 99.0),
) -> types.Image:
  """BaRT contrast stretching: map the percentiles p_low (uniform in
  `low_range`) and p_high (uniform in `high_range`) to 0 and 1, clipping
  outside. BPDA identity.

  Args:
    key: the percentile key.
    image: ``(H, W, C)`` float32 in [0, 1].
    low_range, high_range: ``(low, high)`` percentiles in [0, 100], low <=
      high, every low percentile below every high one.
  """
  (a, b), (c, d) = low_range, high_range
  if not 0.0 <= a <= b < c <= d <= 100.0:
    raise ValueError(
      "Need 0 <= low_range[0] <= low_range[1] < high_range[0] <= "
      f"high_range[1] <= 100, got {low_range}, {high_range}."
    )

  def fn(key, image):
    low_key, high_key = jax.random.split(key)
    low = jax.random.uniform(low_key, (), image.dtype, a, b)
    high = jax.random.uniform(high_key, (), image.dtype, c, d)
    return stretch_contrast(image, low, high)

  return core.bpda(fn)(key, image)
