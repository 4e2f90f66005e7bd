"""Geometric defenses.

Inputs and outputs are one ``(H, W, C)`` float32 image in [0, 1]. Geometric
resampling is bilinear with zero fill, so outputs stay in [0, 1].
"""

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


@core.register("rotation", gradient="exact")
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
  validation.positive("max_degrees", max_degrees)
  if max_degrees > 180:
    raise ValueError(f"max_degrees must be <= 180, got {max_degrees}.")
  limit = 45.0 if compat else float(max_degrees)
  angle = jax.random.uniform(key, (), image.dtype, -limit, limit)
  return rotate(image, degrees=angle)
