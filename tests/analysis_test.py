"""The analysis plan's decision rules: every decision follows from its
numbers, and the plan is one fixed, hashed value."""

import numpy as np
from absl.testing import absltest

from stochjax import analysis, stats
from stochjax.data import splits


class RegionTest(absltest.TestCase):
  def test_every_random_interval_gets_the_region_its_numbers_say(self):
    rng = np.random.default_rng(0)
    margin = 0.05
    for _ in range(5000):
      low, high = np.sort(rng.uniform(-0.3, 0.3, 2))
      r = analysis.region(low, high, margin)
      if high < 0:
        self.assertEqual(r, "below")
      elif low > 0:
        self.assertEqual(r, "above_within" if high < margin else "above")
      elif high < margin:
        self.assertEqual(r, "within" if low > -margin else "not_above")
      else:
        self.assertEqual(r, "inconclusive")
      # Claim (i) is supported exactly when no EOT is non-inferior.
      self.assertEqual(analysis.claim_i(r) == "supported", high < margin)
      self.assertEqual(
        analysis.claim_i(r) == "not supported", low > 0 and high >= margin
      )
      # Claim (iii) is supported exactly when the gap closes.
      self.assertEqual(analysis.claim_iii(r) == "supported", low > 0)

  def test_decisions_from_random_counts(self):
    # From paired outcomes to the words: the interval decides, at the
    # plan's level; a tie with a wide interval is never "supported".
    rng = np.random.default_rng(1)
    level = analysis.PLAN.interval_level("i")
    for _ in range(300):
      n = int(rng.integers(20, 300))
      a = rng.random(n) < rng.uniform(0.2, 0.9)
      b = np.where(rng.random(n) < 0.1, ~a, a)
      _, low, high = stats.paired_difference_interval(a, b, level)
      decision = analysis.claim_i(analysis.region(low, high, 0.05))
      self.assertEqual(decision == "supported", high < 0.05)

  def test_claim_ii_is_an_intersection_union(self):
    ok = [("superiority", "above"), ("non_inferiority", "within")]
    self.assertEqual(analysis.claim_ii(ok), "supported")
    weak_fails = [("superiority", "above"), ("non_inferiority", "above")]
    self.assertEqual(analysis.claim_ii(weak_fails), "not supported")
    strong_open = [
      ("superiority", "inconclusive"),
      ("non_inferiority", "within"),
    ]
    self.assertEqual(analysis.claim_ii(strong_open), "inconclusive")
    strong_fails = [("superiority", "within"), ("non_inferiority", "within")]
    self.assertEqual(analysis.claim_ii(strong_fails), "not supported")
    self.assertEqual(
      analysis.claim_ii([("superiority", "untestable")] + ok[1:]), "untestable"
    )

  def test_bad_intervals_are_refused(self):
    for low, high in ((0.2, 0.1), (float("nan"), 0.1)):
      with self.assertRaises(ValueError):
        analysis.region(low, high, 0.05)


class PlanTest(absltest.TestCase):
  def test_families_and_levels(self):
    plan = analysis.PLAN
    self.assertLen(plan.family("i"), 11)
    self.assertLen(plan.family("ii"), 3)
    self.assertLen(plan.family("iii"), 18)
    self.assertAlmostEqual(plan.interval_level("i"), 1 - 0.1 / 11)
    self.assertAlmostEqual(plan.interval_level("ii"), 0.9)
    for p in plan.family("i") + plan.family("ii"):
      # Every primary comparison is at equal budget, no EOT against EOT.
      self.assertEqual(p.no_eot[0] * p.no_eot[1], p.eot[0] * p.eot[1])
      self.assertEqual(p.no_eot[1], 1)
      self.assertGreater(p.eot[1], 1)

  def test_digest_is_stable_and_changes_with_the_plan(self):
    plan = analysis.PLAN
    self.assertEqual(plan.digest(), analysis.Plan().digest())
    self.assertNotEqual(plan.digest(), analysis.Plan(margin=0.04).digest())

  def test_step_choice_takes_the_best_and_the_first_on_ties(self):
    self.assertEqual(
      analysis.choose_step([0.125, 0.25, 0.5], [0.6, 0.7, 0.7]), 0.25
    )
    with self.assertRaises(ValueError):
      analysis.choose_step([0.25], [0.1, 0.2])

  def test_saturation_screen(self):
    self.assertTrue(analysis.saturated(0.96, 1.0))
    self.assertTrue(analysis.saturated(0.0, 0.05))
    self.assertFalse(analysis.saturated(0.96, 0.9))


class SplitTest(absltest.TestCase):
  def test_calibration_and_evaluation_are_disjoint_and_cover(self):
    for seed in range(5):
      calibration, evaluation = splits.calibration_split(360, seed, 120)
      self.assertLen(calibration, 120)
      self.assertEmpty(np.intersect1d(calibration, evaluation))
      np.testing.assert_array_equal(
        np.sort(np.concatenate([calibration, evaluation])), np.arange(360)
      )
    a, _ = splits.calibration_split(360, 0, 120)
    b, _ = splits.calibration_split(360, 1, 120)
    self.assertFalse(np.array_equal(a, b))
    with self.assertRaises(ValueError):
      splits.calibration_split(10, 0, 10)

  def test_seeds_redraw_the_digits_partition(self):
    from stochjax import data  # noqa: PLC0415

    zero = data.load("digits", "test")
    same = data.load("digits", "test", seed=0)
    one = data.load("digits", "test", seed=1)
    np.testing.assert_array_equal(zero.images, same.images)
    self.assertFalse(np.array_equal(zero.images, one.images))
    train_one = data.load("digits", "train", seed=1)
    self.assertEqual(len(train_one.labels) + len(one.labels), 1797)
    # Train and test of one seed are disjoint images.
    flat = {img.tobytes() for img in train_one.images}
    overlap = sum(img.tobytes() in flat for img in one.images)
    # The digits hold a few exact duplicates; far fewer than a split leak.
    self.assertLess(overlap, 10)
    with self.assertRaises(ValueError):
      data.load("cifar10", "test", data_dir="/nonexistent", seed=1)


if __name__ == "__main__":
  absltest.main()
