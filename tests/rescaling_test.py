"""Xie et al.'s resize-and-pad, Guo et al.'s crop and BaRT's zoom against
scikit-image."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import skimage.data
import skimage.transform
from absl.testing import absltest, parameterized

from stochjax import defenses
from stochjax.defenses import rescaling


def _photo(size=32):
  return skimage.transform.resize(
    skimage.data.astronaut(), (size, size), anti_aliasing=True
  ).astype(np.float32)


class ResizePadTest(parameterized.TestCase):
  @parameterized.parameters((32, 0, 5, 0.0), (36, 1, 0, 0.5), (32, 4, 4, 0.0))
  def test_matches_skimage_resize_and_pad(self, size, top, left, pad_value):
    image = _photo()
    ours = rescaling.resize_and_pad(
      jnp.asarray(image), size=size, top=top, left=left, out_size=37,
      pad_value=pad_value,
    )  # fmt: skip
    resized = skimage.transform.resize(
      image, (size, size), order=1, mode="edge", anti_aliasing=False
    )
    expected = np.full((37, 37, 3), pad_value, np.float32)
    expected[top : top + size, left : left + size] = resized
    np.testing.assert_allclose(ours, expected, atol=1e-5)

  def test_draws_cover_the_paper_ranges(self):
    # 224 -> r in [224, 256), pads in [0, 256 - r): check on a 14 -> 16 case.
    image = jnp.ones((14, 14, 1))
    defense = jax.jit(defenses.lookup("resize_pad(out_size=16)"))
    placements = set()
    for seed in range(60):
      out = np.asarray(defense(jax.random.key(seed), image))[..., 0]
      rows, cols = np.nonzero(out > 0.5)
      size = rows.max() - rows.min() + 1
      self.assertEqual(size, cols.max() - cols.min() + 1)
      placements.add((size, rows.min(), cols.min()))
    self.assertEqual({p[0] for p in placements}, {14, 15})
    for size, top, left in placements:
      self.assertLess(top, 16 - size)
      self.assertLess(left, 16 - size)
    self.assertIn((14, 1, 1), placements)

  def test_default_canvas_is_the_papers_for_224(self):
    self.assertEqual(rescaling.default_canvas(224), 256)
    out = defenses.lookup("resize_pad()")(
      jax.random.key(0), jnp.zeros((224,) * 2 + (3,))
    )
    self.assertEqual(out.shape, (256, 256, 3))

  def test_bad_inputs(self):
    for spec, shape, message in (
      ("resize_pad()", (32, 30, 3), "square"),
      ("resize_pad(out_size=32)", (32, 32, 3), "out_size"),
      ("resize_pad(pad_value=2.0)", (32, 32, 3), "pad_value"),
      ("crop(size=128)", (32, 32, 3), "at least 128x128"),
      ("crop(size=31, compat=True)", (32, 32, 3), "at least 33x33"),
    ):
      with self.subTest(spec), self.assertRaisesRegex(ValueError, message):
        defenses.lookup(spec)(jax.random.key(0), jnp.zeros(shape))

  def test_bart_refuses_members_that_resize(self):
    with self.assertRaisesRegex(ValueError, "keep the image shape: crop"):
      defenses.lookup('bart(members="crop()|median()")')(
        jax.random.key(0), jnp.zeros((32, 32, 3))
      )


class CropTest(parameterized.TestCase):
  @parameterized.parameters(False, True)
  def test_crops_are_windows_at_every_allowed_offset(self, compat):
    image = np.arange(10 * 10, dtype=np.float32).reshape(10, 10, 1) / 100
    defense = jax.jit(defenses.lookup(f"crop(size=6, compat={compat})"))
    offsets = set()
    for seed in range(120):
      out = np.asarray(defense(jax.random.key(seed), jnp.asarray(image)))
      top, left = divmod(int(round(out[0, 0, 0] * 100)), 10)
      np.testing.assert_array_equal(out, image[top : top + 6, left : left + 6])
      offsets.add((top, left))
    # [0, H - size] = 0..4, or the paper code's [0, H - size - 1) = 0..2.
    last = 2 if compat else 4
    self.assertEqual({t for t, _ in offsets}, set(range(last + 1)))
    self.assertEqual({c for _, c in offsets}, set(range(last + 1)))

  def test_rescale_returns_the_input_size(self):
    image = jnp.asarray(_photo())
    out = defenses.lookup("crop(size=16, rescale=True)")(
      jax.random.key(0), image
    )
    self.assertEqual(out.shape, image.shape)
    grad = jax.grad(lambda x: jnp.sum(
      defenses.lookup("crop(size=16, rescale=True)")(jax.random.key(0), x)
    ))(image)  # fmt: skip
    # Exactly the cropped window receives gradient.
    self.assertEqual(int((np.asarray(grad).sum(-1) > 0).sum()), 16 * 16)


class ZoomTest(parameterized.TestCase):
  @parameterized.parameters((2, 6, 3, 5), (0, 0, 0, 0), (17, 1, 0, 9))
  def test_matches_skimage_crop_and_resize(self, top, bottom, left, right):
    image = skimage.transform.resize(
      skimage.data.astronaut(), (40, 36), anti_aliasing=True
    ).astype(np.float32)
    ours = rescaling.zoom_in(
      jnp.asarray(image), top=top, bottom=bottom, left=left, right=right
    )
    expected = skimage.transform.resize(
      image[top : 40 - bottom, left : 36 - right], (40, 36, 3)
    )
    np.testing.assert_allclose(ours, expected, atol=1e-5)

  def test_draws_are_the_bart_ranges(self):
    # 32 pixels: round(32 * 20 / 256) = 2 .. round(32 * 50 / 256) = 6 a side.
    image = jnp.asarray(_photo())
    crops = list(itertools.product(range(2, 7), repeat=4))
    every = jax.jit(jax.vmap(
      lambda c: rescaling.zoom_in(image, top=c[0], bottom=c[1], left=c[2],
                                  right=c[3])
    ))(jnp.asarray(crops))  # fmt: skip
    defense = jax.jit(defenses.lookup("zoom()"))
    seen = set()
    for seed in range(40):
      out = defense(jax.random.key(seed), image)
      error = jnp.abs(every - out[None]).max(axis=(1, 2, 3))
      self.assertLess(float(error.min()), 1e-6)
      seen.add(crops[int(jnp.argmin(error))])
    for side in range(4):
      self.assertEqual({c[side] for c in seen}, set(range(2, 7)))

  def test_bad_ranges(self):
    with self.assertRaisesRegex(ValueError, "low <= high"):
      defenses.lookup("zoom(low=0.3, high=0.2)")(
        jax.random.key(0), jnp.asarray(_photo())
      )
    with self.assertRaisesRegex(ValueError, "too small"):
      defenses.lookup("zoom(high=0.49)")(
        jax.random.key(0), jnp.zeros((4, 4, 3))
      )


if __name__ == "__main__":
  absltest.main()
