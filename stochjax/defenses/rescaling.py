"""Xie et al.'s random resize-and-pad, Guo et al.'s random crop, BaRT's zoom.

The first two change the image size: `resize_pad` returns ``(out, out, C)``,
`crop` returns ``(size, size, C)`` unless ``rescale=True``. The drawn sizes
and offsets are traced, so outputs are computed by sampling a fixed-size
grid (one compiled program for every draw). Both are differentiable and
their gradient is exact. Models with global pooling (every stochjax ResNet)
take any input size; `bart` members must keep the size.

References:
  Xie, Wang, Zhang, Ren, Yuille. Mitigating Adversarial Effects Through
  Randomization. ICLR 2018. https://arxiv.org/abs/1711.01991
  Guo, Rana, Cisse, van der Maaten. Countering Adversarial Images using
  Input Transformations. ICLR 2018. https://arxiv.org/abs/1711.00117
"""

import jax
import jax.numpy as jnp

from stochjax import types
from stochjax.defenses import core


def _source_coordinates(out_size: int, in_size: int, scaled_size, offset):
  """Half-pixel bilinear source rows for ``in_size -> scaled_size`` placed at
  `offset` on an `out_size` canvas (torchvision ``resize``, edge-clamped),
  and whether each canvas row lies inside the placed image."""
  canvas = jnp.arange(out_size, dtype=jnp.float32)
  local = canvas - offset.astype(jnp.float32)
  inside = (local >= 0) & (local < scaled_size.astype(jnp.float32))
  source = (local + 0.5) * in_size / scaled_size.astype(jnp.float32) - 0.5
  return jnp.clip(source, 0.0, in_size - 1.0), inside


def _bilinear(image: types.Image, rows, cols) -> types.Image:
  """``(len(rows), len(cols), C)``: the image bilinearly sampled at every
  (row, col) source coordinate pair (inside the image)."""
  grid = jnp.meshgrid(rows, cols, indexing="ij")

  def sample(channel):
    return jax.scipy.ndimage.map_coordinates(channel, grid, order=1)

  return jax.vmap(sample, in_axes=-1, out_axes=-1)(image)


def resize_and_pad(
  image: types.Image,
  *,
  size: jax.typing.ArrayLike,
  top: jax.typing.ArrayLike,
  left: jax.typing.ArrayLike,
  out_size: int,
  pad_value: jax.typing.ArrayLike = 0.0,
) -> types.Image:
  """Bilinearly resizes a square image to ``size`` and pads it to
  `out_size` with `pad_value`, the resized image's top-left at (top, left).

  Args:
    image: ``(S, S, C)`` float32 in [0, 1].
    size, top, left: integers (may be traced), ``size + top <= out_size``.
    out_size: the canvas side.
    pad_value: the fill, in [0, 1].

  Returns:
    ``(out_size, out_size, C)`` float32 in [0, 1]; inside the placed
    square it equals ``skimage.transform.resize(image, (size, size),
    order=1, mode="edge", anti_aliasing=False)``.
  """
  in_size = image.shape[0]
  size = jnp.asarray(size, jnp.int32)
  rows, rows_in = _source_coordinates(out_size, in_size, size, jnp.asarray(top))
  cols, cols_in = _source_coordinates(
    out_size, in_size, size, jnp.asarray(left)
  )
  resized = _bilinear(image, rows, cols)
  inside = (rows_in[:, None] & cols_in[None, :])[..., None]
  return jnp.where(inside, resized, jnp.asarray(pad_value, image.dtype))


def default_canvas(size: int) -> int:
  """Xie et al.'s canvas scaled to the image: 256 for 224 (the paper code),
  ``ceil(size * 256 / 224)`` otherwise."""
  return -(-size * 256 // 224)


@core.register("resize_pad", gradient="exact")
def resize_pad(
  key: types.PRNGKey,
  image: types.Image,
  *,
  out_size: int | None = None,
  pad_value: float = 0.0,
) -> types.Image:
  """Xie et al.: resize the S x S image to r, an integer drawn from [S,
  out_size), then pad to out_size with the top and left pads integers drawn
  from [0, out_size - r) (the paper code's draws; its pad is 0, Xie et al.'s
  0.5).

  Args:
    key: the size and offset key.
    image: ``(S, S, C)`` float32 in [0, 1], square.
    out_size: the output side, > S; None = `default_canvas(S)` (256 for
      224).
    pad_value: the fill, in [0, 1].

  Returns:
    ``(out_size, out_size, C)`` float32 in [0, 1]; the gradient is exact.
  """
  h, w, _ = image.shape
  if h != w:
    raise ValueError(f"resize_pad needs a square image, got {h}x{w}.")
  out_size = default_canvas(h) if out_size is None else out_size
  if not (isinstance(out_size, int) and out_size > h):
    raise ValueError(
      f"out_size must be an integer > the image side {h}, got {out_size}."
    )
  if not 0.0 <= pad_value <= 1.0:
    raise ValueError(f"pad_value must be in [0, 1], got {pad_value}.")
  size_key, top_key, left_key = jax.random.split(key, 3)
  size = jax.random.randint(size_key, (), h, out_size)
  top = jax.random.randint(top_key, (), 0, out_size - size)
  left = jax.random.randint(left_key, (), 0, out_size - size)
  return resize_and_pad(
    image, size=size, top=top, left=left, out_size=out_size,
    pad_value=pad_value,
  )  # fmt: skip


def default_crop(size: int) -> int:
  """The paper code's crop scaled to the image: 128 for 224,
  ``round(size * 128 / 224)`` otherwise."""
  return max(1, round(size * 128 / 224))


@core.register("crop", gradient="exact")
def crop(
  key: types.PRNGKey,
  image: types.Image,
  *,
  size: int | None = None,
  rescale: bool = False,
  compat: bool = False,
) -> types.Image:
  """Guo et al.: a random ``size x size`` crop, optionally rescaled back.

  Offsets (top, left) are integers drawn from [0, H - size] and [0, W -
  size]; ``compat=True`` draws from the paper code's [0, H - size - 1),
  which never crops the last two rows or columns.

  Args:
    key: the offset key.
    image: ``(H, W, C)`` float32 in [0, 1].
    size: the crop side, <= min(H, W); None = `default_crop(min(H, W))`.
    rescale: resize the crop bilinearly back to H x W (Guo et al. feed the
      crop to a fixed-size network this way); otherwise return it as is.
    compat: the paper code's offset range.

  Returns:
    ``(size, size, C)``, or ``(H, W, C)`` with `rescale`, float32 in [0, 1];
    the gradient is exact.
  """
  h, w, c = image.shape
  size = default_crop(min(h, w)) if size is None else size
  slack = 2 if compat else 0
  if not (isinstance(size, int) and 1 <= size <= min(h, w) - slack):
    need = f"{size + slack}x{size + slack}" if isinstance(size, int) else ""
    raise ValueError(
      f"crop size must be an integer in 1..min(H, W){' - 2' * compat}; a "
      f"{size} crop needs an image of at least {need}, got {h}x{w}."
    )
  top_key, left_key = jax.random.split(key)
  top = jax.random.randint(top_key, (), 0, h - size + 1 - slack)
  left = jax.random.randint(left_key, (), 0, w - size + 1 - slack)
  out = jax.lax.dynamic_slice(image, (top, left, 0), (size, size, c))
  if rescale:
    out = jnp.clip(jax.image.resize(out, (h, w, c), "linear"), 0.0, 1.0)
  return out


def _mirrored_rows(out_size: int, start, length) -> jax.Array:
  """Source rows of ``length`` rows from `start` stretched to `out_size`
  rows: half-pixel bilinear coordinates mirrored about the window's first
  and last rows (`skimage.transform.resize`, order 1, mode "reflect")."""
  length = jnp.asarray(length, jnp.float32)
  local = (jnp.arange(out_size, dtype=jnp.float32) + 0.5) * (
    length / out_size
  ) - 0.5
  local = jnp.abs(local)
  local = jnp.where(local > length - 1.0, 2.0 * (length - 1.0) - local, local)
  return jnp.asarray(start, jnp.float32) + local


def zoom_in(
  image: types.Image,
  *,
  top: jax.typing.ArrayLike,
  bottom: jax.typing.ArrayLike,
  left: jax.typing.ArrayLike,
  right: jax.typing.ArrayLike,
) -> types.Image:
  """Crops `top`, `bottom`, `left`, `right` pixels off the sides and resizes
  the rest back to ``(H, W)``: ``skimage.transform.resize(image[top:H -
  bottom, left:W - right], (H, W, C))`` (bilinear, mirrored borders).

  Args:
    image: ``(H, W, C)`` float32 in [0, 1].
    top, bottom, left, right: integers (may be traced), leaving at least one
      row and column.

  Returns:
    ``(H, W, C)`` float32 in [0, 1]; differentiable.
  """
  h, w, _ = image.shape
  rows = _mirrored_rows(h, top, h - top - bottom)
  cols = _mirrored_rows(w, left, w - left - right)
  return _bilinear(image, rows, cols)


@core.register("zoom", gradient="exact")
def zoom(
  key: types.PRNGKey,
  image: types.Image,
  *,
  low: float = 20 / 256,
  high: float = 50 / 256,
) -> types.Image:
  """BaRT random zoom: crop an integer number of pixels, drawn uniformly from
  ``[round(low * S), round(high * S)]`` for each side (S = H for the top and
  bottom, W for the left and right; 20..50 of 256, Raff et al.'s zoom
  scaled to the image as in public BaRT code), and resize back (`zoom_in`).

  BaRT's other zoom, seam-carving expansion, is not implemented: seam
  carving removes data-dependent paths one at a time.

  Args:
    key: the crop key.
    image: ``(H, W, C)`` float32 in [0, 1].
    low, high: fractions of the side, ``0 <= low <= high < 0.5``.

  Returns:
    ``(H, W, C)`` float32 in [0, 1]; the gradient is exact.
  """
  if not 0.0 <= low <= high < 0.5:
    raise ValueError(f"Need 0 <= low <= high < 0.5, got {low}, {high}.")
  h, w, _ = image.shape
  row_key, col_key = jax.random.split(key)

  def draws(key, side):
    lo, hi = round(low * side), round(high * side)
    if side - 2 * hi < 1:
      raise ValueError(f"zoom crops up to {hi} pixels a side: {h}x{w} is "
                       "too small.")  # fmt: skip
    return jax.random.randint(key, (2,), lo, hi + 1)

  (top, bottom), (left, right) = draws(row_key, h), draws(col_key, w)
  return zoom_in(image, top=top, bottom=bottom, left=left, right=right)
