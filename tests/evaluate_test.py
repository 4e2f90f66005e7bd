"""Majority votes and the paper's success-rate definition."""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from absl.testing import absltest

from stochjax import attacks, evaluate, prng, voting
from tests import test_utils


def _coin_defense(key, image):
  """Sets the whole image to 0 or 1 by a fair coin."""
  return jnp.broadcast_to(
    jax.random.bernoulli(key).astype(image.dtype), image.shape
  )


def _coin_logits(images):
  """Class 1 if the image is bright, class 0 otherwise (3 classes)."""
  bright = jnp.mean(images, axis=(1, 2, 3))
  return jnp.stack([1.0 - bright, bright, jnp.full_like(bright, -1.0)], -1)


class VoteTest(absltest.TestCase):
  def test_counts_match_draws_and_ignore_chunking(self):
    images = jnp.full((6, 4, 4, 3), 0.5)
    kwargs = dict(defense=_coin_defense, num_votes=9)
    counts = voting.vote_counts(
      jax.random.key(0), _coin_logits, images, chunk_size=9, **kwargs
    )
    self.assertEqual(counts.shape, (6, 3))
    np.testing.assert_array_equal(counts.sum(-1), 9)
    np.testing.assert_array_equal(counts[:, 2], 0)
    self.assertTrue(np.any(counts[:, 0] != counts[0, 0]))  # independent rows
    for chunk in (1, 2, 4):
      np.testing.assert_array_equal(
        voting.vote_counts(
          jax.random.key(0), _coin_logits, images, chunk_size=chunk, **kwargs
        ),
        counts,
      )

  def test_ties_go_to_smallest_class(self):
    images = jnp.full((64, 4, 4, 3), 0.5)
    counts = voting.vote_counts(
      jax.random.key(1),
      _coin_logits,
      images,
      defense=_coin_defense,
      num_votes=2,
    )
    votes = voting.vote(
      jax.random.key(1),
      _coin_logits,
      images,
      defense=_coin_defense,
      num_votes=2,
    )
    tied = counts[:, 0] == counts[:, 1]
    self.assertTrue(np.any(tied))
    np.testing.assert_array_equal(votes[tied], 0)

  def test_vote_equals_scipy_mode(self):
    images = jnp.full((32, 4, 4, 3), 0.5)
    key = jax.random.key(2)
    counts = voting.vote_counts(
      key, _coin_logits, images, defense=_coin_defense, num_votes=7
    )
    # Rebuild the hard labels and take scipy's mode (smallest on ties).
    hard = np.stack(
      [np.repeat(np.arange(3), row) for row in np.asarray(counts)]
    )
    mode = scipy.stats.mode(hard, axis=1).mode.ravel()
    np.testing.assert_array_equal(
      voting.vote(
        key, _coin_logits, images, defense=_coin_defense, num_votes=7
      ),
      mode,
    )


class MapImagesTest(absltest.TestCase):
  def test_invariance_in_batches_equals_one_call_in_bounded_memory(self):
    images = np.asarray(
      jax.random.uniform(jax.random.key(1), (7, 4, 4, 3)), np.float32
    )
    seen = []

    def logits_fn(x):
      seen.append(x.shape[0])  # Traced once per shape: what a call holds.
      return _coin_logits(x)

    kwargs = dict(defense=_coin_defense, num_draws=6, chunk_size=2)
    whole = voting.invariance(jax.random.key(0), logits_fn, images, **kwargs)
    self.assertIn(7 * 2, seen)
    seen.clear()
    batched = voting.map_images(
      lambda keys, f, x: voting.invariance(keys, f, x, **kwargs),
      jax.random.key(0), logits_fn, images, batch_size=3,
    )  # fmt: skip
    np.testing.assert_array_equal(batched, whole)
    self.assertTrue(np.any(batched != batched[0]))  # per-image draws
    self.assertLessEqual(max(seen), 3 * 2)

  def test_without_a_key_fn_gets_no_keys(self):
    images = np.stack([np.zeros((4, 4, 3)), np.ones((4, 4, 3))] * 3)
    labels = voting.map_images(
      voting.predict, None, _coin_logits, images.astype(np.float32),
      batch_size=4,
    )  # fmt: skip
    np.testing.assert_array_equal(labels, [0, 1] * 3)


class SoftVoteTest(absltest.TestCase):
  def test_mean_softmax_of_the_same_draws(self):
    # A noisy linear model: hard and soft votes can disagree.
    weights = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 5))

    def logits_fn(x):
      return x.reshape(x.shape[0], -1) @ weights

    def noise(key, image):
      return jnp.clip(image + 0.3 * jax.random.normal(key, image.shape), 0, 1)

    images = test_utils.random_images(1, (16, 4, 4, 3))
    key = jax.random.key(2)
    kwargs = dict(defense=noise, num_votes=7)
    soft = voting.vote_counts(
      key, logits_fn, images, chunk_size=3, aggregate="soft", **kwargs
    )
    hard = voting.vote_counts(key, logits_fn, images, **kwargs)
    # The same draws, explicitly: image i, draw j uses fold_in(fold_in(key,
    # i), j).
    probs = np.zeros((16, 5))
    for i in range(16):
      image_key = jax.random.fold_in(key, i)
      for j in range(7):
        x = noise(jax.random.fold_in(image_key, j), images[i])
        probs[i] += np.asarray(jax.nn.softmax(logits_fn(x[None])[0]))
    np.testing.assert_allclose(soft, probs, rtol=1e-5, atol=1e-5)
    self.assertEqual(soft.dtype, jnp.float32)
    np.testing.assert_array_equal(
      voting.vote(key, logits_fn, images, aggregate="soft", **kwargs),
      np.argmax(probs, -1),
    )
    self.assertEqual(hard.dtype, jnp.int32)
    with self.assertRaisesRegex(ValueError, "aggregate"):
      voting.vote_counts(key, logits_fn, images, aggregate="mean", **kwargs)


class SuccessRateTest(absltest.TestCase):
  def test_hand_made_untargeted(self):
    labels = np.array([0, 1, 2, 3])
    benign = np.array([0, 1, 0, 3])  # sample 2 already wrong: discarded
    adversarial = np.array([1, 1, 2, 0])
    benign_met = evaluate.goal_met(benign, labels)
    adv_met = evaluate.goal_met(adversarial, labels)
    rate, retained = evaluate.success_rate(benign_met, adv_met)
    self.assertEqual(retained, 3)
    self.assertAlmostEqual(rate, 2 / 3)

  def test_hand_made_targeted(self):
    labels = np.array([0, 1, 2, 3])
    targets = np.array([9, 9, 9, 9])
    benign = np.array([9, 1, 2, 3])  # sample 0 already the target
    adversarial = np.array([9, 9, 2, 9])
    rate, retained = evaluate.success_rate(
      evaluate.goal_met(benign, labels, targets),
      evaluate.goal_met(adversarial, labels, targets),
    )
    self.assertEqual(retained, 3)
    self.assertAlmostEqual(rate, 2 / 3)

  def test_nothing_retained_is_nan(self):
    rate, retained = evaluate.success_rate(np.ones(3, bool), np.ones(3, bool))
    self.assertEqual(retained, 0)
    self.assertTrue(np.isnan(rate))


class EvaluateAttackTest(absltest.TestCase):
  def test_linear_model_protocol(self):
    rng = np.random.default_rng(0)
    weights = jnp.asarray(rng.normal(size=(48, 4)).astype(np.float32))
    images = test_utils.random_images(0, (10, 4, 4, 3))
    logits_fn = test_utils.linear_logits_fn(weights)
    labels = np.array(jnp.argmax(logits_fn(images), -1))
    labels[:3] = (labels[:3] + 1) % 4  # 3 samples are already misclassified
    strong = attacks.make_pgd(eps=1.0, step_size=0.05, num_steps=40)
    weak = attacks.make_pgd(eps=1e-6, step_size=1e-6, num_steps=1)
    result = evaluate.evaluate_attack(
      jax.random.key(0),
      logits_fn,
      images,
      labels,
      attack=strong,
      non_adaptive_attack=weak,
      defense=None,
      num_votes=1,
      batch_size=4,  # 7 retained: one full batch and one padded batch
    )
    self.assertEqual(result.num_samples, 10)
    self.assertAlmostEqual(result.benign_accuracy, 0.7)
    self.assertAlmostEqual(result.benign_success_rate, 0.3)
    self.assertEqual(result.num_retained, 7)
    self.assertEqual(result.attack.success_rate, 1.0)
    self.assertEqual(result.non_adaptive.success_rate, 0.0)
    self.assertEqual(evaluate.Evaluation.from_json(result.to_json()), result)

  def test_snapshots_of_both_attacks_even_when_nothing_is_retained(self):
    images = test_utils.random_images(2, (6, 4, 4, 3))
    logits_fn = test_utils.linear_logits_fn(
      jnp.asarray(np.random.default_rng(2).normal(size=(48, 4)), jnp.float32)
    )
    labels = np.asarray(jnp.argmax(logits_fn(images), -1))
    snap = attacks.make_pgd(
      eps=1.0, step_size=0.05, num_steps=4, snapshot_steps=(1, 4)
    )
    kw = dict(attack=snap, non_adaptive_attack=snap, defense=None, num_votes=1)
    result = evaluate.evaluate_attack(
      jax.random.key(0), logits_fn, images, labels, **kw
    )
    self.assertEqual(set(result.snapshots), {1, 4})
    self.assertEqual(set(result.non_adaptive_snapshots), {1, 4})
    self.assertEqual(result.attack, result.snapshots[4])
    one = result.at_steps(1)
    self.assertEqual((one.attack.num_steps, one.non_adaptive.num_steps), (1, 1))
    self.assertEqual(evaluate.Evaluation.from_json(result.to_json()), result)
    # Every image already misclassified: nothing attacked, every k NaN.
    wrong = (labels + 1) % 4
    empty = evaluate.evaluate_attack(
      jax.random.key(0), logits_fn, images, wrong, **kw
    )
    self.assertEqual(empty.num_retained, 0)
    self.assertTrue(np.isnan(empty.at_steps(1).attack.success_rate))
    self.assertEqual(empty.at_steps(1).attack.num_steps, 1)

  def test_votes_come_from_the_evaluations_named_streams(self):
    images = test_utils.random_images(1, (40, 4, 4, 3))
    logits_fn = test_utils.linear_logits_fn(
      jnp.asarray(np.random.default_rng(1).normal(size=(48, 4)), jnp.float32)
    )
    labels = np.asarray(jnp.argmax(logits_fn(images), -1))
    defense = "gaussian_noise(sigma=0.5)"  # Votes of 3 draws: keys matter.
    key = jax.random.key(3)
    result = evaluate.evaluate_attack(
      key, logits_fn, images, labels, defense=defense, num_votes=3,
      attack=attacks.make_pgd(eps=0.01, step_size=0.01, num_steps=1),
    )  # fmt: skip

    def accuracy(stream):
      voted = voting.vote(
        prng.stream(key, stream), logits_fn, images, defense=defense,
        num_votes=3,
      )  # fmt: skip
      return float(np.mean(np.asarray(voted) == labels))

    self.assertEqual(result.benign_accuracy, accuracy("benign_votes"))
    self.assertNotEqual(result.benign_accuracy, accuracy("attack_votes"))
    with self.assertRaisesRegex(ValueError, "untargeted, but targets"):
      evaluate.evaluate_attack(
        key, logits_fn, images, labels, defense=defense, num_votes=3,
        attack=attacks.make_pgd(eps=0.01, step_size=0.01, num_steps=1),
        targets=(labels + 1) % 4,
      )  # fmt: skip


if __name__ == "__main__":
  absltest.main()
