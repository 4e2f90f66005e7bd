"""Geometric defenses.

Inputs and outputs are one ``(H, W, C)`` float32 image in [0, 1]. Geometric
resampling is bilinear with zero fill, so outputs stay in [0, 1].
"""

import functools

import jax
import jax.numpy as jnp

from stochjax import types, validation
from stochjax.defenses import core


def rotate(image: types.Image, *, degrees: jax.typing.ArrayLike) -> types.Image:
  """Rotates counter-clockwise by `degrees` about the image centre.

  The centre is ((H - 1) / 2, (W - 1) / 2) (kornia's ``align_corners=True``);
  sampling is bilinear, and taps outside the image read 0. Equals
  ``scipy.ndimage.rotate(image, degrees, reshape=False, order=1,
  mode="grid-constant")``.

  Args:
    image: ``(H, W, C)`` float32 in [0, 1].
    degrees: the angle, a scalar (may be traced).

  Returns:
    ``(H, W, C)`` float32 in [0, 1].
  """
  h, w, _ = image.shape
  theta = jnp.deg2rad(jnp.asarray(degrees, image.dtype))
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  rows, cols = jnp.meshgrid(
    jnp.arange(h, dtype=image.dtype),
    jnp.arange(w, dtype=image.dtype),
    indexing="ij",
  )
  dy, dx = rows - (h - 1) / 2, cols - (w - 1) / 2
  # Inverse map: the source of each output pixel.
  src_rows = cos * dy + sin * dx + (h - 1) / 2
  src_cols = cos * dx - sin * dy + (w - 1) / 2

  def sample(channel):
    return jax.scipy.ndimage.map_coordinates(
      channel, (src_rows, src_cols), order=1, mode="constant", cval=0.0
    )

  return jax.vmap(sample, in_axes=-1, out_axes=-1)(image)


@core.register(
  "rotation", gradient="exact", ranges={"max_degrees": (0, 180, "open")}
)
def rotation(
  key: types.PRNGKey,
  image: types.Image,
  *,
  max_degrees: float = 45.0,
  compat: bool = False,
) -> types.Image:
  """Rotates by an angle drawn uniformly from [-max_degrees, max_degrees].

  Args:
    key: the angle key.
    image: ``(H, W, C)`` float32 in [0, 1].
    max_degrees: the largest rotation, in (0, 180].
    compat: reproduce the paper code's ``Rotation``, which always draws from
      [-45, 45] whatever `max_degrees` says (its Table 1 runs asked for 90).

  Returns:
    ``(H, W, C)`` float32 in [0, 1]; the gradient is exact.
  """
  if not 0 < max_degrees <= 180:
    raise ValueError(f"max_degrees must lie in (0, 180], got {max_degrees}.")
  limit = 45.0 if compat else float(max_degrees)
  angle = jax.random.uniform(key, (), image.dtype, -limit, limit)
  return rotate(image, degrees=angle)


def swirl_image(
  image: types.Image,
  *,
  center: jax.typing.ArrayLike | tuple[float, float],
  strength: jax.typing.ArrayLike,
  radius: jax.typing.ArrayLike,
  rotation: jax.typing.ArrayLike = 0.0,
) -> types.Image:
  """skimage's swirl: bilinear, 'reflect' borders (ndimage 'mirror').

  Args:
    image: ``(H, W, C)`` float32 in [0, 1].
    center: ``(column, row)``, as skimage's ``center``.
    strength, radius, rotation: skimage's parameters (may be traced).

  Returns:
    ``(H, W, C)`` float32, equal to ``skimage.transform.swirl(image, center,
    strength, radius, rotation, order=1)`` (to ~1e-5).
  """
  h, w, _ = image.shape
  rows, cols = jnp.meshgrid(
    jnp.arange(h, dtype=image.dtype),
    jnp.arange(w, dtype=image.dtype),
    indexing="ij",
  )
  center = jnp.asarray(center, image.dtype)
  strength = jnp.asarray(strength, image.dtype)
  radius = jnp.asarray(radius, image.dtype)
  rotation = jnp.asarray(rotation, image.dtype)
  x0, y0 = center[0], center[1]
  rho = jnp.sqrt((cols - x0) ** 2 + (rows - y0) ** 2)
  scale = radius / 5.0 * jnp.log(2.0)
  theta = (
    rotation
    + strength * jnp.exp(-rho / scale)
    + jnp.arctan2(rows - y0, cols - x0)
  )
  src_rows = y0 + rho * jnp.sin(theta)
  src_cols = x0 + rho * jnp.cos(theta)

  def sample(channel):
    return jax.scipy.ndimage.map_coordinates(
      channel, (src_rows, src_cols), order=1, mode="mirror"
    )

  out = jax.vmap(sample, in_axes=-1, out_axes=-1)(image)
  return jnp.clip(out, 0.0, 1.0)


def _random_swirl(key, image, *, center_range, strength_range, radius_range):
  center_key, strength_key, radius_key = jax.random.split(key, 3)
  center = jax.random.randint(center_key, (2,), *center_range)
  strength = jax.random.uniform(strength_key, (), image.dtype, *strength_range)
  radius = jax.random.randint(radius_key, (), *radius_range)
  return swirl_image(
    image,
    center=center.astype(image.dtype),
    strength=strength,
    radius=radius.astype(image.dtype),
  )


@core.register("swirl", gradient="bpda")
def swirl(
  key: types.PRNGKey,
  image: types.Image,
  *,
  center_low: int = 1,
  center_high: int = 201,
  strength_low: float = 0.01,
  strength_high: float = 2.0,
  radius_low: int = 10,
  radius_high: int = 201,
) -> types.Image:
  """BaRT swirl with the paper code's ranges (for 224 images): centre
  (column, row) integers in [1, 201), strength in [0.01, 2), radius integer
  in [10, 201). BPDA identity, as the paper's code (skimage on the CPU).

  Args:
    key: the parameter key.
    image: ``(H, W, C)`` float32 in [0, 1].
    center_low, center_high, strength_low, strength_high, radius_low,
      radius_high: half-open ranges, low < high.
  """
  for name, low, high in (
    ("center", center_low, center_high),
    ("strength", strength_low, strength_high),
    ("radius", radius_low, radius_high),
  ):
    if not low < high:
      raise ValueError(f"{name}: low {low} must be < high {high}.")
  validation.positive("radius_low", radius_low)
  fn = functools.partial(
    _random_swirl,
    center_range=(center_low, center_high),
    strength_range=(strength_low, strength_high),
    radius_range=(radius_low, radius_high),
  )
  return core.bpda(fn)(key, image)
