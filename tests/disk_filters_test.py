"""BaRT's mean and bilateral mean filters against scikit-image's rank
filters."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import skimage.data
import skimage.filters.rank
import skimage.morphology
import skimage.transform
from absl.testing import absltest, parameterized

from stochjax import defenses
from stochjax.defenses import core, disk_filters


def _photo():
  return skimage.transform.resize(
    skimage.data.astronaut(), (40, 36), anti_aliasing=True
  ).astype(np.float32)


def _ubyte(image):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "Possible precision loss".
    return skimage.img_as_ubyte(image)


class RankFilterTest(parameterized.TestCase):
  def test_levels_are_skimage_ubyte(self):
    image = _photo()
    np.testing.assert_array_equal(
      disk_filters.to_levels(jnp.asarray(image)), _ubyte(image)
    )

  @parameterized.parameters(0, 2, 3)
  def test_mean_matches_skimage(self, radius):
    levels = _ubyte(_photo())[..., 0]
    np.testing.assert_array_equal(
      disk_filters.rank_mean(jnp.asarray(levels, jnp.int32), radius,
                             max_radius=3),
      skimage.filters.rank.mean(levels, skimage.morphology.disk(radius)),
    )  # fmt: skip

  @parameterized.parameters((2, 5, 5), (5, 3, 20), (30, 30, 5), (12, 7, 9))
  def test_bilateral_matches_skimage(self, radius, s0, s1):
    levels = _ubyte(_photo())[..., 1]
    ours = disk_filters.rank_mean_bilateral(
      jnp.asarray(levels, jnp.int32), radius, s0, s1, max_radius=30
    )
    np.testing.assert_array_equal(
      ours,
      skimage.filters.rank.mean_bilateral(
        levels, skimage.morphology.disk(radius), s0=s0, s1=s1
      ),
    )

  def test_defenses_are_the_filters_with_drawn_parameters(self):
    image = _photo()
    levels = _ubyte(image)
    mean = np.asarray(defenses.lookup("mean_filter()")(
      jax.random.key(0), jnp.asarray(image)
    ))  # fmt: skip
    for c in range(3):  # Each channel is one of the radii 2, 3.
      options = [
        skimage.filters.rank.mean(levels[..., c], skimage.morphology.disk(r))
        / 255.0
        for r in (2, 3)
      ]
      self.assertLess(min(np.abs(mean[..., c] - o).max() for o in options),
                      1e-6)  # fmt: skip

  def test_drawn_parameters_cover_the_ranges(self):
    draws = core.rounded_uniform(jax.random.key(0), 2, 30, (4000,))
    counts = np.bincount(np.asarray(draws), minlength=31)[2:]
    self.assertEqual(counts.nonzero()[0].tolist(), list(range(29)))
    # round(uniform): the two end values get half the weight.
    self.assertLess(counts[0], 0.75 * counts[1:-1].mean())
    self.assertLess(counts[-1], 0.75 * counts[1:-1].mean())

  @parameterized.parameters(
    ("mean_filter(radius_low=3, radius_high=2)", "radius"),
    ("mean_bilateral(s_low=0)", "mean_bilateral s"),
    ("mean_bilateral(radius_low=2.5)", "integers"),
  )
  def test_bad_ranges(self, spec, message):
    with self.assertRaisesRegex(ValueError, message):
      defenses.lookup(spec)(jax.random.key(0), jnp.asarray(_photo()))


if __name__ == "__main__":
  absltest.main()
