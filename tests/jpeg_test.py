"""The JAX JPEG codec against PIL (libjpeg) on real photos."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
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


def _noisy_gravel() -> np.ndarray:
  """A strongly textured colour image: gravel plus Gaussian noise."""
  gray = skimage.data.gravel()[:40, :40, None].repeat(3, axis=-1) / 255.0
  noise = np.random.default_rng(0).normal(0.0, 0.1, gray.shape)
  return (np.clip(gray + noise, 0, 1) * 255).astype(np.uint8)


# Smooth and textured photos, colour and gray, sides that are not multiples
# of 16, and tiny sizes (an 8x8 block, 17x23).
_IMAGES = {
  "astronaut_crop": skimage.data.astronaut()[100:203, 150:271],
  "chelsea": skimage.data.chelsea()[::2, ::2],
  "camera_gray": skimage.data.camera()[::4, ::4, None],
  "immunohistochemistry": skimage.data.immunohistochemistry()[:48, :56],
  "hubble": skimage.data.hubble_deep_field()[:50, :62],
  "colorwheel": skimage.data.colorwheel()[:64, :64, :3],
  "gravel_noisy": _noisy_gravel(),
  "tiny_8x8": skimage.data.astronaut()[200:208, 200:208],
  "coffee_17x23": skimage.data.coffee()[100:117, 200:223],
  "camera_17x23_gray": skimage.data.camera()[50:67, 60:83, None],
}


# Quality traced: one compile per image shape for all six qualities (eager
# dispatch compiled every op per shape; jit = eager is tested below).
_jpeg_compress = jax.jit(jpeg.jpeg_compress)


class JpegTest(parameterized.TestCase):
  @parameterized.product(image=list(_IMAGES), quality=[1, 10, 50, 75, 95, 100])
  def test_matches_pil(self, image, quality):
    x = (_IMAGES[image] / 255.0).astype(np.float32)
    ours = np.asarray(_jpeg_compress(jnp.asarray(x), quality))
    levels = np.abs(ours - _pil_jpeg(x, quality)) * 255
    # libjpeg-turbo's integer path, emulated: equal on >= 99.9 % of values,
    # never more than one level off (measured: equal everywhere).
    self.assertGreaterEqual(np.mean(levels < 0.5), 0.999)
    self.assertLessEqual(levels.max(), 1.0 + 1e-3)
    # The codec does something: below quality 95 it changes some pixel.
    if quality < 95:
      truncated = np.floor(x * 255) / 255
      self.assertGreater(np.abs(truncated - ours).max(), 0.5 / 255)

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
    np.testing.assert_array_equal(smooth(key, x), plain(key, x))
    weights = jax.random.normal(jax.random.key(1), x.shape)
    grad_st = jax.grad(lambda v: jnp.sum(weights * smooth(key, v)))(x)
    grad_bpda = jax.grad(lambda v: jnp.sum(weights * plain(key, v)))(x)
    np.testing.assert_allclose(grad_bpda, weights, atol=1e-6)
    # Straight-through: the gradient of the codec's linear parts.
    _, vjp = jax.vjp(jpeg.linear_codec, x)
    np.testing.assert_allclose(grad_st, vjp(weights)[0], atol=1e-6)
    self.assertTrue(np.all(np.isfinite(grad_st)))
    self.assertGreater(float(jnp.abs(grad_st - weights).mean()), 0.1)

  @pytest.mark.slow
  def test_linear_codec_against_finite_differences(self):
    x = jnp.asarray(
      skimage.data.coffee()[100:117, 200:223] / 255.0, jnp.float32
    )
    direction = jax.random.normal(jax.random.key(2), x.shape)
    _, tangent = jax.jvp(jpeg.linear_codec, (x,), (direction,))
    step = 1e-2
    finite = (
      jpeg.linear_codec(x + step * direction)
      - jpeg.linear_codec(x - step * direction)
    ) / (2 * step)
    np.testing.assert_allclose(tangent, finite, atol=2e-3)
    self.assertGreater(float(jnp.abs(tangent).mean()), 0.1)
    # Without rounding the codec is nearly the identity on smooth images:
    # only the chroma subsampling blurs.
    codec = jpeg.jpeg_compress(x, 100)
    self.assertLess(float(jnp.abs(jpeg.linear_codec(x) - codec).mean()), 0.02)

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

  @pytest.mark.slow
  def test_jit_vmap_equal_one_image_at_a_time(self):
    x = jnp.asarray(
      np.stack([_IMAGES["tiny_8x8"], _IMAGES["astronaut_crop"][:8, :8]]) / 255,
      jnp.float32,
    )
    qualities = jnp.asarray([20, 80])
    batched = jax.jit(jax.vmap(jpeg.jpeg_compress))(x, qualities)
    for i in range(2):
      np.testing.assert_array_equal(
        batched[i], jpeg.jpeg_compress(x[i], int(qualities[i]))
      )


if __name__ == "__main__":
  absltest.main()
