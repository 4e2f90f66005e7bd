"""The Section 4 engine's statistics: the eps rule and paired comparisons."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl.testing import absltest

from stochjax import attacks, evaluate, stats
from stochjax.harness import grid as grid_lib
from stochjax.paper import attacked, section4


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
    grid = section4._Grid(
      config, images, labels, {"d": attacked.Attacked(logits_fn, logits_fn)}
    )
    sweep = section4.eps_sweep(grid, "d", jax.random.key(0))
    expected = [float(np.mean(margins < eps)) for eps in candidates]
    np.testing.assert_allclose(sweep["success"], expected)
    rule = next(
      e for e, s in zip(candidates, expected, strict=True) if s >= 0.9
    )
    self.assertEqual(sweep["picked"], rule)
    self.assertEqual(sweep["n"], 100)
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

  def test_comparisons_are_paired_tests_on_one_sample_set(self):
    config = ml_collections.ConfigDict(
      dict(experiment="x", seed=3, defenses=dict(d=dict(claim="i")))
    )
    a = [True] * 30 + [False] * 10
    b = [True] * 10 + [False] * 30

    def cell(per_sample, k, m):
      cost = attacks.Cost(k, m, 1, k * m, 0)
      return evaluate.Evaluation(
        num_samples=50, benign_accuracy=0.8, benign_success_rate=0.2,
        retained_indices=tuple(range(40)),
        attack=evaluate.AttackOutcome(
          float(np.mean(per_sample)), tuple(per_sample), cost, k
        ),
      ).to_json()  # fmt: skip

    cells = {"p/k=50/m=1": cell(a, 50, 1), "p/k=10/m=5": cell(b, 10, 5)}
    pair = {"budget": 50, "no_eot": {"k": 50, "m": 1}, "eot": {"k": 10, "m": 5}}
    (record,) = section4.comparisons(
      config, cells, "p", "d", "untargeted", [pair]
    )
    self.assertEqual(record["test"], "mcnemar")
    self.assertEqual((record["only_a"], record["only_b"]), (20, 0))
    self.assertEqual(record["p_value"], stats.paired_test(a, b))
    self.assertEqual(record["verdict"], "a")
    self.assertEqual((record["claim"], record["seed"]), ("i", 3))
    cells["p/k=10/m=5"]["retained_indices"] = list(range(1, 41))
    with self.assertRaisesRegex(ValueError, "retained other samples"):
      section4.comparisons(config, cells, "p", "d", "untargeted", [pair])


if __name__ == "__main__":
  absltest.main()
