"""The Section 4 engine's statistics: the eps rule and paired comparisons."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl.testing import absltest

from stochjax import attacks, evaluate
from stochjax.configs import eps_sensitivity as eps_sensitivity_config
from stochjax.harness import grid as grid_lib
from stochjax.paper import attacked, eps_sensitivity, section4


def _signed_mean(bias, images):
  """Class 0 when the pixels' mean exceeds 0.5: z = sum(x - 0.5)."""
  z = jnp.sum(images - 0.5, axis=(1, 2, 3)) + bias
  return jnp.stack([z, -z], axis=-1)


class EpsRuleTest(absltest.TestCase):
  def test_sweep_picks_the_rules_answer_on_a_linear_model(self):
    # Every pixel of image i sits d_i above 0.5, so an linf attack of
    # radius eps (pushing every pixel down) flips it exactly when eps > d_i:
    # PGD with steps of eps/4 reaches that corner within 50 steps.
    margins = (np.arange(100) + 0.5) / 100 * 0.2
    images = np.broadcast_to(
      (0.5 + margins)[:, None, None, None], (100, 2, 2, 1)
    ).astype(np.float32)
    labels = np.zeros(100, np.int32)
    candidates = (0.05, 0.1, 0.15, 0.175, 0.185, 0.19, 0.2)
    config = ml_collections.ConfigDict(
      dict(
        defenses=dict(d=dict(weights="", model="m")),
        eps_rule=dict(
          candidates=candidates,
          num_steps=50,
          step_fraction=0.25,
          min_success=0.9,
          num_examples=100,
        ),
      )
    )
    logits_fn = jax.tree_util.Partial(_signed_mean, jnp.float32(0.0))
    # The rule reads the calibration images only: here the even positions.
    calibration = np.arange(0, 100, 2)
    grid = section4.Grid(
      config,
      images,
      labels,
      {"d": attacked.Attacked(logits_fn, logits_fn)},
      {"calibration": calibration, "evaluation": calibration + 1},
    )
    sweep = section4.eps_sweep(grid, "d", jax.random.key(0))
    margins = margins[calibration]
    expected = [float(np.mean(margins < eps)) for eps in candidates]
    np.testing.assert_allclose(sweep["success"], expected)
    rule = next(
      e for e, s in zip(candidates, expected, strict=True) if s >= 0.9
    )
    self.assertEqual(sweep["picked"], rule)
    self.assertEqual(sweep["n"], 50)
    for (low, high), rate in zip(sweep["ci"], expected, strict=True):
      self.assertTrue(low <= rate <= high)


class GridTest(absltest.TestCase):
  def test_budget_keeps_the_equal_budget_pairs(self):
    steps, draws = [10, 20, 50, 100], [1, 5, 10]
    kept = {m: grid_lib.in_budget(steps, m, 100) for m in draws}
    self.assertEqual(kept, {1: steps, 5: [10, 20], 10: [10]})
    rates = np.full((3, 4), np.nan)
    for i, m in enumerate(draws):
      for k in kept[m]:
        rates[i, steps.index(k)] = 0.5
    pairs = section4.equal_budget(rates, steps, draws)
    self.assertEqual(
      sorted((p["no_eot"]["k"], p["eot"]["k"], p["eot"]["m"]) for p in pairs),
      [(50, 10, 5), (100, 10, 10), (100, 20, 5)],
    )

  def test_grid_arms_split_calibration_from_evaluation(self):
    config = ml_collections.ConfigDict(
      dict(defenses=dict(d=dict(spec="identity")),
           grid=dict(steps=(10, 50), eot_samples=(1, 5),
                     step_fractions=(0.25,)))
    )  # fmt: skip
    per_sample = [True] * 30 + [False] * 10

    def cell(k, m):
      cost = attacks.Cost(k, m, 1, k * m, 0)
      return evaluate.Evaluation(
        num_samples=50, benign_accuracy=0.8, benign_success_rate=0.2,
        retained_indices=tuple(range(5, 45)),
        attack=evaluate.AttackOutcome(
          float(np.mean(per_sample)), tuple(per_sample), cost, k
        ),
      ).to_json()  # fmt: skip

    cells = {
      "d/untargeted/step=0.25eps/k=50/m=1": cell(50, 1),
      "d/untargeted/step=0.25eps/k=10/m=5": cell(10, 5),
      "undefended_control/d/untargeted": cell(50, 1),
    }
    calibration = np.arange(0, 50, 5)
    grid = section4.Grid(config, None, None, {}, {"calibration": calibration})
    found = section4.grid_arms(grid, cells)
    self.assertLen(found, 2)
    first = next(a for a in found if a["m"] == 1)
    self.assertEqual((first["k"], first["step_fraction"]), (50, 0.25))
    # Retained positions 5..44: calibration 5, 10, ..., 40 (8 images, the
    # first 6 of them successes); evaluation the other 32.
    self.assertEqual(first["calibration"], {"successes": 6, "n": 8})
    self.assertEqual(len(first["evaluation"]["indices"]), 32)
    self.assertEmpty(set(first["evaluation"]["indices"]) & set(calibration))


class EpsSensitivityRowsTest(absltest.TestCase):
  def test_rows_are_the_primary_pair_at_each_eps_and_step(self):
    # The CPU default's four parts: together, every defense and goal of
    # the plan's pairs, no row twice, each part 24 rows (within 30 min).
    rows = []
    for part in (None, *eps_sensitivity_config.PARTS):
      config = eps_sensitivity_config.get_config(part)
      mine = eps_sensitivity.rows(section4.Grid(config, None, None, {}, {}))
      self.assertLen(mine, 4 * 3 * 2, part)
      rows += mine
    goals = {(name, goal) for name, goal, *_ in rows}
    self.assertEqual(goals, {
      ("noise_injection", "untargeted"), ("noise_injection", "targeted"),
      ("smoothing_0_25", "targeted"), ("smoothing_0_50", "targeted"),
    })  # fmt: skip
    # Per panel: 4 radii x 3 steps x (PGD-100 x 1 with its k=10 snapshot,
    # PGD-10 x 10).
    self.assertEqual({(m, steps) for *_, m, steps in rows},
                     {(1, (10, 100)), (10, (10,))})  # fmt: skip
    radii = {name: {round(255 * eps) for n, _, eps, *_ in rows if n == name}
             for name in ("noise_injection", "smoothing_0_50")}  # fmt: skip
    self.assertEqual(radii["noise_injection"], {1, 2, 4, 8})
    # Smoothing from 4/255 up to the 32/255 its eps rule picked.
    self.assertEqual(radii["smoothing_0_50"], {4, 8, 16, 32})
    names = {eps_sensitivity.panel(n, g, e, f) for n, g, e, f, *_ in rows}
    self.assertLen(names, 4 * 4 * 3)
    self.assertIn(
      "eps=2/noise_injection/targeted/step=0.25eps",
      names,
    )
    # :paper: every defense and goal at 1-8/255 in one run.
    paper = eps_sensitivity_config.get_config("paper")
    rows = eps_sensitivity.rows(section4.Grid(paper, None, None, {}, {}))
    self.assertLen(rows, 4 * 4 * 3 * 2)

  def test_bad_radii_are_refused_before_any_work(self):
    config = eps_sensitivity_config.get_config("smoke")
    for radii, message in (((0.0,), "positive"),
                           ((2 / 255, 2.00001 / 255), "share a cell name")):  # fmt: skip
      config.eps_values = radii
      with self.assertRaisesRegex(ValueError, message):
        eps_sensitivity.run(config, work=None)


if __name__ == "__main__":
  absltest.main()
