"""The JAX JPEG codec against PIL (libjpeg) on real photos."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import skimage.data
from absl.testing import absltest, parameterized
from PIL import Image

from stochjax import defenses
from stochjax.defenses import jpeg


def _pil_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
  """The paper code's path: truncate to uint8, PIL JPEG, back to [0, 1]."""
  pixels = np.floor(image * 255).astype(np.uint8).squeeze()
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
  decoded = np.asarray(Image.open(buffer), np.float32) / 255
  return decoded.reshape(image.shape)


# A colour crop whose sides are not multiples of 16 (edge padding), a full
# photo, and a gray image.
_IMAGES = {
  "astronaut_crop": skimage.data.astronaut()[100:203, 150:271],
  "chelsea": skimage.data.chelsea(),
  "camera_gray": skimage.data.camera()[::4, ::4, None],
}


class JpegTest(parameterized.TestCase):
  @parameterized.product(image=list(_IMAGES), quality=[20, 50, 75, 90])
  def test_matches_pil(self, image, quality):
    x = (_IMAGES[image] / 255.0).astype(np.float32)
    ours = np.asarray(jpeg.jpeg_compress(jnp.asarray(x), quality))
    error = np.abs(ours - _pil_jpeg(x, quality))
    # libjpeg's fixed-point DCTs flip a few roundings: ~0.1-0.4 levels mean.
    self.assertLess(error.mean() * 255, 1.5)
    # Far closer than the identity is to the JPEG (2-6 levels).
    self.assertLess(
      error.mean(), 0.25 * np.abs(x - _pil_jpeg(x, quality)).mean()
    )

  def test_quantization_tables_match_libjpeg(self):
    # libjpeg's jpeg_set_quality on the Annex K tables: quality 50 is the
    # table itself, quality 100 all ones, quality 10 scales by 5.
    tables = np.asarray(jpeg.quantization_tables(50))
    self.assertEqual(tables[0, 0, 0], 16)
    self.assertEqual(tables[1, 7, 7], 99)
    np.testing.assert_array_equal(jpeg.quantization_tables(100), 1)
    self.assertEqual(float(jpeg.quantization_tables(10)[0, 0, 0]), 80)
    self.assertEqual(float(jpeg.quantization_tables(1)[0, 7, 7]), 255)

  def test_straight_through_has_the_same_forward_and_a_gradient(self):
    x = jnp.asarray(skimage.data.astronaut()[:64, :64] / 255.0, jnp.float32)
    key = jax.random.key(0)
    plain = defenses.lookup("jpeg()")
    smooth = defenses.lookup("jpeg(straight_through=True)")
    np.testing.assert_allclose(smooth(key, x), plain(key, x), atol=1e-6)
    weights = jax.random.normal(jax.random.key(1), x.shape)
    grad_st = jax.grad(lambda v: jnp.sum(weights * smooth(key, v)))(x)
    grad_bpda = jax.grad(lambda v: jnp.sum(weights * plain(key, v)))(x)
    np.testing.assert_allclose(grad_bpda, weights, atol=1e-6)
    # Through the codec the gradient is low-passed, not the identity.
    self.assertTrue(np.all(np.isfinite(grad_st)))
    self.assertGreater(float(jnp.abs(grad_st).sum()), 0.0)
    self.assertGreater(float(jnp.abs(grad_st - weights).mean()), 0.1)

  def test_quality_is_drawn_from_the_range(self):
    x = jnp.asarray(skimage.data.astronaut()[:32, :32] / 255.0, jnp.float32)
    outputs = {q: np.asarray(jpeg.jpeg_compress(x, q)) for q in range(30, 33)}
    defense = defenses.lookup("jpeg(quality_low=30, quality_high=33)")
    seen = set()
    for seed in range(30):
      out = np.asarray(defense(jax.random.key(seed), x))
      seen |= {q for q, o in outputs.items() if np.array_equal(o, out)}
    self.assertEqual(seen, {30, 31, 32})

  @parameterized.parameters(
    ("jpeg(quality_low=0)", "quality"),
    ("jpeg(quality_low=80, quality_high=80)", "quality"),
    ("jpeg(quality_high=102)", "quality"),
  )
  def test_bad_quality(self, spec, message):
    with self.assertRaisesRegex(ValueError, message):
      defenses.lookup(spec)(jax.random.key(0), jnp.zeros((16, 16, 3)))

  def test_four_channels_refused(self):
    with self.assertRaisesRegex(ValueError, "1 or 3 channels"):
      jpeg.jpeg_compress(jnp.zeros((16, 16, 4)), 50)


if __name__ == "__main__":
  absltest.main()
