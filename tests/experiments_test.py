"""Every experiment's smoke config runs end to end, and resumes."""

import json
import math
import os

import jax
import numpy as np
from absl.testing import absltest

from configs import eot_ablation as eot_ablation_config
from configs import finetune as finetune_config
from configs import section5 as section5_config
from stochjax import ablation, app, data, finetune, models, section5, train


class EotAblationSmokeTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    # optax's Adam bias correction promotes int32 step counts to float.
    self.enter_context(jax.numpy_dtype_promotion("standard"))

  def test_runs_writes_outputs_and_resumes(self):
    config = eot_ablation_config.get_config("smoke")
    workdir = app.Workdir(self.create_tempdir().full_path)
    workdir.claim(config, overwrite=False)
    results = ablation.run(config, workdir)
    for name in ("table.md", "cells.json", "heatmap_noise_injection.png"):
      self.assertTrue(os.path.exists(workdir.file(name)), name)
    self.assertTrue(0.0 <= results["clean_accuracy"]["noise_injection"] <= 1.0)
    rates = results["success_rate"]["noise_injection"]
    self.assertEqual(len(rates), len(config.grid.eot_samples))
    self.assertTrue(
      all(0 <= r <= 1 or math.isnan(r) for row in rates for r in row)
    )
    json.dumps(results)  # serializable
    # A second run on the same workdir recomputes nothing and agrees.
    cells = workdir.cells()
    again = ablation.run(config, workdir)
    np.testing.assert_array_equal(
      again["success_rate"]["noise_injection"],
      results["success_rate"]["noise_injection"],
    )
    self.assertEqual(workdir.cells(), cells)

  def test_converted_weights_replace_training(self):
    config = eot_ablation_config.get_config("smoke")
    model = models.get_model("ResNetTiny", num_classes=10, stem="cifar")
    variables = model.init(
      jax.random.key(3), np.zeros((1, 32, 32, 3), np.float32)
    )
    weights = self.create_tempdir().full_path
    models.save(weights, "ResNetTiny", model, variables)
    with config.unlocked():
      del config.defenses["smoothing_0_50"]
      config.defenses.noise_injection.weights = weights
      config.grid.steps, config.grid.eot_samples = (2,), (1,)
    workdir = app.Workdir(self.create_tempdir().full_path)
    results = ablation.run(config, workdir)
    expected = train.accuracy(
      models.classifier(model, variables), data.load("digits", "test")
    )
    self.assertEqual(results["clean_accuracy"]["noise_injection"], expected)
    self.assertFalse(os.path.exists(train.checkpoint_path(workdir.path)))

  def test_unknown_variant(self):
    with self.assertRaisesRegex(ValueError, "smoke"):
      eot_ablation_config.get_config("huge")


class FinetuneSmokeTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.enter_context(jax.numpy_dtype_promotion("standard"))

  def test_runs_records_each_epoch_and_resumes(self):
    config = finetune_config.get_config("smoke")
    workdir = app.Workdir(self.create_tempdir().full_path)
    workdir.claim(config, overwrite=False)
    results = finetune.run(config, workdir)
    curve = results["by_epoch"]
    self.assertEqual(curve["epoch"], [1, 2])
    for field in ("clean", "defended"):
      self.assertTrue(all(0 <= a <= 1 for a in curve[field]))
    self.assertEqual(results["after"]["clean"], curve["clean"][-1])
    # The same evaluation draws every epoch and after: directly comparable.
    self.assertEqual(results["after"]["defended"], curve["defended"][-1])
    self.assertTrue(os.path.exists(workdir.file("accuracy_by_epoch.png")))
    again = finetune.run(config, workdir)  # Restores; trains nothing more.
    self.assertEqual(again["after"], results["after"])
    self.assertLen(workdir.metrics(phase="finetune"), 2)

  def test_starts_from_converted_weights(self):
    # A saved model with its own normalization: fine-tuning uses it as is.
    model = models.get_model(
      "ResNetTiny", num_classes=10, stem="cifar", mean=(0.4, 0.4, 0.4)
    )
    variables = model.init(
      jax.random.key(1), np.zeros((1, 32, 32, 3), np.float32)
    )
    weights = self.create_tempdir().full_path
    models.save(weights, "ResNetTiny", model, variables)
    config = finetune_config.get_config("smoke")
    with config.unlocked():
      config.model.weights = weights
      config.train.epochs = 1
    workdir = app.Workdir(self.create_tempdir().full_path)
    results = finetune.run(config, workdir)
    expected = train.accuracy(
      models.classifier(model, variables),
      data.load("digits", "test").subset(slice(config.num_eval)),
    )
    self.assertEqual(results["before"]["clean"], expected)
    self.assertEqual(workdir.metrics(phase="pretrain"), [])

  def test_bad_defense_spec_fails_before_training(self):
    config = finetune_config.get_config("smoke")
    with config.unlocked():
      config.defense = "no_such_defense()"
    workdir = app.Workdir(self.create_tempdir().full_path)
    with self.assertRaisesRegex(ValueError, "no_such_defense"):
      finetune.run(config, workdir)
    self.assertEqual(workdir.metrics(), [])


class Section5SmokeTest(absltest.TestCase):
  def test_runs_and_resumes(self):
    config = section5_config.get_config("smoke")
    workdir = app.Workdir(self.create_tempdir().full_path)
    workdir.claim(config, overwrite=False)
    results = section5.run(config, workdir)
    self.assertTrue(os.path.exists(workdir.file("section5.png")))
    self.assertEqual(len(results["rows"]), len(config.sigmas))
    # 10k samples: within a few standard errors of the closed forms.
    self.assertLess(results["max_abs_simulation_error"], 0.03)
    json.dumps(results)
    again = section5.run(config, workdir)
    self.assertEqual(again["rows"], results["rows"])


if __name__ == "__main__":
  absltest.main()
