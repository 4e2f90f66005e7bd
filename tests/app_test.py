"""Workdir files: config claims, atomic results, resumable grid cells."""

import json
import os

import ml_collections
import numpy as np
from absl.testing import absltest

from stochjax import workdir as workdir_lib


def _config(value=1):
  config = ml_collections.ConfigDict()
  config.attack = ml_collections.ConfigDict({"num_steps": value})
  config.seed = 0
  return config


class WorkdirTest(absltest.TestCase):
  def test_refuses_a_different_config_and_shows_the_difference(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    workdir.claim(_config(1), overwrite=False)
    workdir.claim(_config(1), overwrite=False)  # same config: fine
    with self.assertRaisesRegex(ValueError, r"attack.num_steps: 1 -> 2"):
      workdir.claim(_config(2), overwrite=False)
    workdir.claim(_config(2), overwrite=True)
    with open(workdir.file("config.json")) as f:
      stored = json.load(f)
    self.assertEqual(stored["config"]["attack"]["num_steps"], 2)
    self.assertIn("jax", stored["versions"])

  def test_results_and_cells_are_written_whole(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    workdir.write_results({"rate": 0.5, "nan": float("nan")})
    workdir.save_cell("a", {"x": 1})
    workdir.save_cell("b", {"x": 2})
    self.assertEqual(workdir.cells(), {"a": {"x": 1}, "b": {"x": 2}})
    self.assertEqual(
      sorted(os.listdir(workdir.path)), ["cells.json", "results.json"]
    )
    workdir.log_metrics(step=1, loss=0.5)
    workdir.log_metrics(step=2, loss=0.25)
    with open(workdir.file("metrics.jsonl")) as f:
      lines = f.read().splitlines()
    self.assertEqual([json.loads(x)["step"] for x in lines], [1, 2])

  def test_a_cell_is_computed_once_and_read_back_as_json(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    calls = []

    def compute():
      calls.append(1)
      return {"rate": np.float32(0.5), "outcomes": np.array([True, False])}

    first = workdir.cell("control", compute)
    again = workdir_lib.Workdir(workdir.path).cell("control", compute)
    self.assertLen(calls, 1)
    self.assertEqual(first, {"rate": 0.5, "outcomes": [True, False]})
    self.assertEqual(again, first)


if __name__ == "__main__":
  absltest.main()
