"""BaRT's wavelet denoising: scikit-image's BayesShrink on Haar wavelets.

`denoise_wavelet` follows `skimage.restoration.denoise_wavelet(wavelet="db1",
method="BayesShrink", channel_axis=-1)` (PyWavelets' Haar transform, the
one wavelet BaRT uses): each channel is decomposed over ``max(floor(log2
(min(H, W))) - 3, 1)`` levels, the noise sigma is the median absolute
non-zero finest diagonal coefficient / 0.6745, every detail band is
soft- or hard-thresholded at ``sigma^2 / sqrt(max(var(band) - sigma^2,
eps))``, and the image is rebuilt; optionally in YCbCr, each channel
stretched to [0, 1] first. `cycle_spin` averages it over shifted copies.
Tested against scikit-image with PyWavelets on fixtures written by
``tools/make_wavelet_fixtures.py`` (PyWavelets is not a dependency).
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from stochjax import types
from stochjax.defenses import color, core

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_GAUSSIAN_MAD = 0.6744897501960817  # scipy.stats.norm.ppf(0.75)


def _haar_axis(x: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
  """One Haar step along `axis` (PyWavelets' symmetric mode: an odd length
  pairs its last sample with itself): (approximation, detail)."""
  n = x.shape[axis]
  if n % 2:
    x = jnp.concatenate([x, jax.lax.slice_in_dim(x, n - 1, n, axis=axis)],
                        axis)  # fmt: skip
  even = jax.lax.slice_in_dim(x, 0, None, 2, axis=axis)
  odd = jax.lax.slice_in_dim(x, 1, None, 2, axis=axis)
  return (even + odd) * _SQRT_HALF, (even - odd) * _SQRT_HALF


def _inverse_haar_axis(approx, detail, axis: int, n: int) -> jax.Array:
  even, odd = (approx + detail) * _SQRT_HALF, (approx - detail) * _SQRT_HALF
  pairs = jnp.stack([even, odd], axis=axis + 1)
  shape = list(approx.shape)
  shape[axis] *= 2
  return jax.lax.slice_in_dim(pairs.reshape(shape), 0, n, axis=axis)


def haar_levels(shape: tuple[int, ...]) -> int:
  """scikit-image's default: ``max(dwtn_max_level - 3, 1)``."""
  return max(int(math.floor(math.log2(min(shape)))) - 3, 1)


def _median_nonzero_abs(x: jax.Array) -> jax.Array:
  """NumPy's median of ``|x[x != 0]|`` (0 if all are zero)."""
  values = jnp.sort(jnp.where(x != 0, jnp.abs(x), jnp.inf).ravel())
  count = jnp.sum(x != 0)
  low = values[jnp.maximum((count - 1) // 2, 0)]
  high = values[jnp.maximum(count // 2, 0)]
  return jnp.where(count > 0, (low + high) / 2, 0.0)


def wavelet_threshold(
  plane: jax.Array, *, hard: jax.typing.ArrayLike
) -> jax.Array:
  """scikit-image's `_wavelet_threshold` (db1, BayesShrink) on ``(H, W)``.

  Args:
    plane: ``(H, W)`` float32.
    hard: hard thresholding if True, soft if False (may be traced).
  """
  bands, approx = [], plane
  for _ in range(haar_levels(plane.shape)):
    shape = approx.shape
    low, high = _haar_axis(approx, 0)
    aa, ad = _haar_axis(low, 1)
    da, dd = _haar_axis(high, 1)
    bands.append((shape, ad, da, dd))
    approx = aa
  sigma = _median_nonzero_abs(bands[0][3]) / _GAUSSIAN_MAD
  var = sigma * sigma
  eps = jnp.finfo(plane.dtype).eps

  def shrink(band):
    threshold = var / jnp.sqrt(jnp.maximum(jnp.mean(band * band) - var, eps))
    soft = jnp.sign(band) * jnp.maximum(jnp.abs(band) - threshold, 0.0)
    return jnp.where(hard, jnp.where(jnp.abs(band) >= threshold, band, 0.0),
                     soft)  # fmt: skip

  for shape, ad, da, dd in reversed(bands):
    approx = approx[: ad.shape[0], : ad.shape[1]]
    low = _inverse_haar_axis(approx, shrink(ad), 1, shape[1])
    high = _inverse_haar_axis(shrink(da), shrink(dd), 1, shape[1])
    approx = _inverse_haar_axis(low, high, 0, shape[0])
  return approx


def denoise_wavelet(
  image: types.Image, *, hard: jax.typing.ArrayLike, ycbcr: bool
) -> types.Image:
  """`skimage.restoration.denoise_wavelet(image, wavelet="db1", mode=...,
  convert2ycbcr=..., channel_axis=-1)` on ``(H, W, 3)`` float32 (`hard`
  may be traced)."""
  per_channel = jax.vmap(
    lambda p: wavelet_threshold(p, hard=hard), in_axes=-1, out_axes=-1
  )
  if not ycbcr:
    return per_channel(image)
  converted = color.rgb_to_ycbcr(image)
  low = jnp.min(converted, axis=(0, 1), keepdims=True)
  span = jnp.max(converted, axis=(0, 1), keepdims=True) - low
  stretched = (converted - low) / jnp.where(span > 0, span, 1.0)
  denoised = jnp.where(span > 0, per_channel(stretched) * span + low,
                       converted)  # fmt: skip
  return color.ycbcr_to_rgb(denoised)


def cycle_spin(
  fn: Callable[[jax.Array], jax.Array], image: jax.Array, max_shift: int
) -> jax.Array:
  """`skimage.restoration.cycle_spin(image, fn, max_shifts=max_shift,
  channel_axis=-1)`: the mean of ``roll(fn(roll(image, s)), -s)`` over
  spatial shifts s in ``{0..max_shift}^2``."""
  shifts = [(r, c) for r in range(max_shift + 1) for c in range(max_shift + 1)]
  total = sum(
    jnp.roll(fn(jnp.roll(image, s, axis=(0, 1))), (-s[0], -s[1]), axis=(0, 1))
    for s in shifts
  )
  return total / len(shifts)


@core.register("wavelet_denoise", gradient="bpda")
def wavelet_denoise(key: types.PRNGKey, image: types.Image) -> types.Image:
  """BaRT wavelet denoising (public BaRT code): Haar BayesShrink, soft or
  hard thresholds, in RGB or YCbCr, cycle-spun over shifts of 0 or 1, each
  choice 1/2. BPDA identity.

  Args:
    key: the choice key.
    image: ``(H, W, 3)`` float32 in [0, 1], H, W >= 2.
  """
  h, w, c = image.shape
  if c != 3 or min(h, w) < 2:
    raise ValueError(
      f"wavelet_denoise needs an RGB image of at least 2x2, got {h}x{w}x{c}."
    )

  def variant(ycbcr: bool, spin: int):
    def run(key, image):
      hard = jax.random.bernoulli(key)
      return cycle_spin(
        lambda x: denoise_wavelet(x, hard=hard, ycbcr=ycbcr), image, spin
      )

    return run

  def fn(key, image):
    # Only the drawn colour space and shift count run.
    variants = [variant(y, s) for y in (False, True) for s in (0, 1)]
    return jnp.clip(core.random_branch(key, variants, image), 0.0, 1.0)

  return core.bpda(fn)(key, image)
