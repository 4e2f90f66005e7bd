"""BaRT's non-local means denoiser: scikit-image's fast algorithm in JAX.

`denoise_nl_means` follows scikit-image's
`skimage.restoration.denoise_nl_means(fast_mode=True)`
on a 2-D image with channels (Darbon et al.'s shift-outer loop, Froment's
formulation): for every shift of the search window it computes the patch
distance of each pixel to its shifted twin, and both pixels of the pair
gain the other's value with the weight ``exp(-distance)``, approximated as
scikit-image does (Schraudolph's exponential). Its quirks are kept: the
patch sum covers the ``2 (s // 2)`` rows and columns ending at the centre
+ s // 2, and distances above 5 get no weight. Patch size and search
distance are traced (BaRT draws them per image): the loops run over the
largest window and mask what a draw does not use.

Differences to scikit-image: float32 instead of float64 sums (the tests
allow 1e-4), and the BaRT strength ``h`` is set from `noise_sigma`, a
median-absolute-deviation estimate on the finest diagonal Haar-wavelet
coefficients, where BaRT calls `skimage.restoration.estimate_sigma` (the
same estimator on Daubechies-2 coefficients, which needs PyWavelets). The
public BaRT code's RGB "volume" mode (a 3-D denoiser run across the colour
axis, a side effect of a default argument) is not reproduced: its two modes
here are all channels together and each channel alone.

References:
  Darbon, Cunha, Chan, Osher, Jensen. Fast nonlocal filtering applied to
  electron cryomicroscopy. ISBI 2008.
  Froment. Parameter-Free Fast Pixelwise Non-Local Means Denoising. IPOL
  2014.
"""

import jax
import jax.numpy as jnp

from stochjax import types, validation
from stochjax.defenses import core

_CUTOFF = 5.0
_EXP_A = 1512775.3951951856938  # 2^20 / ln 2
_EXP_BC = 1072632447


def fast_exp(y: jax.Array) -> jax.Array:
  """scikit-image's `_fast_exp` for y <= 0: the float64 whose high word is
  ``int(EXP_A y) + EXP_BC`` and low word 0 (relative error up to ~3 %)."""
  high = jnp.ceil(_EXP_A * y).astype(jnp.int32) + _EXP_BC
  exponent = (high >> 20) - 1023
  mantissa = 1.0 + (high & 0xFFFFF).astype(jnp.float32) / 2.0**20
  return jnp.ldexp(mantissa, exponent)


def _window_sum(x: jax.Array, half, max_half: int, axis: int) -> jax.Array:
  """``sum(x[i - half + 1 : i + half + 1])`` along `axis` (zero outside),
  for a traced ``half <= max_half``."""
  n = x.shape[axis]
  pad = [(0, 0)] * x.ndim
  pad[axis] = (max_half, max_half)
  padded = jnp.pad(x, pad)
  total = jnp.zeros_like(x)
  for step in range(-max_half + 1, max_half + 1):
    part = jax.lax.slice_in_dim(padded, max_half + step, max_half + step + n,
                                axis=axis)  # fmt: skip
    total += jnp.where((step > -half) & (step <= half), part, 0.0)
  return total


def _shift(x: jax.Array, rows, cols, pad: int) -> jax.Array:
  """``x[r + rows, c + cols]`` (zero outside), traced ``|rows|, |cols| <=
  pad``."""
  padded = jnp.pad(x, ((pad, pad), (pad, pad), (0, 0)))
  return jax.lax.dynamic_slice(padded, (pad + rows, pad + cols, 0), x.shape)


def denoise_nl_means(
  image: jax.Array,
  *,
  patch_size: jax.typing.ArrayLike,
  patch_distance: jax.typing.ArrayLike,
  h: jax.typing.ArrayLike,
  bounds: tuple[int, int] | None = None,
) -> jax.Array:
  """`skimage.restoration.denoise_nl_means(image, patch_size, patch_distance,
  h, fast_mode=True, channel_axis=-1)`.

  Args:
    image: ``(H, W, C)`` float32.
    patch_size: odd-made patch side s (even s becomes s + 1), may be traced.
    patch_distance: the search radius d, may be traced.
    h: the cut-off distance, > 0, may be traced.
    bounds: static ``(max_patch_size, max_patch_distance)`` for traced
      sizes; None when both are ints.

  Returns:
    ``(H, W, C)`` float32.
  """
  if bounds is None:
    bounds = (int(patch_size), int(patch_distance))
  max_half, max_d = bounds[0] // 2, bounds[1]
  half = jnp.asarray(patch_size, jnp.int32) // 2
  d = jnp.asarray(patch_distance, jnp.int32)
  pad = max_half + max_d + 1
  padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
  n_row, n_col, channels = padded.shape
  # The used image is the padded one cropped to this draw's padding.
  used = max_half + max_d + 1 - (half + d + 1)
  rows = jnp.arange(n_row)[:, None] - used
  cols = jnp.arange(n_col)[None, :] - used
  size = (
    image.shape[0] + 2 * (half + d + 1),
    image.shape[1] + 2 * (half + d + 1),
  )
  s = 2 * half + 1
  h2s2 = channels * h * h * (s * s).astype(jnp.float32)

  def add_shift(index, carry):
    weights, result = carry
    t_row = index // (d + 1) - d
    t_col = index % (d + 1)
    twin = _shift(padded, t_row, t_col, max_d)
    squared = jnp.sum((padded - twin) ** 2, axis=-1, keepdims=True)
    distance = _window_sum(
      _window_sum(squared, half, max_half, 0), half, max_half, 1
    )[..., 0]
    distance = jnp.maximum(distance, 0.0) / h2s2
    row_ok = (rows >= jnp.maximum(half, half - t_row)) & (
      rows < jnp.minimum(size[0] - half, size[0] - half - t_row)
    )
    col_ok = (cols >= half) & (cols < size[1] - half - t_col)
    take = row_ok & col_ok & (distance <= _CUTOFF)
    alpha = jnp.where(t_col == 0, 0.5, 1.0)
    weight = jnp.where(take, alpha * fast_exp(-distance), 0.0)[..., None]
    back = _shift(weight, -t_row, -t_col, max_d)  # Credited to the twin.
    weights = weights + weight + back
    result = result + weight * twin + back * _shift(padded, -t_row, -t_col,
                                                    max_d)  # fmt: skip
    return weights, result

  zeros = jnp.zeros((n_row, n_col, 1), jnp.float32)
  # Shifts (t_row, t_col) in [-d, d] x [0, d], row-major as scikit-image.
  weights, result = jax.lax.fori_loop(
    0, (2 * d + 1) * (d + 1), add_shift,
    (zeros, jnp.zeros_like(padded)),
  )  # fmt: skip
  out = result / jnp.where(weights > 0, weights, 1.0)
  return out[pad:-pad, pad:-pad]


def noise_sigma(plane: jax.Array) -> jax.Array:
  """Donoho's noise estimate of a ``(H, W)`` plane: the median absolute
  finest diagonal Haar coefficient ``(a - b - c + d) / 2`` over 2x2 blocks,
  divided by 0.6745 (`skimage.restoration.estimate_sigma` uses Daubechies-2
  coefficients)."""
  h, w = plane.shape
  blocks = plane[: h - h % 2, : w - w % 2]
  diagonal = (
    blocks[0::2, 0::2] - blocks[0::2, 1::2] - blocks[1::2, 0::2]
    + blocks[1::2, 1::2]
  ) / 2.0  # fmt: skip
  return jnp.median(jnp.abs(diagonal)) / 0.6745


@core.register("nl_means", gradient="bpda")
def nl_means(
  key: types.PRNGKey,
  image: types.Image,
  *,
  patch_sizes: tuple[int, int] = (5, 7),
  distances: tuple[int, int] = (6, 11),
  h_factors: tuple[float, float] = (0.6, 1.15),
) -> types.Image:
  """BaRT non-local means: patch size and search distance integers uniform
  in `patch_sizes` and `distances` (inclusive), h = a factor uniform in
  `h_factors` times the estimated noise sigma (`noise_sigma`, at least
  1e-3); all channels together or each channel with its own sigma, 1/2
  each (public BaRT code's ranges). BPDA identity.

  Args:
    key: the parameter key.
    image: ``(H, W, C)`` float32 in [0, 1], H, W > patch + distance.
    patch_sizes, distances: ``(low, high)`` integers, 1 <= low <= high.
    h_factors: ``(low, high)``, 0 < low <= high.
  """
  validation.int_range("patch_sizes", *patch_sizes, 1)
  validation.int_range("distances", *distances, 1)
  if not 0.0 < h_factors[0] <= h_factors[1]:
    raise ValueError(f"h_factors needs 0 < low <= high, got {h_factors}.")
  reach = patch_sizes[1] // 2 + distances[1] + 1
  if min(image.shape[:2]) <= reach:
    raise ValueError(
      f"nl_means searches {reach} pixels around each pixel: "
      f"{image.shape[0]}x{image.shape[1]} is too small."
    )
  bounds = (patch_sizes[1], distances[1])

  def draw(key, image, sigma):
    size_key, distance_key, h_key = jax.random.split(key, 3)
    size = jax.random.randint(size_key, (), patch_sizes[0], patch_sizes[1] + 1)
    distance = jax.random.randint(distance_key, (), distances[0],
                                  distances[1] + 1)  # fmt: skip
    factor = jax.random.uniform(h_key, (), jnp.float32, *h_factors)
    h = jnp.maximum(factor * sigma, 1e-3)
    return denoise_nl_means(
      image, patch_size=size, patch_distance=distance, h=h, bounds=bounds
    )

  def joint(key, image):
    sigma = jnp.mean(jax.vmap(noise_sigma, -1)(image))
    return draw(key, image, sigma)

  def per_channel(key, image):
    return jax.vmap(
      lambda plane: draw(key, plane[..., None], noise_sigma(plane))[..., 0],
      in_axes=-1,
      out_axes=-1,
    )(image)

  def fn(key, image):
    out = core.random_branch(key, [joint, per_channel], image)
    return jnp.clip(out, 0.0, 1.0)

  return core.bpda(fn)(key, image)
