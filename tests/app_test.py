"""The runner's --config resolution and flags."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from absl.testing import absltest

from stochjax.harness import app


class ConfigPathTest(absltest.TestCase):
  def test_a_name_is_the_shipped_config_even_beside_a_folder_of_that_name(self):
    folder = self.create_tempdir().full_path
    os.makedirs(os.path.join(folder, "fig1"))  # e.g. the run's own workdir
    cwd = os.getcwd()
    try:
      os.chdir(folder)
      path = app.config_path("fig1:smoke")
    finally:
      os.chdir(cwd)
    self.assertTrue(
      path.endswith(os.path.join("stochjax", "configs", "fig1.py:smoke"))
    )
    self.assertTrue(os.path.isfile(path.removesuffix(":smoke")))

  def test_a_file_path_is_kept_and_a_missing_one_or_unknown_name_refused(self):
    mine = os.path.join(self.create_tempdir().full_path, "mine.py")
    with open(mine, "w") as f:
      f.write("")
    self.assertEqual(app.config_path(f"{mine}:paper"), f"{mine}:paper")
    with self.assertRaisesRegex(ValueError, "no file"):
      app.config_path("nowhere/mine.py")
    with self.assertRaisesRegex(ValueError, "not a shipped config"):
      app.config_path("fig9")

  def test_flag_forms_and_the_default(self):
    shipped = app.config_path("audit")
    self.assertEqual(
      app._with_config_path(["x", "--config", "audit", "--workdir=w"], None),
      ["x", f"--config={shipped}", "--workdir=w"],
    )
    self.assertEqual(
      app._with_config_path(["x", "--workdir=w"], "audit"),
      ["x", f"--config={shipped}", "--workdir=w"],
    )

  @pytest.mark.slow
  def test_an_override_of_the_default_config_is_applied(self):
    # ``stochjax run eot_ablation --config.seed=1``: the default config goes
    # before the override, which absl only parses after the config it changes.
    workdir = self.create_tempdir().full_path
    done = subprocess.run(
      [sys.executable, "-m", "stochjax", "run", "section5", "--config.seed=7",
       "--config.num_samples=1000", f"--workdir={workdir}",
       "--compilation_cache="],
      capture_output=True, text=True,
    )  # fmt: skip
    self.assertEqual(done.returncode, 0, done.stderr[-3000:])
    with open(os.path.join(workdir, "config.json")) as f:
      config = json.load(f)["config"]
    self.assertEqual((config["seed"], config["num_samples"]), (7, 1000))


class TwoRunsTest(absltest.TestCase):
  def test_a_second_run_in_one_process_does_not_inherit_flags(self):
    workdir = self.create_tempdir().full_path
    script = textwrap.dedent(f"""
      from stochjax.harness import app
      common = ["x", "--workdir={workdir}", "--compilation_cache="]
      for extra in (["--config=section5:smoke", "--overwrite"],
                    ["--config=section5"]):
        try:
          app.run(lambda config, work: {{}}, common + extra)
        except SystemExit as e:
          print("exit", e.code)
    """)
    done = subprocess.run(
      [sys.executable, "-c", script], capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line]
    self.assertIn(lines[0], ("exit 0", "exit None"), done.stderr[-3000:])
    # The second run changed the config without --overwrite: refused.
    self.assertStartsWith(lines[1], "exit FATAL:")
    self.assertIn("holds a run of a different config", lines[1])
    self.assertIn("num_samples: 10000 -> 1000000", lines[1])


if __name__ == "__main__":
  absltest.main()
