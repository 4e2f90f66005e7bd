"""BaRT's wavelet denoising against scikit-image + PyWavelets outputs
(fixtures from tools/make_wavelet_fixtures.py; PyWavelets is not needed
here)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import skimage.color
import skimage.data
import skimage.transform
from absl.testing import absltest, parameterized

from stochjax import defenses
from stochjax.defenses import color, wavelet
from tests import test_utils

_FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "wavelet")


def _expected():
  with np.load(os.path.join(_FIXTURES, "expected.npz")) as data:
    return dict(data)


class WaveletTest(parameterized.TestCase):
  @parameterized.product(
    size=["even", "odd"],
    mode=["soft", "hard"],
    ycbcr=[False, True],
    shifts=[0, 1],
  )
  # Default tier: four of the 16 cases, every value of each factor twice.
  @test_utils.slow_cases(*sorted(set(range(16)) - {1, 6, 8, 15}))
  def test_matches_skimage_cycle_spin(self, size, mode, ycbcr, shifts):
    expected = _expected()
    image = jnp.asarray(expected[f"{size}/input"])
    out = wavelet.cycle_spin(
      lambda x: wavelet.denoise_wavelet(x, hard=mode == "hard", ycbcr=ycbcr),
      image,
      shifts,
    )
    np.testing.assert_allclose(
      out, expected[f"{size}/{mode}/ycbcr={int(ycbcr)}/shifts={shifts}"],
      atol=1e-5,
    )  # fmt: skip

  def test_ycbcr_matches_skimage(self):
    image = skimage.transform.resize(skimage.data.astronaut(), (20, 24))
    ycbcr = color.rgb_to_ycbcr(jnp.asarray(image, jnp.float32))
    np.testing.assert_allclose(ycbcr, skimage.color.rgb2ycbcr(image),
                               atol=1e-4)  # fmt: skip
    np.testing.assert_allclose(color.ycbcr_to_rgb(ycbcr), image, atol=1e-5)

  def test_levels_are_skimages_default(self):
    # max(floor(log2(min side)) - 3, 1): 224 -> 4, 32 -> 2, 8 -> 1.
    self.assertEqual(
      [wavelet.haar_levels((s, s)) for s in (224, 32, 8)], [4, 2, 1]
    )

  def test_defense_is_one_of_the_eight_variants(self):
    expected = _expected()
    image = jnp.asarray(expected["even/input"])
    out = np.asarray(defenses.lookup("wavelet_denoise()")(
      jax.random.key(0), image
    ))  # fmt: skip
    variants = [
      np.clip(v, 0, 1) for k, v in expected.items()
      if k.startswith("even/") and not k.endswith("input")
    ]  # fmt: skip
    self.assertLess(min(np.abs(out - v).max() for v in variants), 1e-5)

  def test_bad_image(self):
    with self.assertRaisesRegex(ValueError, "RGB"):
      defenses.lookup("wavelet_denoise()")(
        jax.random.key(0), jnp.zeros((8, 8, 1))
      )


if __name__ == "__main__":
  absltest.main()
