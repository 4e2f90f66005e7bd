"""BaRT's colour-depth quantization and FFT perturbation.

Both follow the paper's code (official_code.md §1.1); both are BPDA identity.
"""

import jax
import jax.numpy as jnp

from stochjax import types
from stochjax.defenses import core


def quantize(image: types.Image, scales: jax.Array) -> types.Image:
  """``round(x * s_c) / s_c`` per channel (round half to even, as torch)."""
  scales = jnp.asarray(scales, image.dtype).reshape(1, 1, -1)
  return jnp.round(image * scales) / scales


def _random_quantization(key, image, *, low, high):
  scales = jax.random.randint(key, (image.shape[-1],), low, high)
  return quantize(image, scales.astype(image.dtype))


@core.register("quantization", gradient="bpda")
def quantization(
  key: types.PRNGKey,
  image: types.Image,
  *,
  scale_low: int = 8,
  scale_high: int = 200,
) -> types.Image:
  """BaRT colour-depth reduction: per channel an integer scale in
  [scale_low, scale_high), ``round(x * s) / s``. BPDA identity.

  Args:
    key: the scale key.
    image: ``(H, W, C)`` float32 in [0, 1].
    scale_low, scale_high: 1 <= low < high.
  """
  if not 1 <= scale_low < scale_high:
    raise ValueError(f"Need 1 <= scale_low < scale_high, got {scale_low}, "
                     f"{scale_high}.")  # fmt: skip

  def fn(key, image):
    return _random_quantization(key, image, low=scale_low, high=scale_high)

  return core.bpda(fn)(key, image)


def fft_perturb(
  image: types.Image, fractions: jax.Array, point_factor: jax.Array
) -> types.Image:
  """The paper code's FFT perturbation with given random values.

  Per channel c: zero the unshifted-spectrum rows ``[int(H f_c),
  int(H (1 - f_c)))`` and the same column range (a low-pass; empty for
  f_c >= 0.5), multiply by `point_factor` ``(H, W)``, take the real part of
  the inverse FFT and clip to [0, 1]. (BaRT's "random mask" branch is a no-op
  in that code, so it is omitted.)
  """
  h, w, _ = image.shape
  fractions = jnp.asarray(fractions, image.dtype).reshape(1, 1, -1)
  spectrum = jnp.fft.fft2(image, axes=(0, 1))
  lo_r = jnp.floor(h * fractions).astype(jnp.int32)
  hi_r = jnp.floor(h * (1 - fractions)).astype(jnp.int32)
  lo_c = jnp.floor(w * fractions).astype(jnp.int32)
  hi_c = jnp.floor(w * (1 - fractions)).astype(jnp.int32)
  rows = jnp.arange(h)[:, None, None]
  cols = jnp.arange(w)[None, :, None]
  zero = ((rows >= lo_r) & (rows < hi_r)) | ((cols >= lo_c) & (cols < hi_c))
  spectrum = jnp.where(zero, 0.0, spectrum) * point_factor[..., None].astype(
    spectrum.dtype
  )
  out = jnp.real(jnp.fft.ifft2(spectrum, axes=(0, 1))).astype(image.dtype)
  return jnp.clip(out, 0.0, 1.0)


def _random_fft(key, image, *, max_fraction):
  fraction_key, factor_key = jax.random.split(key)
  h, w, c = image.shape
  fractions = jax.random.uniform(fraction_key, (c,), image.dtype, 0.0,
                                 max_fraction)  # fmt: skip
  point_factor = jax.random.uniform(factor_key, (h, w), image.dtype, 0.98,
                                    1.02)  # fmt: skip
  return fft_perturb(image, fractions, point_factor)


@core.register(
  "fft_perturbation", gradient="bpda", ranges={"max_fraction": (0, 1)}
)
def fft_perturbation(
  key: types.PRNGKey, image: types.Image, *, max_fraction: float = 0.95
) -> types.Image:
  """BaRT FFT perturbation: per channel a low-pass cut at a fraction in
  [0, max_fraction), times a point factor in [0.98, 1.02) per frequency
  (shared by the channels). BPDA identity.

  Args:
    key: the fraction and factor key.
    image: ``(H, W, C)`` float32 in [0, 1].
    max_fraction: in (0, 1].
  """
  if not 0 < max_fraction <= 1:
    raise ValueError(f"max_fraction must be in (0, 1], got {max_fraction}.")

  def fn(key, image):
    return _random_fft(key, image, max_fraction=max_fraction)

  return core.bpda(fn)(key, image)


@core.register(
  "bit_depth", gradient="bpda", deterministic=True, ranges={"bits": (1, 8)}
)
def bit_depth(
  key: types.PRNGKey, image: types.Image, *, bits: int = 3
) -> types.Image:
  """Bit-depth reduction (Xu et al.; Guo et al.'s Table 2 row):
  ``round(x * (2^bits - 1)) / (2^bits - 1)``. Deterministic; BPDA identity.

  Args:
    key: unused (the defense is deterministic).
    image: ``(H, W, C)`` float32 in [0, 1].
    bits: 1..8.
  """
  del key
  if not (isinstance(bits, int) and 1 <= bits <= 8):
    raise ValueError(f"bits must be an integer in 1..8, got {bits}.")
  levels = float(2**bits - 1)
  return core.bpda(lambda _, x: jnp.round(x * levels) / levels)(None, image)


DCT_BLOCK = 8


def dct_table() -> jax.Array:
  """The paper code's 8x8 quantization table: 25 top-left 4x4, else 30."""
  table = jnp.full((DCT_BLOCK, DCT_BLOCK), 30.0)
  return table.at[:4, :4].set(25.0)


def dct_quantize(image: types.Image) -> types.Image:
  """The paper code's deterministic 8x8 block DCT quantization.

  Zero-pad to a multiple of 8 (computed from the height, split half before,
  rest after, on both axes, as the code that assumes square images), then
  per 8x8 block and channel: orthonormal DCT-II, ``round(D * 255 / q) * q``,
  inverse DCT, ``/ 255``; crop back. Output is not clipped (as the code).
  """
  h, w, c = image.shape
  pad = (-h) % DCT_BLOCK
  before, after = pad // 2, pad - pad // 2
  x = jnp.pad(image, ((before, after), (before, after), (0, 0)))
  hp, wp = x.shape[:2]
  if hp % DCT_BLOCK or wp % DCT_BLOCK:
    raise ValueError(f"dct needs a square image (or W padded to 8s): {h}x{w}.")
  blocks = x.reshape(hp // 8, 8, wp // 8, 8, c).transpose(0, 2, 4, 1, 3)
  coeffs = jax.scipy.fft.dctn(blocks, axes=(-2, -1), norm="ortho")
  q = dct_table().reshape(1, 1, 1, DCT_BLOCK, DCT_BLOCK)
  quantized = jnp.round(coeffs * 255.0 / q) * q
  out = jax.scipy.fft.idctn(quantized, axes=(-2, -1), norm="ortho") / 255.0
  out = out.transpose(0, 3, 1, 4, 2).reshape(hp, wp, c)
  return out[before : before + h, before : before + w].astype(image.dtype)


@core.register("dct", gradient="bpda", deterministic=True)
def dct(key: types.PRNGKey, image: types.Image) -> types.Image:
  """The paper code's 8x8 block DCT quantization (`dct_quantize`), clipped
  to [0, 1] (the code does not clip; every stochjax defense stays in
  range). BPDA identity. Deterministic; no experiment of the paper uses it."""
  del key
  quantized = core.bpda(lambda _, x: jnp.clip(dct_quantize(x), 0.0, 1.0))
  return quantized(None, image)
