"""The vmap-friendly Poisson sampler against scipy's Poisson distribution."""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from absl.testing import absltest, parameterized

from stochjax import poisson
from stochjax.defenses import noise
from tests import test_utils


class PoissonTest(parameterized.TestCase):
  @parameterized.parameters(0.0, 0.3, 4.0, 9.99, 10.0, 37.5, 900.0, 4096.0)
  # Default tier: each side of the switch from the inverse CDF to
  # the transformed rejection at 10; the other rates in the slow tier.
  @test_utils.slow_cases(0, 1, 2, 5, 6, 7)
  def test_distribution_matches_scipy(self, rate):
    draws = np.asarray(
      poisson.poisson(jax.random.key(0), jnp.full((40_000,), rate))
    )
    np.testing.assert_array_equal(draws, np.round(draws))
    if rate == 0:
      np.testing.assert_array_equal(draws, 0)
      return
    # Chi-square goodness of fit over bins holding >= 5 expected draws each.
    lo, hi = scipy.stats.poisson.ppf([1e-4, 1 - 1e-4], rate)
    edges = np.arange(lo, hi + 2) - 0.5
    edges[0], edges[-1] = -np.inf, np.inf
    observed = np.histogram(draws, edges)[0]
    expected = np.diff(scipy.stats.poisson.cdf(edges - 0.5, rate))
    expected = expected / expected.sum() * draws.size
    keep = expected >= 5
    statistic = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    p_value = scipy.stats.chi2.sf(statistic, keep.sum() - 1)
    self.assertGreater(p_value, 1e-4, f"rate {rate}: chi2 {statistic:.1f}")

  def test_mixed_rates_under_vmap(self):
    # Rates on both sides of the algorithm switch, per image: means and
    # variances equal the rates.
    rates = jnp.tile(jnp.array([2.0, 50.0, 700.0]), (4000, 1))
    keys = jax.random.split(jax.random.key(1), 4000)
    draws = np.asarray(jax.jit(jax.vmap(poisson.poisson))(keys, rates))
    np.testing.assert_allclose(draws.mean(0), [2.0, 50.0, 700.0], rtol=0.02)
    np.testing.assert_allclose(draws.var(0), [2.0, 50.0, 700.0], rtol=0.1)

  def test_same_key_same_draws(self):
    rates = jnp.linspace(0.0, 100.0, 1000)
    a = poisson.poisson(jax.random.key(3), rates)
    b = poisson.poisson(jax.random.key(3), rates)
    c = poisson.poisson(jax.random.key(4), rates)
    np.testing.assert_array_equal(a, b)
    self.assertTrue(np.any(np.asarray(a) != np.asarray(c)))


class UniqueCountTest(absltest.TestCase):
  def test_equals_numpy_unique(self):
    rng = np.random.default_rng(0)
    for image in (
      rng.choice([0.0, -0.0, 0.5, 1.0], (8, 8, 3)).astype(np.float32),
      rng.uniform(0, 1, (16, 16, 3)).astype(np.float32),
      np.zeros((4, 4, 3), np.float32),
    ):
      self.assertEqual(
        int(noise._unique_count(jnp.asarray(image))), len(np.unique(image))
      )


if __name__ == "__main__":
  absltest.main()
