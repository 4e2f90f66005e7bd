"""BaRT's disk-footprint filters on 8-bit levels: mean and bilateral mean.

Raff et al.'s mean filter and mean bilateral filter are scikit-image rank
filters (`skimage.filters.rank.mean` / ``mean_bilateral`` with a
``disk(radius)`` footprint): the image is rounded to 8-bit levels, each
output is the integer part of the mean of the in-image levels under the
footprint (for the bilateral filter, only those near the centre's level),
divided by 255. The radius is traced, so both loop over the rows of the
largest disk that the drawn radius touches, with its columns masked. BPDA
identity gradients, as the 8-bit rounding has none.

Parameter ranges are those of public BaRT code (mean: radius 2..3 per
channel, shared by all channels half the time; bilateral: radius 2..30,
s0 and s1 5..30, per channel), drawn as its ``round(uniform(low, high))``,
which gives the two end values half the weight of the others.
"""

import jax
import jax.numpy as jnp

from stochjax import types, validation
from stochjax.defenses import core


def to_levels(image: jax.Array) -> jax.Array:
  """`skimage.img_as_ubyte` of [0, 1] floats: int32 levels ``rint(255 x)``."""
  return jnp.rint(jnp.clip(image, 0.0, 1.0) * 255.0).astype(jnp.int32)


def disk_sums(
  levels: jax.Array,
  radius: jax.typing.ArrayLike,
  *,
  max_radius: int,
  below: jax.typing.ArrayLike | None = None,
  above: jax.typing.ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Per pixel, the count and sum of the in-image levels under a disk.

  Args:
    levels: ``(H, W)`` int32 levels.
    radius: the disk radius, 0..max_radius (may be traced); the disk is
      ``dy**2 + dx**2 <= radius**2`` (`skimage.morphology.disk`).
    max_radius: a static bound on `radius`.
    below, above: optional ``(H, W)`` bounds; only levels with ``above <
      level < below`` count.

  Returns:
    ``(count, total)``, each ``(H, W)`` int32.
  """
  h, w = levels.shape
  r = max_radius
  padded = jnp.pad(levels, r, constant_values=-1)  # -1: outside the image.

  def add_row(dy, carry):
    count, total = carry
    rows = jax.lax.dynamic_slice_in_dim(padded, dy + r, h, axis=0)
    for dx in range(-r, r + 1):
      level = rows[:, r + dx : r + dx + w]
      take = (level >= 0) & (dy * dy + dx * dx <= radius * radius)
      if below is not None:
        take &= (level < below) & (level > above)
      count += take.astype(jnp.int32)
      total += jnp.where(take, level, 0)
    return count, total

  zeros = jnp.zeros((h, w), jnp.int32)
  return jax.lax.fori_loop(-radius, radius + 1, add_row, (zeros, zeros))


def rank_mean(
  levels: jax.Array, radius: jax.typing.ArrayLike, *, max_radius: int
) -> jax.Array:
  """`skimage.filters.rank.mean(levels, disk(radius))`: ``(H, W)`` int32."""
  count, total = disk_sums(levels, radius, max_radius=max_radius)
  return total // jnp.maximum(count, 1)


def rank_mean_bilateral(
  levels: jax.Array,
  radius: jax.typing.ArrayLike,
  s0: jax.typing.ArrayLike,
  s1: jax.typing.ArrayLike,
  *,
  max_radius: int,
) -> jax.Array:
  """`skimage.filters.rank.mean_bilateral(levels, disk(radius), s0=s0,
  s1=s1)`: the mean of the footprint's levels in ``(g - s1, g + s0)``,
  g the centre's level (0 if none): ``(H, W)`` int32."""
  count, total = disk_sums(
    levels, radius, max_radius=max_radius, below=levels + s0,
    above=levels - s1,
  )  # fmt: skip
  return jnp.where(count > 0, total // jnp.maximum(count, 1), 0)


def _per_channel(filter_fn, image, *params):
  """``filter_fn(levels_c, *params_c)`` for each channel, back in [0, 1]."""
  levels = jnp.moveaxis(to_levels(image), -1, 0)
  out = jax.vmap(filter_fn)(levels, *params)
  return jnp.moveaxis(out, 0, -1).astype(image.dtype) / 255.0


@core.register("mean_filter", gradient="bpda")
def mean_filter(
  key: types.PRNGKey,
  image: types.Image,
  *,
  radius_low: int = 2,
  radius_high: int = 3,
) -> types.Image:
  """BaRT mean filter: per channel, the 8-bit mean over a disk of radius
  ``round(uniform(radius_low, radius_high))``, one radius for all channels
  with probability 1/2. BPDA identity.

  Args:
    key: the radius key.
    image: ``(H, W, C)`` float32 in [0, 1].
    radius_low, radius_high: integers, 0 <= low <= high.
  """
  validation.int_range("mean_filter radius", radius_low, radius_high, 0)

  def fn(key, image):
    radius_key, shared_key = jax.random.split(key)
    radii = core.rounded_uniform(radius_key, radius_low, radius_high,
                             image.shape[-1:])  # fmt: skip
    radii = jnp.where(jax.random.bernoulli(shared_key), radii[0], radii)
    return _per_channel(
      lambda x, r: rank_mean(x, r, max_radius=radius_high), image, radii
    )

  return core.bpda(fn)(key, image)


@core.register("mean_bilateral", gradient="bpda")
def mean_bilateral(
  key: types.PRNGKey,
  image: types.Image,
  *,
  radius_low: int = 2,
  radius_high: int = 30,
  s_low: int = 5,
  s_high: int = 30,
) -> types.Image:
  """BaRT mean bilateral filter: per channel, a disk radius and the level
  bounds s0, s1, each ``round(uniform(low, high))``, then
  `rank_mean_bilateral`. BPDA identity.

  Cost: (2 radius + 1)^2 taps per pixel; scikit-image's sliding histogram
  needs O(radius) per pixel.

  Args:
    key: the parameter key.
    image: ``(H, W, C)`` float32 in [0, 1].
    radius_low, radius_high: integers, 0 <= low <= high.
    s_low, s_high: integers, 1 <= low <= high (in 8-bit levels).
  """
  validation.int_range("mean_bilateral radius", radius_low, radius_high, 0)
  validation.int_range("mean_bilateral s", s_low, s_high, 1)

  def fn(key, image):
    radius_key, s_key = jax.random.split(key)
    channels = image.shape[-1:]
    radii = core.rounded_uniform(radius_key, radius_low, radius_high, channels)
    s0, s1 = core.rounded_uniform(s_key, s_low, s_high, (2, *channels))
    return _per_channel(
      lambda x, r, a, b: rank_mean_bilateral(
        x, r, a, b, max_radius=radius_high
      ),
      image, radii, s0, s1,
    )  # fmt: skip

  return core.bpda(fn)(key, image)
