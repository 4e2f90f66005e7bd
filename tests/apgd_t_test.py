"""APGD-T: its loss against the closed form, the targets it tries (the top
others of the clean logits, in order), untouched broken points, errors."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from stochjax import attacks
from stochjax.attacks import losses
from tests import test_utils

D, K = 12, 10


def _ranked_model(reachable_rank: int, strength: float = 30.0):
  """A linear 10-class model whose clean ranking is the same for every
  image (biases 9, 8, ..., 0 over classes 0..9) and where only the class
  ranked `reachable_rank` (0 = top) moves with the input: along the mean
  direction, by `strength` per unit. Every other target's DLR loss is flat,
  so only a run against that class can succeed."""
  weights = np.zeros((D, K), np.float32)
  weights[:, reachable_rank] = strength / D
  bias = np.arange(K, 0, -1, dtype=np.float32) - 1.0
  bias[reachable_rank] -= 0.5 * strength  # images lie near 0.5

  def logits_fn(x):
    return x.reshape(x.shape[0], -1) @ weights + bias[None]

  images = jnp.full((6, 2, 2, 3), 0.5, jnp.float32)
  images = images + test_utils.random_images(0, images.shape, -0.05, 0.05)
  return logits_fn, images, jnp.zeros((6,), jnp.int32)


class ApgdTTest(absltest.TestCase):
  def test_the_loss_is_croce_and_heins_targeted_dlr(self):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 7)).astype(np.float32)
    y, t = rng.integers(0, 7, 5), rng.integers(0, 7, 5)
    s = np.sort(z, -1)[:, ::-1]
    ref = (z[np.arange(5), t] - z[np.arange(5), y]) / (
      s[:, 0] - 0.5 * (s[:, 2] + s[:, 3]) + 1e-12
    )
    ours = losses.dlr_pair(jnp.asarray(z), jnp.stack([y, t], -1))
    np.testing.assert_allclose(ours, ref, rtol=1e-5)

  def test_targets_are_the_next_classes_in_clean_rank_order(self):
    # Class ranked 5 (0 = the label) is the only one the input can lift:
    # four targets never try it, five do.
    logits_fn, images, labels = _ranked_model(reachable_rank=5)
    for num_targets, broken in ((4, False), (5, True)):
      attack = attacks.make_apgd_t(
        eps=0.3, num_steps=20, num_targets=num_targets
      )
      adv = attack(jax.random.key(0), logits_fn, images, labels)
      pred = np.asarray(jnp.argmax(logits_fn(adv), -1))
      with self.subTest(num_targets=num_targets):
        np.testing.assert_array_equal(pred != 0, broken)
        if broken:
          np.testing.assert_array_equal(pred, 5)

  def test_spent_evaluations_equal_the_cost(self):
    logits_fn, images, labels = _ranked_model(reachable_rank=5)
    attack = attacks.make_apgd_t(eps=0.3, num_steps=5, num_targets=4)
    out = attack.with_info(jax.random.key(0), logits_fn, images, labels)
    n = len(labels)  # None breaks: every target runs.
    self.assertEqual(out.grad_evals, attack.cost.grad_evals * n)
    self.assertEqual(out.forward_evals, attack.cost.forward_evals * n)

  def test_a_point_broken_on_the_clean_image_is_not_attacked(self):
    logits_fn, images, labels = _ranked_model(reachable_rank=5)
    labels = labels.at[:2].set(3)  # misclassified already
    out = attacks.make_apgd_t(eps=0.3, num_steps=10).with_info(
      jax.random.key(0), logits_fn, images, labels
    )
    np.testing.assert_array_equal(out.images[:2], images[:2])
    self.assertEqual(out.losses.shape, (9, 10, 6))

  def test_too_few_classes_and_bad_targets(self):
    logits_fn, images, labels = _ranked_model(reachable_rank=5)
    with self.assertRaisesRegex(ValueError, "at least 10 classes"):
      attacks.make_apgd_t(eps=0.1, num_steps=2)(
        jax.random.key(0), lambda x: logits_fn(x)[:, :6], images, labels
      )
    with self.assertRaises(ValueError):
      attacks.make_apgd_t(eps=0.1, num_steps=2, num_targets=0)

  def test_second_call_does_not_recompile(self):
    _, images, labels = _ranked_model(reachable_rank=5)
    attack = attacks.make_apgd_t(eps=0.1, num_steps=3, num_targets=2)
    weights = test_utils.random_images(1, (D, K))
    first, second = test_utils.traces_for_new_weights(
      attack, images, labels, weights
    )
    self.assertEqual(first, second)


if __name__ == "__main__":
  absltest.main()
