"""The audit's verdicts on models where the answer is known."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from absl.testing import absltest

from stochjax import audit, defenses, models, prng
from stochjax.audit import report as audit_report
from stochjax.audit import run as audit_run
from stochjax.audit import sections
from stochjax.configs import audit as audit_config
from stochjax.defenses import core
from stochjax.harness import workdir as workdir_lib
from tests import test_utils


def quantize_without_bpda(key, image):
  """A non-differentiable quantizer with no BPDA: zero gradients."""
  del key
  return jnp.round(image * 4) / 4


def digits_logits_fn():
  """A model factory for `model.factory`: a fixed linear map."""
  weights = np.random.default_rng(0).normal(size=(32 * 32 * 3, 10))
  return test_utils.linear_logits_fn(weights.astype(np.float32))


def setUpModule():
  global IMAGES, LABELS, MODEL
  IMAGES, LABELS, MODEL = test_utils.digits_mlp()


def _audit(defense, **kw):
  setting = audit.Setting(
    jax.random.key(0), MODEL, IMAGES[600:720], LABELS[600:720], defense,
    eps=0.1, norm="linf", num_votes=5, batch_size=120, mesh=None,
  )  # fmt: skip
  settings = dict(steps=10, eot_samples=5, budgets=(10,), num_draws=10,
                  eps_scales=(1.0, 4.0))  # fmt: skip
  return audit.audit(setting, **settings | kw)


def _checks(report):
  return {c["name"]: c["passed"] for c in report["sanity"]["checks"]}


class LogitSpreadTest(absltest.TestCase):
  def test_equals_numpy_over_the_same_draws_in_any_batches(self):
    images, labels = IMAGES[600:610], LABELS[600:610]
    defense = defenses.lookup("gaussian_noise(sigma=0.2)")
    key, num_draws = jax.random.key(3), 5
    keys = prng.per_example(key, len(labels))
    defended = core.defended_logits(MODEL, defense)
    draws = np.stack([
      np.asarray(defended(prng.fold_each(keys, j), images), np.float64)
      for j in range(num_draws)
    ])  # fmt: skip
    clean = np.asarray(MODEL(images), np.float64)
    expected = np.mean(draws.std(0).mean(1) / clean.std(1))
    self.assertGreater(expected, 0.0)
    for batch_size in (4, 10):
      setting = audit.Setting(
        key, MODEL, images, labels, defense, eps=0.1, norm="linf",
        num_votes=3, batch_size=batch_size, mesh=None,
      )  # fmt: skip
      spread = sections._logit_spread(key, setting, num_draws)
      self.assertAlmostEqual(spread, expected, delta=1e-5 * expected)


class KnownAnswersTest(absltest.TestCase):
  def test_a_deterministic_defense_has_no_randomness_and_needs_no_eot(self):
    report = _audit("bit_depth(bits=8)")
    self.assertEqual(report["randomness"]["changed_fraction"], 0.0)
    self.assertEqual(report["randomness"]["logit_spread"], 0.0)
    self.assertStartsWith(report["randomness"]["verdict"], "none")
    # Few images: the plan's screens leave "EOT needed?" undecided or not
    # needed, never needed.
    self.assertFalse(report["eot_needed"]["verdict"].startswith("EOT needed"))
    self.assertEqual(report["sanity"]["verdict"], "all passed")
    # The report's markdown names the settings and every verdict.
    text = audit_report.markdown(report, "bit depth")
    self.assertIn("PGD-10 x EOT-5", text)
    for verdict in audit.verdicts(report).values():
      self.assertIn(verdict, text)

  @pytest.mark.slow
  def test_large_untrained_noise_is_high_randomness(self):
    report = _audit("gaussian_noise(sigma=0.5)")
    self.assertGreater(report["randomness"]["changed_fraction"], 0.3)
    self.assertStartsWith(report["randomness"]["verdict"], "high")
    self.assertEqual(report["accuracy"]["test"]["verdict"], "a")

  def test_a_quantizer_without_bpda_fails_the_sanity_checks(self):
    report = _audit(quantize_without_bpda)
    checks = _checks(report)
    self.assertFalse(checks["an unbounded attack succeeds"])
    self.assertFalse(checks["BPDA does not beat the defense's gradients"])
    self.assertFalse(checks["transfer does not beat white-box"])
    # Zero gradients: Square, which needs none, beats PGD (AutoAttack's
    # sign of masked gradients).
    self.assertFalse(checks["black-box does not beat white-box"])
    self.assertStartsWith(report["blackbox"]["verdict"], "a black-box attack")
    self.assertStartsWith(report["sanity"]["verdict"], "failed")
    # Every p-value recomputes with SciPy's exact binomial test.
    tests = [report["adaptive_vs_transfer"]["test"],
             report["blackbox"]["eot_test"]]  # fmt: skip
    tests += [c["test"] for c in report["sanity"]["checks"] if "test" in c]
    tests += [
      t | {"p_value": t["p_two_sided"]}
      for t in report["eot_needed"]["comparisons"]
    ]
    for test in tests:
      discordant = test["only_a"] + test["only_b"]
      expected = (
        scipy.stats.binomtest(test["only_a"], discordant, 0.5).pvalue
        if discordant
        else 1.0
      )
      self.assertAlmostEqual(test["p_value"], expected, places=12)

  def test_budgets_must_be_multiples_of_eot(self):
    with self.assertRaisesRegex(ValueError, "multiples of eot_samples"):
      _audit("bit_depth(bits=8)", budgets=(7,))
    with self.assertRaisesRegex(ValueError, "multiples of eot_samples"):
      _audit("bit_depth(bits=8)", blackbox_queries=12)


class CommandTest(absltest.TestCase):
  @pytest.mark.slow
  def test_smoke_writes_the_report_and_resumes(self):
    config = audit_config.get_config("smoke")
    work = workdir_lib.Workdir(self.create_tempdir().full_path)
    work.claim(config, overwrite=False)
    with jax.numpy_dtype_promotion("standard"):
      report = audit_run.run(config, work)
      cells = work.cells()
      again = audit_run.run(config, work)
    for name in ("audit.json", "audit.md", "success_vs_eps.png",
                 "randomness.png"):  # fmt: skip
      self.assertTrue(os.path.exists(work.file(name)), name)
    self.assertEqual(work.cells(), cells)  # Resumed: nothing recomputed.
    self.assertEqual(audit.verdicts(again), audit.verdicts(report))
    stored = workdir_lib.read_json(work.file("audit.json"))
    self.assertEqual(set(audit.verdicts(stored)), set(audit.verdicts(report)))
    with open(work.file("audit.md")) as f:
      text = f.read()
    for verdict in audit.verdicts(report).values():
      self.assertIn(verdict, text)

  def test_the_model_comes_from_a_factory_or_from_saved_weights(self):
    images = test_utils.random_images(0, (2, 32, 32, 3))
    config = audit_config.get_config("smoke")
    with config.unlocked():
      config.model.factory = "tests.audit_test:digits_logits_fn"
    logits_fn = audit_run.model_of(config, None, jax.random.key(0), 10)
    np.testing.assert_array_equal(logits_fn(images), digits_logits_fn()(images))
    model = models.get_model("ResNetTiny", num_classes=10, stem="cifar")
    variables = model.init(jax.random.key(1), images)
    weights = self.create_tempdir().full_path
    models.save(weights, "ResNetTiny", model, variables)
    with config.unlocked():
      config.model.factory, config.model.weights = "", weights
    logits_fn = audit_run.model_of(config, None, jax.random.key(0), 10)
    np.testing.assert_allclose(
      logits_fn(images),
      models.classifier(model, variables)(images),
      rtol=1e-6,
      atol=1e-6,
    )

  def test_a_model_factory_and_defense_function_load(self):
    self.assertIs(
      audit_run.defense_of("tests.audit_test:quantize_without_bpda"),
      quantize_without_bpda,
    )
    self.assertEqual(audit_run.defense_of("jpeg(quality_low=60)"),
                     "jpeg(quality_low=60)")  # fmt: skip
    with self.assertRaisesRegex(ValueError, "Cannot load"):
      audit_run.load_object("tests.audit_test:nothing_here")


if __name__ == "__main__":
  absltest.main()
