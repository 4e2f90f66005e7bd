"""BaRT's contrast group against scikit-image's exposure module."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import skimage.data
import skimage.exposure
import skimage.transform
from absl.testing import absltest, parameterized

from stochjax import defenses
from stochjax.defenses import contrast

_IMAGES = {
  "smooth": skimage.transform.resize(
    skimage.data.astronaut(), (40, 40), anti_aliasing=True
  ).astype(np.float32),
  # 8-bit levels: many pixels sit exactly on bin edges.
  "levels": (skimage.data.coffee()[:50, :60] / 255).astype(np.float32),
}


class ContrastTest(parameterized.TestCase):
  @parameterized.product(image=list(_IMAGES), num_bins=[2, 40, 97, 256])
  def test_equalization_matches_skimage(self, image, num_bins):
    x = _IMAGES[image]
    with warnings.catch_warnings():  # "This might be a color image"
      warnings.simplefilter("ignore")
      expected = skimage.exposure.equalize_hist(x, nbins=num_bins)
    ours = contrast.equalize_histogram(jnp.asarray(x), num_bins)
    np.testing.assert_allclose(ours, expected, atol=1e-6)

  @parameterized.product(image=list(_IMAGES), low_high=[(1, 99), (3.7, 96.2)])
  def test_stretch_matches_skimage(self, image, low_high):
    x = _IMAGES[image]
    in_range = tuple(np.percentile(x, low_high))
    expected = skimage.exposure.rescale_intensity(x, in_range=in_range)
    ours = contrast.stretch_contrast(
      jnp.asarray(x), *map(jnp.float32, low_high)
    )
    np.testing.assert_allclose(ours, expected, atol=2e-6)

  def test_constant_image_is_left_alone(self):
    x = jnp.full((8, 8, 3), 0.3)
    np.testing.assert_array_equal(
      contrast.stretch_contrast(x, jnp.float32(2.0), jnp.float32(98.0)), x
    )

  def test_bins_are_drawn_from_the_range(self):
    x = jnp.asarray(_IMAGES["smooth"])
    outputs = {b: np.asarray(contrast.equalize_histogram(x, b)) for b in (5, 6)}
    defense = defenses.lookup("histogram_equalization(bins_low=5, bins_high=7)")
    seen = set()
    for seed in range(20):
      out = np.asarray(defense(jax.random.key(seed), x))
      seen |= {b for b, o in outputs.items() if np.allclose(o, out, atol=1e-6)}
    self.assertEqual(seen, {5, 6})

  @parameterized.parameters(
    ("histogram_equalization(bins_low=1)", "bins_low"),
    ("histogram_equalization(bins_low=50, bins_high=300)", "bins_low"),
    ("contrast_stretch(low_range=(5.0, 2.0))", "low_range"),
    ("contrast_stretch(high_range=(96.0, 101.0))", "high_range"),
  )
  def test_bad_parameters(self, spec, message):
    with self.assertRaisesRegex(ValueError, message):
      defenses.lookup(spec)(jax.random.key(0), jnp.zeros((8, 8, 3)))


if __name__ == "__main__":
  absltest.main()
