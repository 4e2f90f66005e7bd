"""BaRT's CLAHE against `skimage.exposure.equalize_adapthist`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import skimage.exposure
import skimage.transform
from absl.testing import absltest, parameterized

from stochjax import defenses
from stochjax.defenses import clahe
from tests import test_utils

# float32 arithmetic where scikit-image uses float64: a level can truncate
# the other way, one 14-bit level (6.1e-5) after the final stretch.
_ATOL = 2e-4


def _photo(shape=(40, 36)):
  return skimage.transform.resize(
    skimage.data.astronaut(), shape, anti_aliasing=True
  ).astype(np.float32)


class ClaheTest(parameterized.TestCase):
  @parameterized.parameters(
    ((4, 5), 0.01),  # clip limit 1 per bin: the redistribution loop runs.
    ((6, 6), 0.03),
    ((3, 7), 0.04),
    ((40, 36), 0.02),  # One tile.
    ((5, 4), 0.5),
  )
  @test_utils.slow_cases(1, 2, 3, 4)  # Other tile shapes and clip limits.
  def test_plane_matches_skimage(self, kernel_size, clip_limit):
    plane = _photo()[..., 0]
    np.testing.assert_allclose(
      clahe.equalize_adapthist(jnp.asarray(plane), kernel_size, clip_limit),
      skimage.exposure.equalize_adapthist(
        plane, kernel_size=kernel_size, clip_limit=clip_limit
      ),
      atol=_ATOL,
    )

  def test_traced_tile_sizes_and_rgb(self):
    image = _photo((64, 64))
    equalize = jax.jit(
      lambda x, k: clahe.equalize_adapthist_rgb(
        x, k, 0.02, kernel_bounds=((6, 11), (6, 11))
      )
    )
    for kernel_size in ((6, 11), (9, 7)):
      np.testing.assert_allclose(
        equalize(jnp.asarray(image), jnp.asarray(kernel_size)),
        skimage.exposure.equalize_adapthist(
          image, kernel_size=kernel_size, clip_limit=0.02
        ),
        atol=_ATOL,
      )

  def test_clip_histogram_matches_skimage(self):
    from skimage.exposure._adapthist import clip_histogram

    rng = np.random.default_rng(0)
    for limit in (1, 3, 17):
      hist = rng.poisson(rng.uniform(0, 12, clahe.NUM_BINS))
      np.testing.assert_array_equal(
        clahe.clip_histogram(jnp.asarray(hist, jnp.int32), limit),
        clip_histogram(hist.copy(), limit),
      )

  @pytest.mark.slow
  def test_defense_is_one_of_the_drawn_equalizations(self):
    image = _photo((32, 32))
    out = np.asarray(
      defenses.lookup("adaptive_histogram_equalization()")(
        jax.random.key(0), jnp.asarray(image)
      )
    )
    # 32 pixels: tile sides round(uniform(3.2, 5.33)) in 3..5.
    sizes = [(a, b) for a in (3, 4, 5) for b in (3, 4, 5)]
    errors = [
      np.abs(out - np.clip(skimage.exposure.equalize_adapthist(
        image, kernel_size=k, clip_limit=clip), 0, 1)).max()
      for k in sizes for clip in np.linspace(0.01, 0.04, 61)
    ]  # fmt: skip
    channel_errors = [
      min(
        np.abs(out[..., c] - skimage.exposure.equalize_adapthist(
          image[..., c], kernel_size=k, clip_limit=clip)).max()
        for k in sizes for clip in np.linspace(0.01, 0.04, 61)
      )
      for c in range(3)
    ]  # fmt: skip
    # Either the joint (HSV value) or the per-channel mode, up to the
    # clip limit's grid.
    self.assertLess(min(min(errors), max(channel_errors)), 0.02)

  def test_bad_inputs(self):
    for spec, image, message in (
      ("adaptive_histogram_equalization(clip_low=0.05)", _photo(), "clip"),
      ("adaptive_histogram_equalization()", np.zeros((8, 8, 3)), "10x10"),
      ("adaptive_histogram_equalization()", np.zeros((16, 16, 1)), "RGB"),
    ):
      with self.subTest(spec), self.assertRaisesRegex(ValueError, message):
        defenses.lookup(spec)(
          jax.random.key(0), jnp.asarray(image, jnp.float32)
        )


if __name__ == "__main__":
  absltest.main()
