"""BaRT's non-local means against scikit-image's fast algorithm."""

import jax
import jax.numpy as jnp
import numpy as np
import skimage.data
import skimage.transform
from absl.testing import absltest, parameterized
from skimage.restoration import denoise_nl_means

from stochjax import defenses
from stochjax.defenses import nl_means
from tests import test_utils


def _noisy(shape=(40, 36), sigma=0.08):
  image = skimage.transform.resize(
    skimage.data.astronaut(), shape, anti_aliasing=True
  )
  noise = np.random.default_rng(0).normal(0, sigma, image.shape)
  return np.clip(image + noise, 0, 1).astype(np.float32)


class NlMeansTest(parameterized.TestCase):
  def test_fast_exp_is_schraudolphs(self):
    y = np.linspace(-5, 0, 101)
    approx = nl_means.fast_exp(jnp.asarray(y, jnp.float32))
    ratio = np.asarray(approx) / np.exp(y)
    # The approximation's known error band, and not the exact exponential.
    self.assertLess(np.abs(ratio - 1).max(), 0.04)
    self.assertGreater(np.abs(ratio - 1).max(), 0.01)

  @parameterized.parameters((5, 6, 0.08), (7, 11, 0.05), (6, 3, 0.2))
  @test_utils.slow_cases(1)  # Kept: an odd and an even (made odd) patch.
  def test_matches_skimage_color_and_gray(self, size, distance, h):
    image = _noisy()
    kwargs = dict(patch_size=size, patch_distance=distance, h=h)
    np.testing.assert_allclose(
      nl_means.denoise_nl_means(jnp.asarray(image), **kwargs),
      denoise_nl_means(
        image.astype(np.float64), fast_mode=True, channel_axis=-1, **kwargs
      ),  # fmt: skip
      atol=1e-5,
    )
    np.testing.assert_allclose(
      nl_means.denoise_nl_means(jnp.asarray(image[..., :1]), **kwargs)[..., 0],
      denoise_nl_means(
        image[..., 0].astype(np.float64), fast_mode=True, **kwargs
      ),  # fmt: skip
      atol=1e-5,
    )

  def test_traced_sizes_match_static_ones(self):
    image = jnp.asarray(_noisy())
    traced = jax.jit(
      lambda s, d: nl_means.denoise_nl_means(
        image, patch_size=s, patch_distance=d, h=0.08, bounds=(7, 11)
      )
    )
    for size, distance in ((5, 6), (7, 11)):
      np.testing.assert_allclose(
        traced(size, distance),
        nl_means.denoise_nl_means(
          image, patch_size=size, patch_distance=distance, h=0.08
        ),  # fmt: skip
        atol=1e-6,
      )

  def test_noise_sigma_recovers_gaussian_noise(self):
    noise = np.random.default_rng(1).normal(0.5, 0.05, (256, 256))
    sigma = float(nl_means.noise_sigma(jnp.asarray(noise, jnp.float32)))
    self.assertAlmostEqual(sigma, 0.05, delta=0.0025)

  def test_defense_denoises(self):
    clean = skimage.transform.resize(
      skimage.data.astronaut(), (48, 48), anti_aliasing=True
    ).astype(np.float32)
    noisy = _noisy((48, 48))
    out = defenses.lookup("nl_means()")(jax.random.key(0), jnp.asarray(noisy))
    self.assertLess(
      float(jnp.mean((out - clean) ** 2)), 0.7 * np.mean((noisy - clean) ** 2)
    )

  @parameterized.parameters(
    ("nl_means(patch_sizes=(7, 5))", "patch_sizes"),
    ("nl_means(distances=(0, 3))", "distances"),
    ("nl_means(h_factors=(0.0, 1.0))", "h_factors"),
    ("nl_means(distances=(6, 40))", "too small"),
  )
  def test_bad_parameters(self, spec, message):
    with self.assertRaisesRegex(ValueError, message):
      defenses.lookup(spec)(jax.random.key(0), jnp.asarray(_noisy()))


if __name__ == "__main__":
  absltest.main()
