"""BaRT's filters with random kernels: Gaussian blur and median.

Kernel sizes are drawn per image from the odd sizes 3..13 per axis (the
paper's ``randint(2, 14) | 1``). Under `vmap` shapes must be static, so both
filters work on the largest (13-tap) window and mask the taps outside the
drawn size; the result equals the filter with the smaller kernel.
Gradients are BPDA identity, as in the paper's code.
"""

import functools

import jax
import jax.numpy as jnp

from stochjax import types, validation
from stochjax.defenses import core

MAX_KERNEL = 13


def _odd_size(key, low: int = 2, high: int = 14) -> jax.Array:
  """``randint(low, high) | 1``: odd sizes 3..13, uniform for (2, 14)."""
  return jax.random.randint(key, (), low, high) | 1


def _taps(size) -> jax.Array:
  """Offsets -6..6 of the 13-tap window and whether each is inside `size`."""
  offsets = jnp.arange(MAX_KERNEL) - MAX_KERNEL // 2
  return offsets, jnp.abs(offsets) <= size // 2


def gaussian_kernel(
  size: jax.typing.ArrayLike, sigma: jax.typing.ArrayLike
) -> jax.Array:
  """13 taps; the centred `size` of them hold kornia's normalized Gaussian."""
  offsets, inside = _taps(size)
  sigma = jnp.asarray(sigma, jnp.float32)
  x = offsets.astype(jnp.float32)
  weights = jnp.where(inside, jnp.exp(-(x**2) / (2.0 * sigma**2)), 0.0)
  return weights / jnp.sum(weights)


def _correlate_axis(image, kernel, axis: int) -> jax.Array:
  """Correlates along `axis` with 'reflect' (scipy 'mirror') borders."""
  pad = [(0, 0)] * image.ndim
  pad[axis] = (MAX_KERNEL // 2, MAX_KERNEL // 2)
  padded = jnp.pad(image, pad, mode="reflect")
  n = image.shape[axis]
  return sum(
    kernel[t] * jax.lax.slice_in_dim(padded, t, t + n, axis=axis)
    for t in range(MAX_KERNEL)
  )


def blur(
  image: types.Image,
  *,
  size: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] | jax.Array,
  sigma: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] | jax.Array,
) -> types.Image:
  """Separable Gaussian blur, ``size = (kh, kw)`` odd <= 13, ``sigma = (sy,
  sx)``; borders reflect (kornia ``gaussian_blur2d``). Images need H, W > 6.
  """
  h, w, _ = image.shape
  if min(h, w) <= MAX_KERNEL // 2:
    raise ValueError(f"blur needs H, W > 6, got {h}x{w}.")
  out = _correlate_axis(image, gaussian_kernel(size[0], sigma[0]), 0)
  return _correlate_axis(out, gaussian_kernel(size[1], sigma[1]), 1)


def _ordered_bits(x: jax.Array) -> jax.Array:
  """int32 keys with the same order as the float32 values (-0.0 == 0.0)."""
  bits = jax.lax.bitcast_convert_type(jnp.where(x == 0, 0.0, x), jnp.int32)
  return jnp.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _from_ordered_bits(keys: jax.Array) -> jax.Array:
  bits = jnp.where(keys < 0, keys ^ 0x7FFFFFFF, keys)
  return jax.lax.bitcast_convert_type(bits, jnp.float32)


def filter_median(
  image: types.Image,
  *,
  size: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] | jax.Array,
) -> types.Image:
  """Median over a ``size = (kh, kw)`` window (odd <= 13), zero padding
  outside the image (kornia ``median_blur``).

  Exact, without sorting windows: the median is one of the image's values
  (or the padding's 0), so a bisection over the sorted values finds, per
  pixel, the smallest with at least ``kh * kw // 2 + 1`` window values at or
  below it: ceil(log2(H W C + 1)) rounds (18 at 224x224x3, 12 at 32x32x3)
  of 169 compare-and-adds on order-preserving int32 keys. Memory is a few
  copies of the image; on XLA:CPU this is far faster than sorting the 169
  taps of every pixel.
  """
  h, w, _ = image.shape
  r = MAX_KERNEL // 2
  keys = _ordered_bits(image.astype(jnp.float32))
  padded = jnp.pad(keys, ((r, r), (r, r), (0, 0)))  # Key 0 is the value 0.
  candidates = jnp.sort(jnp.append(keys.ravel(), 0))
  _, rows_in = _taps(size[0])
  _, cols_in = _taps(size[1])
  need = (size[0] * size[1]) // 2 + 1

  def count_at_most(threshold):
    total = jnp.zeros(threshold.shape, jnp.int32)
    for i in range(MAX_KERNEL):
      for j in range(MAX_KERNEL):
        inside = (rows_in[i] & cols_in[j]).astype(jnp.int32)
        below = padded[i : i + h, j : j + w] <= threshold
        total = total + inside * below.astype(jnp.int32)
    return total

  def halve(_, bounds):  # Indices into `candidates`.
    lo, hi = bounds
    mid = (lo + hi) // 2
    enough = count_at_most(candidates[mid]) >= need
    return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

  rounds = max(1, (candidates.size - 1).bit_length())
  lo = jnp.zeros(keys.shape, jnp.int32)
  hi = jnp.full(keys.shape, candidates.size - 1, jnp.int32)
  lo, _ = jax.lax.fori_loop(0, rounds, halve, (lo, hi))
  return _from_ordered_bits(candidates[lo]).astype(image.dtype)


def _random_blur(key, image, *, sigma_range, size_high=14):
  size_keys = jax.random.split(key, 3)
  size = (
    _odd_size(size_keys[0], high=size_high),
    _odd_size(size_keys[1], high=size_high),
  )
  sigma = jax.random.uniform(
    size_keys[2], (2,), image.dtype, sigma_range[0], sigma_range[1]
  )
  return jnp.clip(blur(image, size=size, sigma=sigma), 0.0, 1.0)


def _random_median(key, image, *, size_high=14):
  row_key, col_key = jax.random.split(key)
  size = (
    _odd_size(row_key, high=size_high),
    _odd_size(col_key, high=size_high),
  )
  return filter_median(image, size=size)


def scaled_size_high(image_size: int) -> int:
  """BaRT's kernel bound for `image_size`-pixel images, keeping the
  paper's 224-pixel ratio (14 at 224; at least 3, so kernels stay 3x3)."""
  return max(3, round(14 * image_size / 224))


@core.register("gaussian_blur", gradient="bpda", ranges={"size_high": (3, 14)})
def gaussian_blur(
  key: types.PRNGKey,
  image: types.Image,
  *,
  sigma_low: float = 0.1,
  sigma_high: float = 3.1,
  size_high: int = 14,
) -> types.Image:
  """BaRT Gaussian blur: kernel (kh, kw) odd, ``randint(2, size_high) | 1``
  per axis (3..13 by default), sigma per axis in [sigma_low, sigma_high),
  reflect borders. BPDA identity (as the paper's code, though the blur
  itself is differentiable).

  Args:
    key: the kernel-size and sigma key.
    image: ``(H, W, C)`` float32 in [0, 1], H, W > 6.
    sigma_low, sigma_high: the sigma range, 0 < low < high.
    size_high: the kernel bound; `scaled_size_high` keeps the paper's
      relative strength on small images (3 at 32 px).
  """
  validation.positive("sigma_low", sigma_low)
  if sigma_high <= sigma_low:
    raise ValueError(f"sigma_high {sigma_high} must exceed {sigma_low}.")
  blur = functools.partial(
    _random_blur, sigma_range=(sigma_low, sigma_high), size_high=size_high
  )
  return core.bpda(blur)(key, image)


@core.register("median", gradient="bpda", ranges={"size_high": (3, 14)})
def median(
  key: types.PRNGKey, image: types.Image, *, size_high: int = 14
) -> types.Image:
  """BaRT median filter: kernel (kh, kw) odd, ``randint(2, size_high) | 1``
  per axis (3..13 by default), zero padding (dark borders, as the paper's
  kornia call). BPDA identity.

  Args:
    key: the kernel-size key.
    image: ``(H, W, C)`` float32 in [0, 1].
    size_high: the kernel bound (see `gaussian_blur`).
  """
  return core.bpda(functools.partial(_random_median, size_high=size_high))(
    key, image
  )
