"""BaRT's colour-space and grayscale groups (Raff et al. 2019, appendix).

Colour-space round trips convert RGB to HSV, XYZ, LAB or YUV, shift each
channel by a uniform random offset, and convert back; grayscale mixes blend
channels with random weights. All are differentiable, so their gradient is
exact; they need three channels. The conversions equal scikit-image's
`skimage.color` (sRGB, D65 2-degree white) and are tested against it.

References:
  Raff, Sylvester, Forsyth, McLean. Barrage of Random Transforms for
  Adversarially Robust Defense. CVPR 2019.
"""

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import types
from stochjax.defenses import core

XYZ_FROM_RGB = np.array(
  [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
  ]
)
YUV_FROM_RGB = np.array(
  [
    [0.299, 0.587, 0.114],
    [-0.14714119, -0.28886916, 0.43601035],
    [0.61497538, -0.51496512, -0.10001026],
  ]
)
# Y in [16, 235], Cb and Cr in [16, 240] for RGB in [0, 1].
YCBCR_FROM_RGB = np.array(
  [
    [65.481, 128.553, 24.966],
    [-37.797, -74.203, 112.0],
    [112.0, -93.786, -18.214],
  ]
)
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])
D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def _apply(matrix: np.ndarray, image: jax.Array) -> jax.Array:
  return image @ jnp.asarray(matrix.T, image.dtype)


def _inverse(matrix: np.ndarray) -> np.ndarray:
  return np.linalg.inv(matrix)


def rgb_to_hsv(image: types.Image) -> jax.Array:
  """RGB in [0, 1] -> HSV in [0, 1] (`skimage.color.rgb2hsv`: hue 0 and
  saturation 0 where the pixel is gray, exact for near-black pixels, where
  `dm_pix.rgb_to_hsv` rounds saturation to 0)."""
  value = jnp.max(image, axis=-1)
  delta = value - jnp.min(image, axis=-1)
  gray = delta == 0.0
  safe_delta = jnp.where(gray, 1.0, delta)
  safe_value = jnp.where(value == 0.0, 1.0, value)
  r, g, b = image[..., 0], image[..., 1], image[..., 2]
  # skimage assigns red, then green, then blue: the last maximum wins.
  hue = jnp.where(
    b == value,
    4.0 + (r - g) / safe_delta,
    jnp.where(g == value, 2.0 + (b - r) / safe_delta, (g - b) / safe_delta),
  )
  hue = jnp.where(gray, 0.0, (hue / 6.0) % 1.0)
  saturation = jnp.where(gray, 0.0, delta / safe_value)
  return jnp.stack([hue, saturation, value], axis=-1)


def hsv_to_rgb(hsv: jax.Array) -> types.Image:
  """HSV in [0, 1] -> RGB (`skimage.color.hsv2rgb`)."""
  h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  sector = jnp.floor(h * 6.0)
  f = h * 6.0 - sector
  p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
  choices = jnp.stack(
    [
      jnp.stack(c, axis=-1)
      for c in (
        (v, t, p),
        (q, v, p),
        (p, v, t),
        (p, q, v),
        (t, p, v),
        (v, p, q),
      )
    ]
  )
  index = (sector.astype(jnp.int32) % 6)[None, ..., None]
  return jnp.take_along_axis(choices, index, axis=0)[0]


def rgb_to_xyz(image: types.Image) -> jax.Array:
  """sRGB in [0, 1] -> CIE XYZ (`skimage.color.rgb2xyz`)."""
  linear = jnp.where(
    image > 0.04045,
    ((image + 0.055) / 1.055) ** 2.4,
    image / 12.92,
  )
  return _apply(XYZ_FROM_RGB, linear)


def xyz_to_rgb(xyz: jax.Array) -> types.Image:
  """CIE XYZ -> sRGB clipped to [0, 1] (`skimage.color.xyz2rgb`)."""
  linear = _apply(_inverse(XYZ_FROM_RGB), xyz)
  # The power's unused branch is kept finite so gradients stay finite.
  safe = jnp.maximum(linear, 0.0031308)
  rgb = jnp.where(
    linear > 0.0031308, 1.055 * safe ** (1 / 2.4) - 0.055, linear * 12.92
  )
  return jnp.clip(rgb, 0.0, 1.0)


def rgb_to_lab(image: types.Image) -> jax.Array:
  """sRGB in [0, 1] -> CIE LAB, L in [0, 100] (`skimage.color.rgb2lab`)."""
  scaled = rgb_to_xyz(image) / jnp.asarray(D65_WHITE, image.dtype)[None, None]
  safe = jnp.maximum(scaled, 0.008856)
  f = jnp.where(scaled > 0.008856, jnp.cbrt(safe), 7.787 * scaled + 16 / 116)
  x, y, z = f[..., 0], f[..., 1], f[..., 2]
  return jnp.stack([116.0 * y - 16.0, 500.0 * (x - y), 200.0 * (y - z)], -1)


def lab_to_rgb(lab: jax.Array) -> types.Image:
  """CIE LAB -> sRGB clipped to [0, 1] (`skimage.color.lab2rgb`, which
  clips negative Z to 0)."""
  y = (lab[..., 0] + 16.0) / 116.0
  x = lab[..., 1] / 500.0 + y
  z = jnp.maximum(y - lab[..., 2] / 200.0, 0.0)
  f = jnp.stack([x, y, z], axis=-1)
  scaled = jnp.where(f > 0.2068966, f**3, (f - 16 / 116) / 7.787)
  return xyz_to_rgb(scaled * jnp.asarray(D65_WHITE, lab.dtype)[None, None])


def rgb_to_yuv(image: types.Image) -> jax.Array:
  """sRGB -> YUV (`skimage.color.rgb2yuv`)."""
  return _apply(YUV_FROM_RGB, image)


def yuv_to_rgb(yuv: jax.Array) -> jax.Array:
  """YUV -> RGB, unclipped (`skimage.color.yuv2rgb`)."""
  return _apply(_inverse(YUV_FROM_RGB), yuv)


def rgb_to_ycbcr(image: types.Image) -> jax.Array:
  """sRGB -> YCbCr (`skimage.color.rgb2ycbcr`, studio range)."""
  return _apply(YCBCR_FROM_RGB, image) + _ycbcr_offset(image)


def ycbcr_to_rgb(ycbcr: jax.Array) -> jax.Array:
  """YCbCr -> RGB, unclipped (`skimage.color.ycbcr2rgb`)."""
  return _apply(_inverse(YCBCR_FROM_RGB), ycbcr - _ycbcr_offset(ycbcr))


def _ycbcr_offset(like: jax.Array) -> jax.Array:
  """`YCBCR_OFFSET` shaped to broadcast against ``(..., 3)``."""
  shape = (1,) * (like.ndim - 1) + (3,)
  return jnp.asarray(YCBCR_OFFSET, like.dtype).reshape(shape)


def _check_rgb(image, name):
  if image.shape[-1] != 3:
    raise ValueError(f"{name} needs 3 (RGB) channels, got {image.shape[-1]}.")


def _offsets(key, bounds, dtype):
  bounds = jnp.asarray(bounds, dtype)
  return jax.random.uniform(key, (3,), dtype, -bounds, bounds)


# BaRT's offset bounds (+/- per channel) in each space.
_SHIFTS = {
  "hsv": (0.05, 0.25, 0.25),
  "xyz": (0.05, 0.05, 0.05),
  "lab": (5.0, 2.0, 2.0),
  "yuv": (0.05, 0.02, 0.02),
}


def shift_color(
  image: types.Image, space: str, offsets: jax.typing.ArrayLike
) -> types.Image:
  """BaRT's colour-space round trip with given offsets ``(3,)``.

  HSV and XYZ are clipped to [0, 1] after the shift; LAB clips L to
  [0, 100] and YUV clips Y to [0, 1] (a, b, U, V may be negative). The
  result is clipped to [0, 1].
  """
  offsets = jnp.asarray(offsets, image.dtype).reshape(1, 1, 3)
  if space == "hsv":
    out = hsv_to_rgb(jnp.clip(rgb_to_hsv(image) + offsets, 0.0, 1.0))
  elif space == "xyz":
    out = xyz_to_rgb(jnp.clip(rgb_to_xyz(image) + offsets, 0.0, 1.0))
  elif space == "lab":
    lab = rgb_to_lab(image) + offsets
    out = lab_to_rgb(lab.at[..., 0].set(jnp.clip(lab[..., 0], 0.0, 100.0)))
  elif space == "yuv":
    yuv = rgb_to_yuv(image) + offsets
    out = yuv_to_rgb(yuv.at[..., 0].set(jnp.clip(yuv[..., 0], 0.0, 1.0)))
  else:
    raise ValueError(f"Unknown colour space {space!r}; valid: {list(_SHIFTS)}")
  return jnp.clip(out, 0.0, 1.0)


def _register_shift(space: str):
  bounds = _SHIFTS[space]

  @core.register(f"{space}_shift", gradient="exact")
  def defense(key: types.PRNGKey, image: types.Image) -> types.Image:
    _check_rgb(image, f"{space}_shift")
    return shift_color(image, space, _offsets(key, bounds, image.dtype))

  defense.__name__ = f"{space}_shift"
  defense.__doc__ = (
    f"BaRT's {space.upper()} round trip: per channel a uniform offset in "
    f"+/-{bounds}, then back to RGB in [0, 1]. Exact gradient."
  )
  return defense


hsv_shift, xyz_shift, lab_shift, yuv_shift = map(_register_shift, _SHIFTS)


def _mix_weights(key, num: int, dtype) -> jax.Array:
  """BaRT's channel ratios: uniform [0, 1) draws normalized to sum to 1."""
  ratios = jax.random.uniform(key, (num,), dtype)
  return ratios / jnp.sum(ratios)


@core.register("gray_mix", gradient="exact")
def gray_mix(key: types.PRNGKey, image: types.Image) -> types.Image:
  """BaRT grayscale mix: every channel becomes ``sum_c r_c x_c`` with random
  ratios r summing to 1. Exact gradient."""
  _check_rgb(image, "gray_mix")
  gray = image @ _mix_weights(key, 3, image.dtype)
  return jnp.broadcast_to(gray[..., None], image.shape)


@core.register("gray_partial_mix", gradient="exact")
def gray_partial_mix(key: types.PRNGKey, image: types.Image) -> types.Image:
  """BaRT partial grayscale mix: channel c becomes ``p_c x_c + (1 - p_c)
  g`` with g a random mix and ``p_c = max(u_c, 0.2)``, u_c uniform [0, 1).
  Exact gradient."""
  _check_rgb(image, "gray_partial_mix")
  ratio_key, keep_key = jax.random.split(key)
  gray = (image @ _mix_weights(ratio_key, 3, image.dtype))[..., None]
  keep = jnp.maximum(jax.random.uniform(keep_key, (1, 1, 3), image.dtype), 0.2)
  return keep * image + (1.0 - keep) * gray


def _other_channels(key):
  """A random channel, and the two others in increasing order."""
  chosen = jax.random.randint(key, (), 0, 3)
  others = jnp.array([[1, 2], [0, 2], [0, 1]])[chosen]
  return chosen, others


@core.register("gray_mix_two_thirds", gradient="exact")
def gray_mix_two_thirds(key: types.PRNGKey, image: types.Image) -> types.Image:
  """BaRT 2/3 grayscale mix: a random channel is kept; the other two both
  become their random mix. Exact gradient."""
  _check_rgb(image, "gray_mix_two_thirds")
  channel_key, ratio_key = jax.random.split(key)
  kept, others = _other_channels(channel_key)
  gray = image[..., others] @ _mix_weights(ratio_key, 2, image.dtype)
  is_kept = (jnp.arange(3) == kept).reshape(1, 1, 3)
  return jnp.where(is_kept, image, gray[..., None])


@core.register("one_channel_partial_gray", gradient="exact")
def one_channel_partial_gray(
  key: types.PRNGKey, image: types.Image
) -> types.Image:
  """BaRT one-channel partial gray: a random channel becomes ``p g + (1 -
  p) x_c``, g a random mix of the two others, p uniform in [0.1, 0.9).
  Exact gradient."""
  _check_rgb(image, "one_channel_partial_gray")
  channel_key, ratio_key, p_key = jax.random.split(key, 3)
  altered, others = _other_channels(channel_key)
  gray = image[..., others] @ _mix_weights(ratio_key, 2, image.dtype)
  p = jax.random.uniform(p_key, (), image.dtype, 0.1, 0.9)
  mixed = p * gray[..., None] + (1.0 - p) * image
  is_altered = (jnp.arange(3) == altered).reshape(1, 1, 3)
  return jnp.where(is_altered, mixed, image)
