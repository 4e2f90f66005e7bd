"""Every experiment's smoke config runs end to end, and resumes."""

import json
import math
import os

import jax
import numpy as np
from absl.testing import absltest

from configs import eot_ablation as eot_ablation_config
from stochjax import ablation, app


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
    self.assertTrue(0.0 <= results["clean_accuracy"] <= 1.0)
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

  def test_unknown_variant(self):
    with self.assertRaisesRegex(ValueError, "smoke"):
      eot_ablation_config.get_config("huge")


if __name__ == "__main__":
  absltest.main()
