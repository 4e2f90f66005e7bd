"""Exact intervals and tests against SciPy and closed forms."""

import math

import numpy as np
import scipy.stats
from absl.testing import absltest, parameterized

from stochjax import stats


class RateIntervalTest(parameterized.TestCase):
  @parameterized.parameters((0, 10), (3, 10), (10, 10), (16, 28), (180, 200))
  def test_matches_scipy_exact_interval(self, k, n):
    expected = scipy.stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    low, high = stats.rate_interval(k, n)
    self.assertAlmostEqual(low, expected.low, places=10)
    self.assertAlmostEqual(high, expected.high, places=10)

  def test_closed_forms_at_the_edges(self):
    # k = 0: the upper end solves (1 - p)^n = alpha / 2.
    _, high = stats.rate_interval(0, 20)
    self.assertAlmostEqual(high, 1 - 0.025 ** (1 / 20), places=10)
    low, _ = stats.rate_interval(20, 20)
    self.assertAlmostEqual(low, 0.025 ** (1 / 20), places=10)
    self.assertEqual(stats.rate_interval(0, 0), (0.0, 1.0))

  def test_coverage_is_at_least_the_level(self):
    # Exact intervals never under-cover: the probability, under p, that
    # the interval of k ~ Binomial(n, p) contains p is >= 0.95.
    n = 30
    intervals = [stats.rate_interval(k, n) for k in range(n + 1)]
    for p in (0.05, 0.3, 0.5, 0.83):
      cover = sum(
        scipy.stats.binom.pmf(k, n, p)
        for k, (lo, hi) in enumerate(intervals)
        if lo <= p <= hi
      )
      self.assertGreaterEqual(cover, 0.95 - 1e-12)

  def test_bad_counts(self):
    for args in ((5, 3), (-1, 3), (1.5, 3)):
      with self.subTest(args), self.assertRaisesRegex(ValueError, "successes"):
        stats.rate_interval(*args)
    with self.assertRaisesRegex(ValueError, "level"):
      stats.rate_interval(1, 3, level=1.5)


class PairedTestTest(absltest.TestCase):
  def test_mcnemar_is_the_binomial_test_of_discordant_pairs(self):
    rng = np.random.default_rng(0)
    a = rng.random(200) < 0.6
    b = a.copy()
    flip = rng.random(200) < 0.15
    b[flip] = ~b[flip]
    only_a, only_b = stats.discordant(a, b)
    self.assertEqual(only_a, int(np.sum(a & ~b)))
    self.assertEqual(only_a + only_b, int(np.sum(a != b)))
    expected = scipy.stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
    self.assertAlmostEqual(stats.paired_test(a, b), expected, places=12)

  def test_closed_form_one_sided_run(self):
    # 6 discordant pairs, all favouring a: p = 2 * 0.5^6.
    a = np.array([True] * 6 + [False] * 4)
    b = np.zeros(10, bool)
    self.assertAlmostEqual(stats.paired_test(a, b), 2 * 0.5**6, places=12)
    self.assertEqual(stats.paired_test(a, a), 1.0)

  def test_refuses_unpaired_shapes(self):
    with self.assertRaisesRegex(ValueError, "one length"):
      stats.paired_test(np.zeros(3, bool), np.zeros(4, bool))


class UnpairedTestTest(absltest.TestCase):
  def test_matches_scipy_fisher(self):
    expected = scipy.stats.fisher_exact([[30, 70], [45, 55]]).pvalue
    self.assertAlmostEqual(stats.unpaired_test(30, 100, 45, 100), expected)


class CompareTest(absltest.TestCase):
  def test_verdict_follows_the_p_value(self):
    a = np.array([True] * 40 + [False] * 60)
    b = np.array([True] * 5 + [False] * 95)
    record = stats.compare("no EOT", a, "EOT", b, paired=True, claim="i")
    self.assertEqual(record["claim"], "i")
    self.assertEqual(record["test"], "mcnemar")
    self.assertEqual((record["only_a"], record["only_b"]), (35, 0))
    self.assertLess(record["p_value"], 0.05)
    self.assertEqual(record["verdict"], "a")
    self.assertEqual(record["a"]["successes"], 40)
    low, high = record["a"]["ci"]
    self.assertTrue(low < 0.4 < high)
    tie = stats.compare("x", a[:10], "y", a[:10][::-1], paired=True)
    self.assertEqual(tie["verdict"], "tie")
    fisher = stats.compare("x", a, "y", b[:50], paired=False)
    self.assertEqual(fisher["test"], "fisher")
    self.assertNotIn("only_a", fisher)
    self.assertEqual(
      fisher["p_value"],
      scipy.stats.fisher_exact([[40, 60], [5, 45]]).pvalue,
    )

  def test_format_rate(self):
    text = stats.format_rate(16, 28)
    self.assertTrue(text.startswith("57.1 % ["), text)
    self.assertIn("(16/28)", text)
    self.assertFalse(math.isnan(stats.side("a", 0, 1)["rate"]))


if __name__ == "__main__":
  absltest.main()


def _paired_table(both, only_first, only_second, neither):
  """Outcome vectors (first, second) of a paired 2x2 table."""
  first = [True] * both + [True] * only_first + [False] * only_second
  second = [True] * both + [False] * only_first + [True] * only_second
  first += [False] * neither
  second += [False] * neither
  return np.array(first), np.array(second)


class DifferenceIntervalTest(parameterized.TestCase):
  def test_paired_matches_published_example(self):
    # Fagerland, Lydersen & Laake (2017), Table 8.x (Cavo et al. 2012):
    # 59, 6 / 16, 80; Newcombe square-and-add -0.0621 (-0.1186, -0.0046)
    # for p1+ - p+1 (first minus second measurement).
    first, second = _paired_table(59, 6, 16, 80)
    estimate, low, high = stats.paired_difference_interval(second, first)
    self.assertAlmostEqual(estimate, -10 / 161, places=10)
    self.assertAlmostEqual(low, -0.1186, places=4)
    self.assertAlmostEqual(high, -0.0046, places=4)

  @parameterized.parameters(
    # Newcombe (1998b) example (a): 56/70 - 48/80, method 10.
    (56, 70, 48, 80, 0.0524, 0.3339),
    # Fagerland et al. (2017), Perondi et al. (2004): 7/34 - 1/34.
    (7, 34, 1, 34, 0.0189, 0.3404),
  )
  def test_unpaired_matches_published_examples(self, kb, nb, ka, na, lo, hi):
    estimate, low, high = stats.unpaired_difference_interval(kb, nb, ka, na)
    self.assertAlmostEqual(estimate, kb / nb - ka / na, places=12)
    self.assertAlmostEqual(low, lo, places=4)
    self.assertAlmostEqual(high, hi, places=4)

  def test_wilson_matches_scipy(self):
    for k, n in ((0, 10), (3, 10), (56, 70)):
      expected = scipy.stats.binomtest(k, n).proportion_ci(0.95, "wilson")
      low, high = stats.wilson_interval(k, n)
      self.assertAlmostEqual(low, expected.low, places=10)
      self.assertAlmostEqual(high, expected.high, places=10)

  def test_paired_interval_widens_with_level_and_contains_estimate(self):
    rng = np.random.default_rng(0)
    for _ in range(50):
      a, b = rng.random(60) < 0.5, rng.random(60) < 0.6
      e, l95, h95 = stats.paired_difference_interval(a, b, 0.95)
      _, l99, h99 = stats.paired_difference_interval(a, b, 0.99)
      self.assertLessEqual(l99, l95)
      self.assertGreaterEqual(h99, h95)
      self.assertTrue(l95 <= e <= h95)
      self.assertTrue(-1 <= l99 and h99 <= 1)


class OneSidedAndHolmTest(absltest.TestCase):
  def test_mcnemar_one_sided_is_the_binomial_tail(self):
    first, second = _paired_table(10, 2, 9, 5)
    # P(X >= 9), X ~ Bin(11, 1/2).
    expected = sum(math.comb(11, j) for j in range(9, 12)) / 2**11
    self.assertAlmostEqual(stats.mcnemar_one_sided(first, second), expected)
    self.assertGreater(stats.mcnemar_one_sided(second, first), 0.9)
    self.assertEqual(stats.mcnemar_one_sided(first, first), 1.0)

  def test_holm_by_hand(self):
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06,
    # 0.04 -> monotone 0.02, 0.03, 0.06, 0.06.
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([0.5, 0.9]), [1.0, 1.0])
    with self.assertRaises(ValueError):
      stats.holm([0.1, float("nan")])


class SignFlipTest(parameterized.TestCase):
  @parameterized.parameters(
    ([1, 1, 1, 0, -1, 2],), ([2, -2, 1, 1],), ([-1, -1],), ([0, 0],),
    ([1, 2, 2, -1, 1, 0, 1],),
  )  # fmt: skip
  def test_equals_brute_force_enumeration(self, values):
    v = np.array(values)
    observed = v.sum()
    signs = np.array(list(np.ndindex(*([2] * v.size)))) * 2 - 1
    flipped = (signs * np.abs(v)).sum(axis=1)
    expected = float(np.mean(flipped >= observed))
    self.assertAlmostEqual(stats.sign_flip_test(v), expected, places=12)

  def test_rejects_non_integers(self):
    with self.assertRaises(ValueError):
      stats.sign_flip_test(np.array([0.5, 1.0]))

  def test_bootstrap_interval_is_reproducible_and_covers_the_mean(self):
    v = np.array([1] * 30 + [0] * 50 + [-1] * 20)
    a = stats.bootstrap_interval(v, 0.95, num_resamples=2000, seed=3)
    self.assertEqual(a, stats.bootstrap_interval(v, 0.95, num_resamples=2000,
                                                 seed=3))  # fmt: skip
    mean, low, high = a
    self.assertAlmostEqual(mean, 0.1)
    self.assertTrue(low < mean < high)
    # The normal approximation's half-width, within sampling error.
    half = 1.96 * v.std() / np.sqrt(v.size)
    self.assertAlmostEqual((high - low) / 2, half, delta=0.02)
