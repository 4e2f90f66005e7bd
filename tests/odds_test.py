"""The odds-are-odd detector: calibration, evaluation with a detector, and
the logit-matching attack that evades it."""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from absl.testing import absltest

from stochjax import attacks, detectors, evaluate, prng, stats, voting
from tests import test_utils


def setUpModule():
  """A scikit-learn MLP on 600 digits, as a JAX logits_fn; the rest of the
  digits are calibration and held-out images."""
  global IMAGES, LABELS, MODEL
  IMAGES, LABELS, MODEL = test_utils.digits_mlp()


def _calibrated(fpr=0.1):
  return detectors.calibrate(
    jax.random.key(0), MODEL, IMAGES[600:1200], LABELS[600:1200],
    fpr=fpr, sigma=0.1, num_noise=64,
  )  # fmt: skip


class CalibrationTest(absltest.TestCase):
  def test_false_positive_rate_on_held_out_clean_images(self):
    fpr = 0.1
    detector = _calibrated(fpr)
    images, labels = IMAGES[1200:], LABELS[1200:]
    correct = np.asarray(voting.predict(MODEL, images)) == labels
    keys = prng.per_example(jax.random.key(1), len(images))
    flags = np.asarray(detector(keys, MODEL, images))[correct]
    low, high = stats.rate_interval(int(flags.sum()), len(flags), level=0.999)
    self.assertTrue(low <= fpr <= high, (flags.mean(), low, high))

  def test_scores_are_the_standardized_largest_shift(self):
    detector = _calibrated()
    keys = prng.per_example(jax.random.key(2), 5)
    pred, g = detectors.logit_shifts(
      keys, MODEL, IMAGES[:5], sigma=0.1, clip=True, num_noise=64,
      chunk_size=32,
    )  # fmt: skip
    pred, g = np.asarray(pred), np.asarray(g)
    z = (g - np.asarray(detector.mean)[pred]) / np.asarray(detector.std)[pred]
    z[np.arange(5), pred] = -np.inf
    np.testing.assert_allclose(
      detector.score(keys, MODEL, IMAGES[:5]), z.max(1), rtol=1e-5
    )
    # The shift of the predicted class against itself is 0.
    np.testing.assert_array_equal(g[np.arange(5), pred], 0.0)

  def test_a_saved_detector_loads_back_the_same(self):
    detector = _calibrated()
    path = self.create_tempdir().full_path + "/detector"
    detectors.save(detector, path)
    loaded = detectors.load(path)
    for name in ("mean", "std", "threshold", "class_logits"):
      np.testing.assert_array_equal(
        getattr(loaded, name), getattr(detector, name)
      )
    self.assertEqual(
      (loaded.sigma, loaded.clip, loaded.num_noise, loaded.chunk_size),
      (detector.sigma, detector.clip, detector.num_noise, detector.chunk_size),
    )
    keys = prng.per_example(jax.random.key(3), 20)
    np.testing.assert_array_equal(
      loaded(keys, MODEL, IMAGES[1200:1220]),
      detector(keys, MODEL, IMAGES[1200:1220]),
    )
    with self.assertRaisesRegex(ValueError, "saved odds detector"):
      detectors.load(self.create_tempdir().full_path)

  def test_refusals(self):
    with self.assertRaisesRegex(ValueError, "fpr"):
      _calibrated(fpr=1.5)
    wrong = (LABELS[600:610] + 1) % 10
    with self.assertRaisesRegex(ValueError, "at least 4"):
      detectors.calibrate(jax.random.key(0), MODEL, IMAGES[600:610], wrong)


class EvaluationWithDetectorTest(absltest.TestCase):
  def _evaluate(self, attack, detector):
    return evaluate.evaluate_attack(
      jax.random.key(4), MODEL, IMAGES[1200:1500], LABELS[1200:1500],
      attack=attack, defense=None, num_votes=1, detector=detector,
    )  # fmt: skip

  def test_a_detector_flagging_nothing_changes_nothing(self):
    attack = attacks.make_pgd(eps=0.1, step_size=0.02, num_steps=5)
    never = lambda keys, fn, x: jnp.zeros(x.shape[0], bool)  # noqa: E731
    plain, detected = (
      self._evaluate(attack, None),
      self._evaluate(attack, never),
    )
    self.assertEqual(detected.benign_flagged_rate, 0.0)
    self.assertEqual(detected.attack.flagged_rate, 0.0)
    self.assertEqual(plain.attack.per_sample, detected.attack.per_sample)
    self.assertEqual(plain.retained_indices, detected.retained_indices)

  def test_a_flagged_example_is_neither_retained_nor_broken(self):
    attack = attacks.make_pgd(eps=0.1, step_size=0.02, num_steps=5)
    # Flags images brighter than the clean median: the retained clean ones
    # are dark, and an adversarial image counts only while it stays dark.
    median = float(np.median(IMAGES[1200:1500].mean(axis=(1, 2, 3))))
    bright = lambda keys, fn, x: x.mean(axis=(1, 2, 3)) > median  # noqa: E731
    plain, detected = (
      self._evaluate(attack, None),
      self._evaluate(attack, bright),
    )
    dark = IMAGES[1200:1500].mean(axis=(1, 2, 3)) <= median
    retained = set(plain.retained_indices) & set(np.flatnonzero(dark))
    self.assertEqual(set(detected.retained_indices), retained)
    self.assertLessEqual(
      detected.attack.successes,
      plain.attack.successes,
    )

  def test_logit_matching_under_the_detectors_noise_evades_it(self):
    detector = _calibrated()
    plain = attacks.make_pgd(eps=0.1, step_size=0.01, num_steps=40)
    evading = attacks.make_pgd(
      eps=0.1, step_size=0.01, num_steps=40, eot_samples=8,
      loss=detectors.logit_matching_loss(detector),
      defense=detectors.noise_defense(detector),
    )  # fmt: skip
    flagged = []
    for attack in (plain, evading):
      result = self._evaluate(attack, detector)
      n = result.num_retained
      flagged.append(round(result.attack.flagged_rate * n))
      flagged.append(n - flagged[-1])
    _, p = scipy.stats.fisher_exact(np.reshape(flagged, (2, 2)))
    self.assertLess(
      flagged[2] / sum(flagged[2:]), flagged[0] / sum(flagged[:2])
    )
    self.assertLess(p, 0.01)


if __name__ == "__main__":
  absltest.main()
