"""TV denoisers against scikit-image's Chambolle algorithm."""

import jax
import jax.numpy as jnp
import numpy as np
import skimage.data
import skimage.transform
from absl.testing import absltest, parameterized
from skimage.restoration import denoise_tv_chambolle

from stochjax import defenses
from stochjax.defenses import denoise


def _photo():
  return skimage.transform.resize(
    skimage.data.astronaut(), (40, 36), anti_aliasing=True
  ).astype(np.float32)


def _tv(u):
  """Isotropic TV per channel with forward differences (0 at the edge)."""
  dy = np.diff(u, axis=0, append=u[-1:])
  dx = np.diff(u, axis=1, append=u[:, -1:])
  return np.sqrt(dy**2 + dx**2).sum()


def _objective(u, f, mask, weight):
  return 0.5 * ((mask[..., None] * (u - f)) ** 2).sum() + weight * _tv(u)


class ChambolleTest(parameterized.TestCase):
  @parameterized.product(
    iters_eps=[(1, 0.0), (7, 0.0), (200, 0.0), (200, 2e-4)],
    weight=[0.05, 0.25],
  )
  def test_matches_skimage_per_channel_and_as_a_volume(self, iters_eps, weight):
    image = _photo()
    num_iters, eps = iters_eps
    kwargs = dict(weight=weight, eps=eps, max_num_iter=num_iters)
    # float32 rounding differs from NumPy's and compounds over iterations;
    # with a tolerance it can also move the stop by one iteration.
    atol = 2e-5 if num_iters < 10 else 1e-3 if eps == 0 else 2e-3
    per_channel = jax.vmap(
      lambda p: denoise.denoise_tv_chambolle(p, **kwargs),
      in_axes=-1,
      out_axes=-1,
    )(jnp.asarray(image))
    np.testing.assert_allclose(
      per_channel,
      denoise_tv_chambolle(image, channel_axis=-1, **kwargs),
      atol=atol,
    )
    volume = denoise.denoise_tv_chambolle(jnp.asarray(image), **kwargs)
    np.testing.assert_allclose(
      volume, denoise_tv_chambolle(image, **kwargs), atol=atol
    )

  def test_the_defense_is_one_of_the_two_modes(self):
    image = jnp.asarray(_photo())
    out = np.asarray(defenses.lookup("tv_chambolle(weight_low=0.1, "
                                     "weight_high=0.1001)")(
      jax.random.key(3), image
    ))  # fmt: skip
    modes = [
      denoise_tv_chambolle(np.asarray(image), weight=0.1, **extra)
      for extra in ({"channel_axis": -1}, {})
    ]
    self.assertLess(min(np.abs(out - m).max() for m in modes), 1e-3)


class MaskedTvTest(absltest.TestCase):
  def test_full_mask_is_rof(self):
    image = _photo()
    converged = denoise_tv_chambolle(
      image.astype(np.float64), weight=0.05, eps=0.0, max_num_iter=5000,
      channel_axis=-1,
    )  # fmt: skip
    ours = denoise.masked_tv(
      jnp.asarray(image), jnp.ones(image.shape[:2]), weight=0.05, num_iters=300
    )
    np.testing.assert_allclose(ours, converged, atol=2e-3)

  def test_dropout_objective_beats_simple_fills(self):
    image = _photo()
    mask = np.asarray(jax.random.bernoulli(jax.random.key(0), 0.5, (40, 36)))
    ours = np.asarray(
      denoise.masked_tv(jnp.asarray(image), jnp.asarray(mask), weight=0.03,
                        num_iters=300)
    )  # fmt: skip
    f = _objective(ours, image, mask, 0.03)
    # The minimizer beats the input and the input with dropped pixels at 0.
    self.assertLess(f, _objective(image, image, mask, 0.03))
    self.assertLess(f, _objective(image * mask[..., None], image, mask, 0.03))
    # And it fills the dropped pixels far closer to the photo than 0 is.
    dropped = ~mask
    fill_error = np.abs(ours - image)[dropped].mean()
    self.assertLess(fill_error, 0.25 * np.abs(image)[dropped].mean())

  def test_bad_parameters(self):
    for spec, message in (
      ("tv_minimization(keep_prob=0.0)", "keep_prob"),
      ("tv_minimization(weight=-1.0)", "weight"),
      ("tv_chambolle(weight_low=0.3, weight_high=0.2)", "weight_low"),
      ("tv_chambolle(max_num_iter=0)", "max_num_iter"),
    ):
      with self.subTest(spec), self.assertRaisesRegex(ValueError, message):
        defenses.lookup(spec)(jax.random.key(0), jnp.zeros((8, 8, 3)))


if __name__ == "__main__":
  absltest.main()
