"""BaRT's adaptive histogram equalization: scikit-image's CLAHE in JAX.

`equalize_adapthist` follows `skimage.exposure.equalize_adapthist` (Zuiderveld's
contrast-limited adaptive histogram equalization) step by step on one
plane: 14-bit levels, reflect padding to whole tiles, 256-bin tile
histograms clipped at ``clip_limit x tile area`` with scikit-image's exact
redistribution loop, per-tile equalizing maps, bilinear blending of the
four nearest tiles' maps, and a final stretch to [0, 1]. The tile size is
traced (BaRT draws it per image), so tiles live in a fixed-size grid with
the unused ones masked: one compiled program for every draw.

It is scikit-image's float64 arithmetic done in float32: a level that lands
within rounding of an integer can truncate the other way, which moves an
output by 1/16383 (the tests allow 2e-4).
"""

import jax
import jax.numpy as jnp

from stochjax import types
from stochjax.defenses import color, core

NUM_GRAY = 2**14  # scikit-image's NR_OF_GRAY.
NUM_BINS = 256
_BIN_SIZE = 1 + NUM_GRAY // NUM_BINS


def _reflect(x: jax.Array, size: int) -> jax.Array:
  """NumPy ``pad(mode="reflect")`` source index of `x` in [-size+1, 2size-2]."""
  x = jnp.abs(x)
  return jnp.where(x > size - 1, 2 * (size - 1) - x, x)


def clip_histogram(hist: jax.Array, limit: jax.typing.ArrayLike) -> jax.Array:
  """`skimage.exposure._adapthist.clip_histogram`: clip the ``(NUM_BINS,)``
  int32 counts at `limit` and hand the excess back as scikit-image does
  (evenly, then one at a time over strided bins)."""
  excess = jnp.sum(jnp.maximum(hist - limit, 0))
  hist = jnp.minimum(hist, limit)
  increment = excess // hist.size
  upper = limit - increment
  low = hist < upper
  excess -= jnp.sum(low) * increment
  hist = jnp.where(low, hist + increment, hist)
  mid = (hist >= upper) & (hist < limit)
  excess += jnp.sum(jnp.where(mid, hist - limit, 0))
  hist = jnp.where(mid, limit, hist)
  bins = jnp.arange(hist.size)

  # `while excess > 0: for index in range(size): ...` as one loop over
  # (pass, index); a pass that places nothing ends it.
  def running(state):
    _, excess, _, _, stalled = state
    return (excess > 0) & ~stalled

  def step(state):
    hist, excess, index, at_pass_start, _ = state
    under = hist < limit
    stride = jnp.maximum(1, jnp.sum(under) // jnp.maximum(excess, 1))
    chosen = under & (bins >= index) & ((bins - index) % stride == 0)
    hist = hist + chosen.astype(hist.dtype)
    excess = excess - jnp.sum(chosen)
    wrapped = index == hist.size - 1
    stalled = wrapped & (excess > 0) & (excess == at_pass_start)
    at_pass_start = jnp.where(wrapped, excess, at_pass_start)
    next_index = jnp.where(wrapped, 0, index + 1)
    return hist, excess, next_index, at_pass_start, stalled

  state = (hist, excess, jnp.int32(0), excess, jnp.bool_(False))
  return jax.lax.while_loop(running, step, state)[0]


def _fourteen_bit(plane: jax.Array) -> jax.Array:
  """`img_as_uint`, then `rescale_intensity` to [0, 2^14 - 1], rounded."""
  u = jnp.rint(jnp.clip(plane, 0.0, 1.0) * 65535.0)
  lo, hi = jnp.min(u), jnp.max(u)
  scaled = (u - lo) / jnp.where(hi > lo, hi - lo, 1.0) * (NUM_GRAY - 1.0)
  return jnp.round(scaled).astype(jnp.int32)


def equalize_adapthist(
  plane: jax.Array,
  kernel_size: tuple[int, int] | jax.Array,
  clip_limit: jax.typing.ArrayLike,
  *,
  kernel_bounds: tuple[tuple[int, int], tuple[int, int]] | None = None,
) -> jax.Array:
  """`skimage.exposure.equalize_adapthist(plane, kernel_size, clip_limit)`.

  Args:
    plane: ``(H, W)`` float32 in [0, 1].
    kernel_size: ``(kh, kw)`` tile sizes, 1 <= k <= H, W (may be traced).
    clip_limit: in (0, 1) (may be traced).
    kernel_bounds: static ``((kh_min, kh_max), (kw_min, kw_max))`` for a
      traced `kernel_size`; None when `kernel_size` is two ints.

  Returns:
    ``(H, W)`` float32 in [0, 1] (a constant plane is returned as is).
  """
  if kernel_bounds is None:
    kernel_bounds = tuple((int(k), int(k)) for k in kernel_size)
  levels = _fourteen_bit(plane)
  bins = levels // _BIN_SIZE
  axes, max_tiles = [], []
  for axis, (size, (low, high)) in enumerate(
    zip(plane.shape, kernel_bounds, strict=True)
  ):
    k = jnp.asarray(kernel_size[axis], jnp.int32)
    start = k // 2
    padded = size + start + (k - size % k) % k + (k + 1) // 2
    num_tiles = padded // k - 1  # Histogram tiles along this axis.
    # Static bounds: padded positions (< size + 2k), tiles (<= size/k + 1).
    positions = jnp.arange(size + 2 * high)
    offset = positions - start
    axes.append(dict(
      k=k, start=start, num_tiles=num_tiles, tile=offset // k,
      valid=(offset >= 0) & (offset < num_tiles * k),
      source=_reflect(offset, size),
    ))  # fmt: skip
    max_tiles.append(size // low + 1)
  rows, cols = axes
  # Tile histograms of the padded plane (one scatter).
  row_tile = jnp.where(rows["valid"], rows["tile"], max_tiles[0])
  col_tile = jnp.where(cols["valid"], cols["tile"], max_tiles[1])
  tile_bins = bins[rows["source"][:, None], cols["source"][None, :]]
  hist = jnp.zeros((max_tiles[0] + 1, max_tiles[1] + 1, NUM_BINS), jnp.int32)
  hist = hist.at[row_tile[:, None], col_tile[None, :], tile_bins].add(1)
  area = rows["k"] * cols["k"]
  limit = jnp.maximum(
    (clip_limit * area.astype(jnp.float32)).astype(jnp.int32), 1
  )
  clipped = jax.vmap(jax.vmap(lambda h: clip_histogram(h, limit)))(hist)
  scale = (NUM_GRAY - 1.0) / area.astype(jnp.float32)
  maps = jnp.minimum(
    jnp.cumsum(clipped, axis=-1).astype(jnp.float32) * scale, NUM_GRAY - 1.0
  ).astype(jnp.int32)

  def corners(axis):
    """Per output index: the two neighbouring tiles and their weights."""
    spec = axes[axis]
    padded = jnp.arange(plane.shape[axis]) + spec["start"]
    block, within = padded // spec["k"], padded % spec["k"]
    fraction = within.astype(jnp.float32) / spec["k"].astype(jnp.float32)
    last = spec["num_tiles"] - 1
    tiles = [jnp.clip(block - 1 + e, 0, last) for e in (0, 1)]
    return tiles, [1.0 - fraction, fraction]

  (row_tiles, row_weights), (col_tiles, col_weights) = corners(0), corners(1)
  result = jnp.zeros(plane.shape, jnp.float32)
  for e0 in (0, 1):
    for e1 in (0, 1):
      mapped = maps[row_tiles[e0][:, None], col_tiles[e1][None, :], bins]
      weight = col_weights[e1][None, :] * row_weights[e0][:, None]
      result = result + mapped.astype(jnp.float32) * weight
  result = jnp.floor(result)
  lo, hi = jnp.min(result), jnp.max(result)
  out = (result - lo) / jnp.where(hi > lo, hi - lo, 1.0)
  return jnp.where(jnp.max(levels) > 0, out, plane).astype(plane.dtype)


def equalize_adapthist_rgb(
  image: types.Image,
  kernel_size: tuple[int, int] | jax.Array,
  clip_limit: jax.typing.ArrayLike,
  *,
  kernel_bounds: tuple[tuple[int, int], tuple[int, int]] | None = None,
) -> types.Image:
  """`equalize_adapthist` on an RGB image: CLAHE of the HSV value channel
  (scikit-image's `adapt_rgb(hsv_value)`)."""
  hsv = color.rgb_to_hsv(image)
  value = equalize_adapthist(hsv[..., 2], kernel_size, clip_limit,
                             kernel_bounds=kernel_bounds)  # fmt: skip
  return color.hsv_to_rgb(hsv.at[..., 2].set(value))


@core.register("adaptive_histogram_equalization", gradient="bpda")
def adaptive_histogram_equalization(
  key: types.PRNGKey,
  image: types.Image,
  *,
  clip_low: float = 0.01,
  clip_high: float = 0.04,
) -> types.Image:
  """BaRT CLAHE: tile sides ``round(uniform(S / 10, S / 6))`` (S = min(H,
  W)) and a clip limit uniform in [clip_low, clip_high); with probability
  1/2 each channel gets its own draw, otherwise the RGB image is equalized
  through its HSV value (public BaRT code's ranges). BPDA identity.

  Args:
    key: the parameter key.
    image: ``(H, W, 3)`` float32 in [0, 1], min(H, W) >= 10.
    clip_low, clip_high: 0 < low < high < 1.
  """
  h, w, c = image.shape
  if not 0.0 < clip_low < clip_high < 1.0:
    raise ValueError(
      f"Need 0 < clip_low < clip_high < 1, got {clip_low}, {clip_high}."
    )
  if min(h, w) < 10 or c != 3:
    raise ValueError(
      f"adaptive_histogram_equalization needs an RGB image of at least "
      f"10x10, got {h}x{w}x{c}."
    )
  low, high = min(h, w) / 10, min(h, w) / 6
  bounds = ((round(low), round(high)),) * 2

  def draws(key, image):
    size_key, clip_key = jax.random.split(key)
    sizes = core.rounded_uniform(size_key, low, high, (c, 2))
    clips = jax.random.uniform(clip_key, (c,), jnp.float32, clip_low,
                               clip_high)  # fmt: skip
    return sizes, clips

  def per_channel(key, image):
    sizes, clips = draws(key, image)
    return jax.vmap(
      lambda plane, size, clip: equalize_adapthist(
        plane, size, clip, kernel_bounds=bounds
      ),
      in_axes=(-1, 0, 0),
      out_axes=-1,
    )(image, sizes, clips)

  def joint(key, image):
    sizes, clips = draws(key, image)
    return equalize_adapthist_rgb(image, sizes[0], clips[0],
                                  kernel_bounds=bounds)  # fmt: skip

  def fn(key, image):
    out = core.random_branch(key, [joint, per_channel], image)
    return jnp.clip(out, 0.0, 1.0)

  return core.bpda(fn)(key, image)
