"""BaRT's colour-space and grayscale groups against scikit-image and NumPy."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import skimage.color
import skimage.data
import skimage.transform
from absl.testing import absltest, parameterized

from stochjax import defenses
from stochjax.defenses import color


def _photo():
  """The astronaut at 40x40, plus a black and a white row."""
  photo = skimage.transform.resize(
    skimage.data.astronaut(), (40, 40), anti_aliasing=True
  )
  edges = [np.zeros((1, 40, 3)), np.ones((1, 40, 3))]
  return np.concatenate([photo, *edges]).astype(np.float32)


def _skimage_shift(image, space, offsets):
  """BaRT's appendix code for each colour space, on scikit-image."""
  if space == "hsv":
    shifted = np.clip(skimage.color.rgb2hsv(image) + offsets, 0, 1)
    return np.clip(skimage.color.hsv2rgb(shifted), 0, 1)
  if space == "xyz":
    shifted = np.clip(skimage.color.rgb2xyz(image) + offsets, 0, 1)
    return np.clip(skimage.color.xyz2rgb(shifted), 0, 1)
  if space == "lab":
    lab = skimage.color.rgb2lab(image) + offsets
    lab[..., 0] = np.clip(lab[..., 0], 0, 100)
    with warnings.catch_warnings():  # "negative Z values clipped to zero"
      warnings.simplefilter("ignore")
      return np.clip(skimage.color.lab2rgb(lab), 0, 1)
  yuv = skimage.color.rgb2yuv(image) + offsets
  yuv[..., 0] = np.clip(yuv[..., 0], 0, 1)
  return np.clip(skimage.color.yuv2rgb(yuv), 0, 1)


class ColorSpaceTest(parameterized.TestCase):
  @parameterized.parameters(
    (color.rgb_to_hsv, skimage.color.rgb2hsv, 1e-6),
    (color.rgb_to_xyz, skimage.color.rgb2xyz, 1e-6),
    (color.rgb_to_lab, skimage.color.rgb2lab, 2e-4),  # L in [0, 100].
    (color.rgb_to_yuv, skimage.color.rgb2yuv, 1e-6),
  )
  def test_conversions_match_skimage(self, ours, reference, atol):
    image = _photo()
    np.testing.assert_allclose(
      ours(jnp.asarray(image)), reference(image), atol=atol
    )

  @parameterized.product(space=["hsv", "xyz", "lab", "yuv"], sign=[1.0, -1.0])
  def test_shift_matches_skimage(self, space, sign):
    image = _photo()
    bounds = np.asarray(color._SHIFTS[space])
    offsets = sign * bounds * np.array([0.9, -0.6, 0.4])
    ours = color.shift_color(jnp.asarray(image), space, offsets)
    np.testing.assert_allclose(
      ours, _skimage_shift(image, space, offsets), atol=1e-5
    )

  @parameterized.parameters("hsv", "xyz", "lab", "yuv")
  def test_zero_shift_is_the_identity_inside_the_clip(self, space):
    image = _photo()
    out = np.asarray(color.shift_color(jnp.asarray(image), space, np.zeros(3)))
    # BaRT clips XYZ to [0, 1], so near-white pixels (Z up to 1.089) change.
    inside = skimage.color.rgb2xyz(image).max(-1) <= 1.0
    if space == "xyz":
      self.assertFalse(inside.all())
      self.assertGreater(np.abs(out - image)[~inside].max(), 0.01)
      out, image = out[inside], image[inside]
    np.testing.assert_allclose(out, image, atol=2e-5)

  def test_offsets_lie_within_barts_bounds(self):
    keys = jax.random.split(jax.random.key(0), 500)
    offsets = jax.vmap(lambda k: color._offsets(k, (5.0, 2.0, 2.0), "float32"))(
      keys
    )
    self.assertTrue(np.all(np.abs(offsets) < np.array([5.0, 2.0, 2.0])))
    self.assertGreater(float(offsets[:, 0].max()), 4.5)

  def test_grayscale_group_needs_rgb(self):
    for name in ("hsv_shift", "gray_mix", "one_channel_partial_gray"):
      with self.subTest(name), self.assertRaisesRegex(ValueError, "3 \\(RGB"):
        defenses.lookup(f"{name}()")(jax.random.key(0), jnp.zeros((8, 8, 1)))


class GrayscaleTest(absltest.TestCase):
  def _draws(self, name, num=64):
    image = jnp.asarray(_photo())
    defense = jax.jit(jax.vmap(defenses.lookup(f"{name}()"), (0, None)))
    return np.asarray(image), np.asarray(
      defense(jax.random.split(jax.random.key(0), num), image)
    )

  def _mix_weights(self, image, out_channel, channels):
    """Least-squares weights expressing `out_channel` by `channels`."""
    design = image[..., channels].reshape(-1, len(channels))
    weights, *_ = np.linalg.lstsq(design, out_channel.reshape(-1), rcond=None)
    return weights

  def test_gray_mix_is_a_convex_mix_in_every_channel(self):
    image, draws = self._draws("gray_mix")
    for out in draws[:8]:
      np.testing.assert_array_equal(out[..., 0], out[..., 1])
      np.testing.assert_array_equal(out[..., 0], out[..., 2])
      weights = self._mix_weights(image, out[..., 0], [0, 1, 2])
      self.assertAlmostEqual(weights.sum(), 1.0, places=4)
      self.assertTrue(np.all(weights >= -1e-4))

  def test_partial_mix_keeps_at_least_a_fifth(self):
    image, draws = self._draws("gray_partial_mix")
    for out in draws[:8]:
      for c in range(3):
        weights = self._mix_weights(image, out[..., c], [0, 1, 2])
        self.assertAlmostEqual(weights.sum(), 1.0, places=4)
        self.assertGreaterEqual(weights[c], 0.2 - 1e-4)

  def test_two_thirds_keeps_one_channel_and_mixes_two(self):
    image, draws = self._draws("gray_mix_two_thirds")
    kept = set()
    for out in draws:
      same = [np.array_equal(out[..., c], image[..., c]) for c in range(3)]
      self.assertEqual(sum(same), 1)
      c = same.index(True)
      kept.add(c)
      others = [i for i in range(3) if i != c]
      np.testing.assert_array_equal(out[..., others[0]], out[..., others[1]])
      weights = self._mix_weights(image, out[..., others[0]], others)
      self.assertAlmostEqual(weights.sum(), 1.0, places=4)
    self.assertEqual(kept, {0, 1, 2})

  def test_one_channel_partial_gray_alters_one_channel(self):
    image, draws = self._draws("one_channel_partial_gray")
    for out in draws[:16]:
      changed = [
        not np.array_equal(out[..., c], image[..., c]) for c in range(3)
      ]
      self.assertEqual(sum(changed), 1)
      c = changed.index(True)
      weights = self._mix_weights(image, out[..., c], [0, 1, 2])
      # p g + (1 - p) x_c with p in [0.1, 0.9): the own weight is 1 - p.
      self.assertTrue(0.1 - 1e-4 <= weights[c] <= 0.9 + 1e-4)
      self.assertAlmostEqual(weights.sum(), 1.0, places=4)


if __name__ == "__main__":
  absltest.main()
