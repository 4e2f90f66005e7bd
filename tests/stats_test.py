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
