"""The eps rule's refusals and its edge cases (the closed-form answer on a
linear model is checked through the Section 4 engine in section4_test)."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from stochjax import eps_rule


def _logits(images):
  z = jnp.sum(images - 0.5, axis=(1, 2, 3))
  return jnp.stack([z, -z], axis=-1)


class WorkingEpsTest(parameterized.TestCase):
  @parameterized.parameters(
    dict(candidates=(), message="increase"),
    dict(candidates=(0.1, 0.05), message="increase"),
    dict(candidates=(0.0, 0.1), message="increase"),
    dict(candidates=(0.5, 2.0), message="increase"),
  )
  def test_refuses_bad_candidates(self, candidates, message):
    images = np.full((2, 2, 2, 1), 0.6, np.float32)
    with self.assertRaisesRegex(ValueError, message):
      eps_rule.working_eps(
        jax.random.key(0), _logits, images, [0, 0],
        candidates=candidates, min_success=0.9,
      )  # fmt: skip

  def test_refuses_a_success_outside_zero_one(self):
    images = np.full((2, 2, 2, 1), 0.6, np.float32)
    with self.assertRaisesRegex(ValueError, "min_success"):
      eps_rule.working_eps(
        jax.random.key(0), _logits, images, [0, 0],
        candidates=(0.1,), min_success=90,
      )  # fmt: skip

  def test_no_correct_image_picks_nothing(self):
    images = np.full((3, 2, 2, 1), 0.6, np.float32)  # All class 0.
    sweep = eps_rule.working_eps(
      jax.random.key(0), _logits, images, [1, 1, 1],
      candidates=(0.1, 0.2), min_success=0.9,
    )  # fmt: skip
    self.assertIsNone(sweep["picked"])
    self.assertEqual(sweep["n"], 0)

  def test_no_candidate_reaching_the_rule_picks_the_largest(self):
    # Margin 0.3 per pixel: no radius below 0.3 flips any image.
    images = np.full((4, 2, 2, 1), 0.8, np.float32)
    sweep = eps_rule.working_eps(
      jax.random.key(0), _logits, images, [0] * 4,
      candidates=(0.05, 0.1), min_success=0.5, num_steps=10,
    )  # fmt: skip
    self.assertEqual(sweep["success"], [0.0, 0.0])
    self.assertEqual(sweep["picked"], 0.1)


if __name__ == "__main__":
  absltest.main()
