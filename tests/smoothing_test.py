"""Randomized smoothing against the closed form of a linear classifier.

For f(x) = [w.x + b > 0] and noise N(0, sigma^2 I), P(f(x + d) = 1) is
Phi((w.x + b) / (sigma |w|)), and the exact certified radius is the distance
to the boundary |w.x + b| / |w|.
"""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from scipy import stats

from stochjax import smoothing

SHAPE = (8, 8, 1)
SIGMA = 0.25


def _problem():
  """A linear classifier ``x . w`` and images at signed distances
  `distances` from its boundary (each image is moved along w's unit
  normal), so that p_A = Phi(|d| / sigma) exactly."""
  rng = np.random.default_rng(0)
  w = rng.normal(size=int(np.prod(SHAPE)))
  w -= w.mean()  # The constant image is on the boundary: small moves.
  unit = w / np.linalg.norm(w)
  base = rng.uniform(0.3, 0.7, (6, unit.size))
  distances = np.array([-0.6, -0.2, -0.05, 0.0, 0.1, 0.4])
  images = base + (distances - base @ unit)[:, None] * unit
  assert 0.0 <= images.min() and images.max() <= 1.0
  shaped = images.reshape(6, *SHAPE).astype(np.float32)
  return unit.astype(np.float32), shaped, distances.astype(np.float32)


def _logits_fn(w):
  def logits(weights, x):
    score = x.reshape(x.shape[0], -1) @ weights
    return jnp.stack([jnp.zeros_like(score), score], -1)

  return jax.tree_util.Partial(logits, jnp.asarray(w))


class SmoothingTest(absltest.TestCase):
  def test_statistics_match_scipy(self):
    successes, trials = np.array([0, 3, 50, 97]), np.array([10, 10, 100, 100])
    expected = [
      stats.binomtest(k, n, 0.5).pvalue
      for k, n in zip(successes, trials, strict=True)
    ]
    np.testing.assert_allclose(
      smoothing.binomial_p_value(successes, trials), expected, rtol=1e-10
    )
    lower = smoothing.lower_confidence_bound(successes, trials, 0.01)
    for k, n, low in zip(successes, trials, lower, strict=True):
      ci = stats.binomtest(k, n).proportion_ci(0.98, method="exact")
      self.assertAlmostEqual(low, ci.low, places=10)

  def test_certify_matches_the_linear_closed_form(self):
    w, images, distances = _problem()
    certificate = smoothing.certify(
      jax.random.key(0),
      _logits_fn(w),
      jnp.asarray(images),
      sigma=SIGMA,
      num_select=100,
      num_estimate=20_000,
      alpha=0.001,
    )
    p_true = stats.norm.cdf(np.abs(distances) / SIGMA)
    # The bound is below the truth, and not far below it (4 sd of p_hat).
    sd = np.sqrt(p_true * (1 - p_true) / 20_000)
    self.assertTrue(np.all(certificate.p_lower <= p_true))
    self.assertTrue(np.all(certificate.p_lower >= p_true - 6 * sd - 1e-3))
    far = np.abs(distances) >= 0.1
    np.testing.assert_array_equal(
      certificate.labels[far], (distances[far] > 0).astype(int)
    )
    self.assertTrue(np.all(certificate.radius[far] <= np.abs(distances[far])))
    np.testing.assert_allclose(
      certificate.radius[far], np.abs(distances[far]), atol=0.02
    )
    # On the boundary p_A = 1/2: no certificate.
    self.assertEqual(certificate.labels[3], smoothing.ABSTAIN)
    self.assertEqual(certificate.radius[3], 0.0)

  def test_predict_abstains_only_near_the_boundary(self):
    w, images, distances = _problem()
    labels = smoothing.predict(
      jax.random.key(1),
      _logits_fn(w),
      jnp.asarray(images),
      sigma=SIGMA,
      num_samples=2000,
      alpha=0.001,
    )
    self.assertEqual(labels[3], smoothing.ABSTAIN)
    far = np.abs(distances) >= 0.1
    np.testing.assert_array_equal(labels[far], (distances[far] > 0).astype(int))

  def test_bad_arguments(self):
    w, images, _ = _problem()
    fn, x, key = _logits_fn(w), jnp.asarray(images), jax.random.key(0)
    for kwargs, message in (
      (dict(sigma=0.0, num_samples=10), "sigma"),
      (dict(sigma=0.1, num_samples=0), "num_samples"),
      (dict(sigma=0.1, num_samples=10, alpha=1.5), "alpha"),
    ):
      with self.subTest(message), self.assertRaisesRegex(ValueError, message):
        smoothing.predict(key, fn, x, **kwargs)
    with self.assertRaisesRegex(ValueError, r"\[0, 1\]"):
      smoothing.certify(key, fn, x + 2.0, sigma=0.1, num_estimate=10)


if __name__ == "__main__":
  absltest.main()
