"""AutoAttack: its components, run alone with the keys the ensemble gives
them, never break a point the ensemble leaves robust; broken points are
kept; the randomness check; compilation and errors."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import absltest

from stochjax import attacks, prng
from tests import test_utils


def _problem(seed=0, n=24, k=10):
  rng = np.random.default_rng(seed)
  weights = jnp.asarray(rng.normal(size=(5 * 6 * 3, k)), jnp.float32)
  images = test_utils.random_images(seed, (n, 5, 6, 3), 0.3, 0.7)
  fn = test_utils.linear_logits_fn(weights)
  labels = jnp.argmax(fn(images), -1).astype(jnp.int32)
  return fn, images, labels


def _noise(key, image):
  return jnp.clip(image + 0.1 * jax.random.normal(key, image.shape), 0, 1)


SMALL = dict(num_steps=8, num_queries=60, num_targets=3)


class AutoAttackTest(absltest.TestCase):
  def test_robust_accuracy_is_at_most_each_components(self):
    fn, images, labels = _problem()
    eps = 0.02
    ensemble = attacks.autoattack(eps=eps, **SMALL)
    broken = np.asarray(
      jnp.argmax(fn(ensemble(jax.random.key(0), fn, images, labels)), -1)
      != labels
    )
    self.assertTrue(0 < broken.mean() < 1, broken.mean())
    keys = prng.per_example(jax.random.key(0), len(labels))
    _, attack_keys = prng.split_each(keys)
    components = (
      attacks.make_apgd(eps=eps, num_steps=8),
      attacks.make_apgd_t(eps=eps, num_steps=8, num_targets=3),
      attacks.make_fab(eps=eps, num_steps=8, num_targets=3),
      attacks.make_square(eps=eps, num_queries=60, rescale_schedule=False),
    )
    union = np.zeros_like(broken)
    for c, component in enumerate(components):
      adv = component(prng.fold_each(attack_keys, c), fn, images, labels)
      alone = np.asarray(jnp.argmax(fn(adv), -1) != labels)
      with self.subTest(component=c):
        self.assertTrue(np.all(broken[alone]))
      union |= alone
    np.testing.assert_array_equal(broken, union)

  @pytest.mark.slow
  def test_points_broken_before_the_attack_are_kept(self):
    fn, images, labels = _problem(1)
    wrong = labels.at[:5].set((labels[:5] + 1) % 10)
    out = attacks.autoattack(eps=0.02, **SMALL).with_info(
      jax.random.key(0), fn, images, wrong
    )
    np.testing.assert_array_equal(out.images[:5], images[:5])
    self.assertEqual(out.losses.shape, (4, 1, len(labels)))
    # Broken after a component stays broken after the next ones.
    self.assertTrue(np.all(np.diff(np.asarray(out.losses[:, 0]), axis=0) >= 0))

  def test_the_randomness_check_warns_on_a_random_defense_only(self):
    fn, images, labels = _problem(2, n=6)
    check = attacks.ensemble.check_randomness
    with warnings.catch_warnings():
      warnings.simplefilter("error", attacks.RandomizedDefenseWarning)
      self.assertFalse(check(jax.random.key(0), fn, images, labels))
    with self.assertWarns(attacks.RandomizedDefenseWarning):
      self.assertTrue(
        check(jax.random.key(0), fn, images, labels, defense=_noise)
      )

  @pytest.mark.slow
  def test_the_standard_version_runs_the_check_and_rand_does_not(self):
    fn, images, labels = _problem(2, n=6)
    tiny = dict(num_steps=2, num_queries=4, num_targets=2, defense=_noise)
    with self.assertWarns(attacks.RandomizedDefenseWarning):
      attacks.autoattack(eps=0.02, **tiny)(
        jax.random.key(0), fn, images, labels
      )
    with warnings.catch_warnings():
      warnings.simplefilter("error", attacks.RandomizedDefenseWarning)
      attacks.autoattack(eps=0.02, version="rand", eot_samples=2, **tiny)(
        jax.random.key(0), fn, images, labels
      )

  @pytest.mark.slow
  def test_second_call_does_not_recompile(self):
    _, images, labels = _problem(3, n=6)
    attack = attacks.autoattack(
      eps=0.02, num_steps=2, num_queries=4, num_targets=2
    )
    weights = test_utils.random_images(4, (90, 10))
    first, second = test_utils.traces_for_new_weights(
      attack, images, labels, weights
    )
    self.assertEqual(first, second)

  def test_every_new_attack_is_in_the_registry(self):
    for spec, kind in (
      ("square(eps=0.03, num_queries=10)", "square"),
      ("spsa(eps=0.03, num_steps=2, num_samples=4)", "spsa"),
      ("apgd_t(eps=0.03, num_steps=2)", "apgd_t"),
      ("fab(eps=0.03, num_steps=2)", "fab"),
      ('autoattack(eps=0.03, version="rand")', "autoattack"),
    ):
      with self.subTest(kind=kind):
        self.assertIsInstance(attacks.lookup(spec), attacks.Attack)
    self.assertEqual(
      attacks.lookup('autoattack(eps=0.03, version="rand")').cost.eot_samples,
      20,
    )

  def test_unknown_version(self):
    with self.assertRaisesRegex(ValueError, "Unknown AutoAttack version"):
      attacks.autoattack(eps=0.03, version="plus")


if __name__ == "__main__":
  absltest.main()
