"""JPEG compression in JAX, equal to libjpeg(-turbo)'s, integer for integer.

`jpeg_compress` encodes and decodes an image as PIL does with its defaults
(baseline JPEG, 4:2:0 chroma subsampling, the IJG tables scaled by quality,
``dct_method`` islow, fancy upsampling on decoding), emulating libjpeg-turbo's
default path in int32 arithmetic, so it runs under `jit` and `vmap`:

* colour: the 16-bit fixed-point RGB -> YCbCr and YCbCr -> RGB tables of
  ``jccolor.c`` and ``jdcolor.c`` (values clamped to [0, 255]);
* edges: the full-resolution planes are extended right by replicating the
  last column (``jcsample.c`` ``expand_right_edge``), two rows at the bottom
  by replicating the last row, and the subsampled planes down to a whole
  block by replicating their last row (``jcprepct.c``), as the encoder pads;
* ``h2v2_downsample`` (2x2 sums with the alternating 1, 2 bias) and, when
  decoding, ``h2v2_fancy_upsample`` (the 3/4, 1/4 triangle filter with its
  8 and 7 biases; box upsampling when the chroma plane is 1-2 wide);
* the islow forward and inverse DCTs of ``jfdctint.c`` and ``jidctint.c``
  (13-bit constants, 2 extra bits between passes, their descaling shifts);
* quantization as ``jcdctmgr.c``: ``sign(t) * ((|t| + 4q) // 8q)`` on the
  8x-scaled DCT (libjpeg-turbo's reciprocal multiply computes exactly this),
  dequantization ``c * q``; IDCT output clamped to [0, 255].

Entropy coding is lossless and skipped. Checked against Pillow 13.0 with
libjpeg-turbo (API 6.2): equal on every value of textured and smooth
photos, gray and colour, sizes that are not multiples of 16 (8x8, 17x23),
qualities 1-100 (``tests/jpeg_test.py``).

Gradients: under the `jpeg` defense BPDA identity, or with
``straight_through=True`` the exact codec's value with the gradient of its
linear parts (`linear_codec`: the colour transforms and chroma subsampling
and upsampling in floating point; quantization's rounding is the identity),
after Shin and Song's differentiable JPEG.

References:
  ITU-T T.81 (JPEG), Annex K tables; libjpeg-turbo ``src/jfdctint.c``,
  ``jidctint.c``, ``jcdctmgr.c``, ``jccolor.c``, ``jdcolor.c``,
  ``jcsample.c``, ``jdsample.c``, ``jcprepct.c``, ``jcparam.c``.
  Shin, Song. JPEG-resistant Adversarial Images. NeurIPS 2017 workshop.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import types
from stochjax.defenses import core

_LUMA_TABLE = np.array(
  [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
  ],
  np.int32,
)
_CHROMA_TABLE = np.full((8, 8), 99, np.int32)
_CHROMA_TABLE[:4, :4] = [
  [17, 18, 24, 47],
  [18, 21, 26, 66],
  [24, 26, 56, 99],
  [47, 66, 99, 99],
]

# jfdctint.c / jidctint.c: FIX(x) = round(x * 2^13).
_CONST_BITS, _PASS1_BITS = 13, 2
_F0_298, _F0_390, _F0_541, _F0_765 = 2446, 3196, 4433, 6270
_F0_899, _F1_175, _F1_501, _F1_847 = 7373, 9633, 12299, 15137
_F1_961, _F2_053, _F2_562, _F3_072 = 16069, 16819, 20995, 25172


def _fix16(x: float) -> int:
  """jccolor.c / jdcolor.c's FIX: ``(x * 2^16 + 0.5)`` truncated."""
  return int(x * (1 << 16) + 0.5)


_HALF16 = 1 << 15


def quantization_tables(quality: jax.typing.ArrayLike) -> jax.Array:
  """The IJG luma and chroma tables scaled by `quality` (1..100), as
  libjpeg's ``jpeg_set_quality(..., force_baseline=TRUE)``: ``(2, 8, 8)``
  int32 in [1, 255]."""
  quality = jnp.clip(jnp.asarray(quality, jnp.int32), 1, 100)
  scale = jnp.where(quality < 50, 5000 // quality, 200 - 2 * quality)
  base = jnp.asarray(np.stack([_LUMA_TABLE, _CHROMA_TABLE]))
  return jnp.clip((base * scale + 50) // 100, 1, 255)


def _descale(x: jax.Array, n: int) -> jax.Array:
  """libjpeg's DESCALE: ``(x + 2^(n-1)) >> n``, an arithmetic shift."""
  return jnp.right_shift(x + (1 << (n - 1)), n)


def _fdct_pass(d: jax.Array, last: bool) -> jax.Array:
  """One pass of ``jpeg_fdct_islow`` along the last axis (8 samples)."""
  d = [d[..., i] for i in range(8)]
  tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
  tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
  tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
  tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
  tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
  tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
  n = _CONST_BITS + _PASS1_BITS if last else _CONST_BITS - _PASS1_BITS
  out = [None] * 8
  if last:
    out[0] = _descale(tmp10 + tmp11, _PASS1_BITS)
    out[4] = _descale(tmp10 - tmp11, _PASS1_BITS)
  else:
    out[0] = jnp.left_shift(tmp10 + tmp11, _PASS1_BITS)
    out[4] = jnp.left_shift(tmp10 - tmp11, _PASS1_BITS)
  z1 = (tmp12 + tmp13) * _F0_541
  out[2] = _descale(z1 + tmp13 * _F0_765, n)
  out[6] = _descale(z1 - tmp12 * _F1_847, n)
  odd = _odd_part(tmp4, tmp5, tmp6, tmp7)
  out[7], out[5], out[3], out[1] = (_descale(x, n) for x in odd)
  return jnp.stack(out, axis=-1)


def _odd_part(t0, t1, t2, t3):
  """The LL&M odd-part rotation both islow DCTs share (the forward one on
  ``tmp4..tmp7``, the inverse one on coefficients 7, 5, 3, 1)."""
  z1, z2 = t0 + t3, t1 + t2
  z3, z4 = t0 + t2, t1 + t3
  z5 = (z3 + z4) * _F1_175
  z1, z2 = z1 * -_F0_899, z2 * -_F2_562
  z3, z4 = z3 * -_F1_961 + z5, z4 * -_F0_390 + z5
  return (
    t0 * _F0_298 + z1 + z3,
    t1 * _F2_053 + z2 + z4,
    t2 * _F3_072 + z2 + z3,
    t3 * _F1_501 + z1 + z4,
  )


def _idct_pass(c: jax.Array, last: bool) -> jax.Array:
  """One pass of ``jpeg_idct_islow`` along the last axis (8 coefficients);
  its all-zero shortcuts give the same values, so they are not needed."""
  c = [c[..., i] for i in range(8)]
  z1 = (c[2] + c[6]) * _F0_541
  tmp2 = z1 - c[6] * _F1_847
  tmp3 = z1 + c[2] * _F0_765
  tmp0 = jnp.left_shift(c[0] + c[4], _CONST_BITS)
  tmp1 = jnp.left_shift(c[0] - c[4], _CONST_BITS)
  tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
  tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
  tmp0, tmp1, tmp2, tmp3 = _odd_part(c[7], c[5], c[3], c[1])
  n = _CONST_BITS + _PASS1_BITS + 3 if last else _CONST_BITS - _PASS1_BITS
  out = [
    tmp10 + tmp3, tmp11 + tmp2, tmp12 + tmp1, tmp13 + tmp0,
    tmp13 - tmp0, tmp12 - tmp1, tmp11 - tmp2, tmp10 - tmp3,
  ]  # fmt: skip
  return jnp.stack([_descale(x, n) for x in out], axis=-1)


def _code_blocks(plane: jax.Array, table: jax.Array) -> jax.Array:
  """Encodes and decodes an int32 plane whose sides are multiples of 8:
  islow FDCT, quantization, dequantization, islow IDCT, clamp."""
  h, w = plane.shape
  blocks = (plane - 128).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
  coeffs = _fdct_pass(blocks, last=False)  # rows
  coeffs = _fdct_pass(coeffs.swapaxes(-1, -2), last=True).swapaxes(-1, -2)
  table = table[None, None]
  divisor = 8 * table
  quantized = jnp.sign(coeffs) * ((jnp.abs(coeffs) + divisor // 2) // divisor)
  dequantized = quantized * table
  work = _idct_pass(dequantized.swapaxes(-1, -2), last=False).swapaxes(-1, -2)
  pixels = _idct_pass(work, last=True)  # rows
  pixels = jnp.clip(pixels + 128, 0, 255)
  return pixels.transpose(0, 2, 1, 3).reshape(h, w)


def _rgb_to_ycbcr(rgb: jax.Array) -> list[jax.Array]:
  """``jccolor.c`` ``rgb_ycc_convert`` on int32 RGB in [0, 255]."""
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  offset = (128 << 16) + _HALF16 - 1
  y = _fix16(0.299) * r + _fix16(0.587) * g + _fix16(0.114) * b + _HALF16
  cb = -_fix16(0.16874) * r - _fix16(0.33126) * g + _fix16(0.5) * b + offset
  cr = _fix16(0.5) * r - _fix16(0.41869) * g - _fix16(0.08131) * b + offset
  return [jnp.right_shift(v, 16) for v in (y, cb, cr)]


def _ycbcr_to_rgb(y, cb, cr) -> jax.Array:
  """``jdcolor.c`` ``ycc_rgb_convert``, clamped to [0, 255]."""
  cb, cr = cb - 128, cr - 128
  r = y + jnp.right_shift(_fix16(1.402) * cr + _HALF16, 16)
  g = y + jnp.right_shift(
    -_fix16(0.34414) * cb + _HALF16 - _fix16(0.71414) * cr, 16
  )
  b = y + jnp.right_shift(_fix16(1.772) * cb + _HALF16, 16)
  return jnp.clip(jnp.stack([r, g, b], axis=-1), 0, 255)


def _downsample(plane: jax.Array) -> jax.Array:
  """``h2v2_downsample``: ``(2x2 sum + bias) >> 2``, bias 1, 2, 1, 2, ..."""
  h, w = plane.shape
  sums = plane.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3))
  bias = 1 + jnp.arange(w // 2, dtype=jnp.int32) % 2
  return jnp.right_shift(sums + bias[None, :], 2)


def _upsample(plane: jax.Array) -> jax.Array:
  """``h2v2_fancy_upsample`` (rows and columns replicated at the edges);
  ``h2v2_upsample`` (2x2 boxes) for planes 1 or 2 samples wide, as
  libjpeg-turbo chooses."""
  if plane.shape[1] <= 2:
    return _box_upsample(plane)
  colsums, left, right = _fancy_terms(plane)
  even = jnp.right_shift(3 * colsums + left + 8, 4)
  odd = jnp.right_shift(3 * colsums + right + 7, 4)
  return _interleave(even, odd)


def _box_upsample(plane: jax.Array) -> jax.Array:
  return jnp.repeat(jnp.repeat(plane, 2, axis=0), 2, axis=1)


def _fancy_terms(plane: jax.Array):
  """The fancy filter's ``(colsums, left, right)``: per input row the upper
  and lower output rows' column sums (3 x nearer + farther row) and their
  left and right neighbours, edges replicated."""
  above = jnp.concatenate([plane[:1], plane[:-1]], axis=0)
  below = jnp.concatenate([plane[1:], plane[-1:]], axis=0)
  colsums = jnp.stack([3 * plane + above, 3 * plane + below], axis=1)
  left = jnp.concatenate([colsums[..., :1], colsums[..., :-1]], axis=-1)
  right = jnp.concatenate([colsums[..., 1:], colsums[..., -1:]], axis=-1)
  return colsums, left, right


def _interleave(even: jax.Array, odd: jax.Array) -> jax.Array:
  """``(H, 2, W)`` even and odd output columns -> ``(2H, 2W)``."""
  h, _, w = even.shape
  return jnp.stack([even, odd], axis=-1).reshape(2 * h, 2 * w)


def _pad(plane: jax.Array, rows: int, cols: int) -> jax.Array:
  """`plane` extended to ``(rows, cols)`` by replicating its edges."""
  h, w = plane.shape
  return jnp.pad(plane, ((0, rows - h), (0, cols - w)), mode="edge")


def _round_up(n: int, multiple: int) -> int:
  return multiple * math.ceil(n / multiple)


def _code_gray(gray: jax.Array, table: jax.Array) -> jax.Array:
  h, w = gray.shape
  padded = _pad(gray, _round_up(h, 8), _round_up(w, 8))
  return _code_blocks(padded, table)[:h, :w]


def _code_rgb(rgb: jax.Array, tables: jax.Array) -> jax.Array:
  """4:2:0 encode and decode of an int32 ``(H, W, 3)`` image."""
  h, w, _ = rgb.shape
  ch, cw = math.ceil(h / 2), math.ceil(w / 2)  # The chroma planes' size.
  # Full resolution: luma to whole blocks; chroma to two rows and to the
  # columns of its whole blocks (expand_right_edge), all by replication.
  rows = max(_round_up(h, 8), 2 * ch)
  cols = max(_round_up(w, 8), 2 * _round_up(cw, 8))
  padded = jnp.stack([_pad(rgb[..., i], rows, cols) for i in range(3)], -1)
  y, cb, cr = _rgb_to_ycbcr(padded)
  y = _code_blocks(y[: _round_up(h, 8), : _round_up(w, 8)], tables[0])[:h, :w]
  chroma = []
  for plane in (cb, cr):
    small = _downsample(plane[: 2 * ch, : 2 * _round_up(cw, 8)])
    # The subsampled plane's last row fills its last block (jcprepct.c).
    small = _pad(small, _round_up(ch, 8), small.shape[1])
    small = _code_blocks(small, tables[1])[:ch, :cw]
    chroma.append(_upsample(small)[:h, :w])
  return _ycbcr_to_rgb(y, *chroma)


def _codec(image: types.Image, quality) -> types.Image:
  """The exact codec on float32 pixels in [0, 1]."""
  pixels = jnp.floor(image * 255.0).astype(jnp.int32)
  tables = quantization_tables(quality)
  if image.shape[-1] == 1:
    out = _code_gray(pixels[..., 0], tables[0])[..., None]
  else:
    out = _code_rgb(pixels, tables)
  return out.astype(jnp.float32) / 255.0


def linear_codec(image: types.Image) -> types.Image:
  """The codec's linear parts in floating point, for straight-through
  gradients: RGB -> YCbCr, 2x2 chroma averages and the fancy upsampling
  filter, YCbCr -> RGB, with every rounding, clamp and quantization
  removed (an un-rounded quantization is the identity). ``(H, W, C)``
  float32, C = 1 (the identity) or 3."""
  if image.shape[-1] == 1:
    return image
  h, w, _ = image.shape
  ch, cw = math.ceil(h / 2), math.ceil(w / 2)
  padded = jnp.stack(
    [_pad(image[..., i], 2 * ch, 2 * cw) for i in range(3)], -1
  )
  r, g, b = padded[..., 0], padded[..., 1], padded[..., 2]
  y = 0.299 * r + 0.587 * g + 0.114 * b
  planes = (
    -0.16874 * r - 0.33126 * g + 0.5 * b,
    0.5 * r - 0.41869 * g - 0.08131 * b,
  )
  cb, cr = [
    _upsample_float(p.reshape(ch, 2, cw, 2).mean(axis=(1, 3)))[:h, :w]
    for p in planes
  ]
  y = y[:h, :w]
  return jnp.stack(
    [y + 1.402 * cr, y - 0.34414 * cb - 0.71414 * cr, y + 1.772 * cb], -1
  )


def _upsample_float(plane: jax.Array) -> jax.Array:
  """The fancy upsampling filter without its rounding biases."""
  if plane.shape[1] <= 2:
    return _box_upsample(plane)
  colsums, left, right = _fancy_terms(plane)
  return _interleave((3 * colsums + left) / 16, (3 * colsums + right) / 16)


def jpeg_compress(
  image: types.Image,
  quality: jax.typing.ArrayLike,
  *,
  straight_through: bool = False,
) -> types.Image:
  """Encodes and decodes `image` as a quality-`quality` JPEG.

  Pixels are truncated to 8 bits first (``floor(255 x)``, as the paper
  code's ``to_pil_image``), so the result equals
  ``PIL.Image.open(save(uint8(255 x), quality=q)) / 255``.

  Args:
    image: ``(H, W, C)`` float32 in [0, 1], C = 3 (colour) or 1 (gray).
    quality: 1..100, a scalar (may be traced).
    straight_through: the same values, differentiable: the gradient is that
      of `linear_codec`; otherwise the codec has no gradient.

  Returns:
    ``(H, W, C)`` float32 in [0, 1], multiples of 1/255.

  Raises:
    ValueError: other than 1 or 3 channels.
  """
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"jpeg needs 1 or 3 channels, got shape {image.shape}.")
  value = _codec(jax.lax.stop_gradient(image), quality)
  if not straight_through:
    return value
  return core.straight_through(linear_codec(image), value)


def _check_quality_range(low: int, high: int):
  if not (isinstance(low, int) and isinstance(high, int)):
    raise ValueError(f"quality bounds must be integers, got {low}, {high}.")
  if not 1 <= low < high <= 101:
    raise ValueError(
      "Need 1 <= quality_low < quality_high <= 101 (qualities 1..100, high "
      f"exclusive), got {low}, {high}."
    )


@core.register(
  "jpeg",
  gradient="bpda",
  ranges={"quality_low": (1, 100), "quality_high": (2, 101)},
)
def jpeg(
  key: types.PRNGKey,
  image: types.Image,
  *,
  quality_low: int = 55,
  quality_high: int = 75,
  straight_through: bool = False,
) -> types.Image:
  """JPEG at a quality drawn uniformly from [quality_low, quality_high)
  (the paper's 55..74). BPDA identity, or the straight-through codec.

  Args:
    key: the quality key.
    image: ``(H, W, C)`` float32 in [0, 1], C = 1 or 3.
    quality_low, quality_high: 1 <= low < high <= 101.
    straight_through: the gradient of the codec's linear parts
      (`linear_codec`) instead of BPDA identity.
  """
  _check_quality_range(quality_low, quality_high)
  quality = jax.random.randint(key, (), quality_low, quality_high)
  if straight_through:
    return jpeg_compress(image, quality, straight_through=True)
  return core.bpda(lambda _, x: jpeg_compress(x, quality))(key, image)
