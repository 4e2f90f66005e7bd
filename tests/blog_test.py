"""The blog's black-box claim: the decision rule on synthetic arms whose
outcomes are set per image, the report's lines, the driver's curves,
figure and budget check."""

import os

import numpy as np
from absl.testing import absltest, parameterized

from stochjax import analysis, stats
from stochjax.configs import blackbox as blackbox_config
from stochjax.harness import blog, verdicts
from stochjax.harness import workdir as workdir_lib
from stochjax.paper import blackbox

N_CAL, N_EVAL = 120, 240


def _arm(defense, kind, k, m, rate, *, fraction=0.0, seed=0, retained=None):
  """An arm whose first ``rate`` of the images succeed (calibration and
  evaluation alike); `retained` evaluation positions (default all)."""
  rng = np.random.default_rng(seed)
  evaluation = list(range(N_CAL, N_CAL + N_EVAL)) if retained is None else (
    retained)  # fmt: skip
  per_sample = list(rng.permutation(len(evaluation)) < rate * len(evaluation))
  return {
    "defense": defense, "goal": "untargeted", "k": k, "m": m,
    "step_fraction": fraction, "ablation": False, "attack": kind,
    "calibration": {"successes": int(rate * N_CAL), "n": N_CAL},
    "evaluation": {"indices": evaluation,
                   "per_sample": [bool(s) for s in per_sample]},
  }  # fmt: skip


def _arms(defense, undefended, square, eot, pgd, seed=0):
  b = analysis.BLOG_BUDGET
  m = analysis.BLOG_EOT_SAMPLES
  # Success nests: an image Square breaks, the stronger arms break too.
  return [
    _arm(defense, "square_undefended", b, 1, undefended, seed=seed),
    _arm(defense, "square", b, 1, square, seed=seed),
    _arm(defense, "eot_square", b // m, m, eot, seed=seed),
    _arm(defense, "pgd", 10, 10, pgd, fraction=0.25, seed=seed),
    _arm(defense, "pgd", 10, 10, pgd / 2, fraction=0.5, seed=seed),
  ]


def _decide(*arm_lists):
  runs = [
    verdicts.Run("blackbox", seed, {"arms": arms})
    for seed, arms in enumerate(arm_lists)
  ]
  return blog.decide(runs)


class BlogDecisionTest(parameterized.TestCase):
  @parameterized.named_parameters(
    # undefended, Square, EOT-Square, PGD x EOT success.
    ("both_hold", (0.9, 0.3, 0.4, 0.9), "supported"),
    ("whitebox_fails", (0.9, 0.3, 0.4, 0.3), "not supported"),
    ("no_harder", (0.5, 0.5, 0.5, 0.9), "not supported"),
  )
  def test_the_intersection_union_of_both_questions(self, rates, expected):
    decided = _decide(_arms("noise", *rates))
    (entry,) = decided["defenses"]
    self.assertEqual(entry["decision"], expected)
    harder = entry["questions"]["blackbox_harder"]
    # d = undefended - defended Square, on the same images.
    self.assertAlmostEqual(
      harder["difference"]["estimate"], rates[0] - rates[1], places=6
    )
    white = entry["questions"]["whitebox_works"]
    self.assertEqual(white["b"]["label"].split(",")[1].strip(), "step eps*0.25")
    self.assertEqual(decided["level"], 1 - 2 * analysis.PLAN.alpha)

  def test_the_level_is_bonferroni_over_defenses_and_p_is_holm(self):
    decided = _decide(
      _arms("a", 0.9, 0.3, 0.4, 0.9) + _arms("b", 0.9, 0.8, 0.8, 0.95)
    )
    self.assertEqual(decided["level"], 1 - 2 * analysis.PLAN.alpha / 2)
    records = [d["questions"]["blackbox_harder"] for d in decided["defenses"]]
    np.testing.assert_allclose(
      [r["p_holm"] for r in records],
      stats.holm([r["p_one_sided"] for r in records]),
    )

  def test_pairs_on_images_both_arms_retained_and_pools_seeds(self):
    arms = _arms("noise", 0.9, 0.3, 0.4, 0.9)
    arms[0] = _arm("noise", "square_undefended", analysis.BLOG_BUDGET, 1, 0.9,
                   retained=list(range(N_CAL, N_CAL + 200)))  # fmt: skip
    decided = _decide(arms, _arms("noise", 0.9, 0.3, 0.4, 0.9, seed=1))
    harder = decided["defenses"][0]["questions"]["blackbox_harder"]
    self.assertEqual([s["n"] for s in harder["per_seed"]], [200, N_EVAL])
    self.assertEqual(harder["a"]["n"], 200 + N_EVAL)

  def test_screens_and_missing_arms(self):
    few = [dict(a, evaluation={"indices": a["evaluation"]["indices"][:50],
                               "per_sample": a["evaluation"]["per_sample"][:50]})
           for a in _arms("noise", 0.9, 0.3, 0.4, 0.9)]  # fmt: skip
    self.assertEqual(_decide(few)["defenses"][0]["decision"], "untestable")
    saturated = _arms("noise", 0.99, 0.98, 0.98, 0.99)
    self.assertEqual(
      _decide(saturated)["defenses"][0]["decision"], "untestable"
    )
    missing = [a for a in _arms("noise", 0.9, 0.3, 0.4, 0.9)
               if a["attack"] != "pgd"]  # fmt: skip
    self.assertEqual(_decide(missing)["defenses"][0]["decision"], "not run")
    self.assertIsNone(blog.decide([verdicts.Run("fig1", 0, {"arms": []})]))

  def test_a_seeds_parts_pool_and_may_not_repeat_an_arm(self):
    split = {"calibration_indices": [0], "evaluation_indices": [1]}
    runs = [
      verdicts.Run("blackbox", 0, {"arms": _arms("a", 0.9, 0.3, 0.4, 0.9),
                                   "split": split}),
      verdicts.Run("blackbox", 0, {"arms": _arms("b", 0.9, 0.3, 0.4, 0.9),
                                   "split": split}),
    ]  # fmt: skip
    decided = blog.decide(runs)
    self.assertEqual([d["defense"] for d in decided["defenses"]], ["a", "b"])
    self.assertEqual(decided["seeds"], [0])
    with self.assertRaisesRegex(ValueError, "both hold arms"):
      blog.decide([runs[0], runs[0]])
    other = verdicts.Run("blackbox", 0, {"arms": [], "split": {"x": 1}})
    with self.assertRaisesRegex(ValueError, "splits differ"):
      blog.decide([runs[0], other])

  def test_report_lines(self):
    decided = _decide(_arms("noise", 0.9, 0.3, 0.4, 0.9))
    text = "\n".join(blog.lines(decided))
    self.assertIn("| noise | **supported** | yes:", text)
    self.assertIn("EOT-Square", text)
    self.assertEqual(blog.lines(None), [])
    split = {"calibration_indices": [0], "evaluation_indices": [1]}
    runs = [
      verdicts.Run("blackbox", 0, {"arms": _arms(name, *rates),
                                   "split": split})
      for name, rates in (("a", (0.9, 0.3, 0.4, 0.9)),
                          ("b", (0.9, 0.3, 0.4, 0.3)),
                          ("c", (0.9, 0.3, 0.4, 0.9)))
    ]  # fmt: skip
    (line,) = blog.summary(blog.decide(runs))
    self.assertIn(": supported for a, c; not supported for b (seeds 0).", line)
    self.assertEqual(blog.summary(None), [])


class DriverPartsTest(absltest.TestCase):
  def test_curves_and_figure(self):
    arms = _arms("noise", 0.9, 0.3, 0.4, 0.9)
    curves = blackbox.curves(arms)
    square = curves["noise"]["square"]
    self.assertEqual(square[0]["budget"], analysis.BLOG_BUDGET)
    self.assertEqual(square[0]["successes"], int(0.3 * N_EVAL))
    self.assertEqual(
      square[0]["ci"], list(stats.rate_interval(int(0.3 * N_EVAL), N_EVAL))
    )
    self.assertLen(curves["noise"]["pgd"], 2)
    path = os.path.join(self.create_tempdir().full_path, "blackbox.png")
    blackbox.plot(curves, {"noise": 2 / 255}, path)
    self.assertGreater(os.path.getsize(path), 1000)

  def test_budgets_must_be_multiples_of_the_draws(self):
    config = blackbox_config.get_config("smoke")
    config.blackbox.budgets = (4, 7)
    work = workdir_lib.Workdir(self.create_tempdir().full_path)
    with self.assertRaisesRegex(ValueError, "multiples"):
      blackbox.run(config, work)
    self.assertFalse(os.path.exists(work.file("checkpoints")))
    blackbox.check_budgets(blackbox_config.get_config())  # the default: fine

  def test_the_default_config_holds_the_plans_budget_and_draws(self):
    config = blackbox_config.get_config()
    self.assertIn(analysis.BLOG_BUDGET, config.blackbox.budgets)
    self.assertEqual(config.blackbox.eot_samples, analysis.BLOG_EOT_SAMPLES)
    parts = (config, *map(blackbox_config.get_config, ("bart", "smoothing")))
    self.assertEqual(
      sorted(name for part in parts for name in part.defenses),
      ["bart", "noise_injection", "smoothing_0_25", "smoothing_0_50"],
    )
    self.assertLen(blackbox_config.get_config("paper").defenses, 4)


if __name__ == "__main__":
  absltest.main()
