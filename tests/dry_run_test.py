"""Dry runs of every `:paper` config: the real code path, at true shapes,
on synthetic data and random weights, on 4 fake CPU devices (2 images
pad to 4 rows: the padded, split batches of a pod)."""

import os
import subprocess
import sys

import pytest
from absl.testing import absltest, parameterized

from stochjax.harness import grid as grid_lib
from stochjax.harness import report
from stochjax.harness import workdir as workdir_lib

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (entry point, config): every `:paper` variant, the longest first (as
# measured in docs/performance.md, 2026-12-07).
PAPER_RUNS = (
  ("fig3", "fig3"),
  ("fig4", "fig4"),
  ("eps_sensitivity", "eps_sensitivity"),
  ("table2", "table2_cifar"),
  ("table1", "table1"),
  ("rse", "rse"),
  ("blackbox", "blackbox"),
  ("fig2", "fig2"),
  ("audit", "audit"),
  ("finetune", "finetune"),
  ("fig1", "fig1"),
  ("table2", "table2"),
  ("eot_ablation", "eot_ablation"),
  ("section5", "section5"),
)


def dry_run(experiment, config_path, workdir, *overrides, devices=4):
  """Runs ``stochjax run <experiment>`` (as ``python -m stochjax``) as a
  user would, with
  ``--config.dry_run=True`` on `devices` fake CPU devices."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", STOCHJAX_PROGRESS="0")
  # LLVM at -O0 as in the default tier (tests/conftest.py): a dry run's
  # time is compiling programs it runs once; measured, the `eot_ablation`
  # dry run took 106 s of CPU time at -O0 against 136 s at XLA's default.
  xla_flags = env.get("XLA_FLAGS", "")
  if "--xla_backend_optimization_level=" not in xla_flags:
    xla_flags += " --xla_backend_optimization_level=0"
  env["XLA_FLAGS"] = (
    f"{xla_flags} --xla_force_host_platform_device_count={devices}"
  )
  devices_flag = [] if devices == 1 else ["--config.num_devices=0"]
  command = [
    sys.executable, "-m", "stochjax", "run", experiment,
    f"--config={config_path}:paper", "--config.dry_run=True",
    *devices_flag, *overrides, f"--workdir={workdir}",
    # The test session's cache (tests/conftest.py), never the user's:
    # programs several configs share (ResNet-50's init, the eps rule,
    # undefended controls) compile once.
    f"--compilation_cache={os.environ['STOCHJAX_TEST_CACHE']}",
  ]  # fmt: skip
  return subprocess.run(
    command, env=env, cwd=_ROOT, capture_output=True, text=True, timeout=1200
  )


@pytest.mark.slow
class PaperDryRunTest(parameterized.TestCase):
  @parameterized.named_parameters(
    (config, experiment, config) for experiment, config in PAPER_RUNS
  )
  def test_dry_run_writes_marked_results_and_report(self, experiment, config):
    workdir = self.create_tempdir().full_path
    # Section 5 is closed forms and NumPy: no model, no devices to use.
    devices = 1 if config == "section5" else 4
    done = dry_run(experiment, config, workdir, devices=devices)
    self.assertEqual(
      done.returncode, 0, done.stdout[-3000:] + done.stderr[-6000:]
    )
    self.assertIn("DRY RUN. The real run:", done.stdout)
    results = workdir_lib.read_json(os.path.join(workdir, "results.json"))
    self.assertTrue(results["dry_run"])
    self.assertGreaterEqual(results["plan"]["gpu_hours"], 0.0)
    stored = workdir_lib.read_json(os.path.join(workdir, "config.json"))
    self.assertTrue(stored["config"]["dry_run"])
    with open(os.path.join(workdir, "report.md")) as f:
      self.assertIn("DRY RUN", f.readline())
    # A real report refuses it; asked, it includes it, marked.
    out = os.path.join(workdir, "again.md")
    with self.assertRaisesRegex(ValueError, "dry run"):
      report.write([workdir], out)
    self.assertIn("(DRY RUN)", report.write([workdir], out, allow_dry_run=True))


class ShrinkTest(absltest.TestCase):
  def test_every_grid_is_minimal_and_keeps_its_ablation_reference(self):
    from stochjax.configs import table2_cifar
    from stochjax.harness import dry_run as dry_run_lib

    config = table2_cifar.get_config("paper")
    small = dry_run_lib.shrink(config, self.create_tempdir().full_path)
    self.assertEqual((small.num_examples, small.attack.num_votes), (2, 2))
    self.assertEqual(list(small.defenses), ["kwta", "odds", "sap"])
    for name in small.defenses:
      axes = grid_lib.axes(small, name)
      cells = {
        (k, m)
        for m in axes.eot_samples
        for k in grid_lib.in_budget(axes.steps, m, axes.max_budget)
      }
      full = grid_lib.axes(config, name)
      for axis in ("steps", "eot_samples"):
        self.assertLen(axes[axis], min(len(full[axis]), 2), name)
      self.assertEqual(max(k * m for k, m in cells), 2, name)
      ablation = axes.ablation
      self.assertIn((ablation.versus_k, ablation.versus_m), cells, name)
      self.assertEqual(tuple(axes.step_fractions), (ablation.versus_fraction,))
      self.assertEqual(tuple(ablation.steps), (1,), name)

  def test_fine_tuning_attacks_keep_their_settings_with_one_step(self):
    from stochjax import registry
    from stochjax.configs import fig3
    from stochjax.harness import dry_run as dry_run_lib

    config = fig3.get_config("paper")
    small = dry_run_lib.shrink(config, self.create_tempdir().full_path)
    (full,) = registry.parse(config.attack.spec)
    (shrunk,) = registry.parse(small.attack.spec)
    self.assertEqual(shrunk.name, full.name)
    self.assertEqual(shrunk.kwargs, full.kwargs | {"num_steps": 1})
    self.assertEqual(tuple(small.eval_epochs), (0, 1))

  def test_a_defense_list_runs_the_last_of_each_kind(self):
    from stochjax.configs import fig3, rse
    from stochjax.harness import dry_run as dry_run_lib

    small = dry_run_lib.shrink(
      fig3.get_config("paper"), self.create_tempdir().full_path
    )
    # BaRT's prefixes are one kind: k = 6 builds every member.
    self.assertEqual(list(small.defenses), ["bart_k6"])
    self.assertEqual(list(small.labels), ["k=6"])
    # Adversarial training and RSE's noise layers select code of their own
    # on the same spec ("identity"): both stay.
    config = rse.get_config("paper")
    self.assertEqual(
      list(
        dry_run_lib.shrink(config, self.create_tempdir().full_path).defenses
      ),
      list(config.defenses),
    )


class PlanTest(absltest.TestCase):
  def test_the_performance_doc_holds_the_plans_table(self):
    from stochjax.harness import plan

    with open(os.path.join(_ROOT, "docs", "performance.md")) as f:
      self.assertIn(plan.table(), f.read())


class BrokenConfigTest(absltest.TestCase):
  """In the default tier: each fails in config validation, before any
  compile, and is the only test of `app.run` and `dry_run.check_fields`."""

  def _copy_with(self, old: str, new: str) -> str:
    """stochjax/configs/table1.py, copied with `old` replaced by `new`."""
    with open(os.path.join(_ROOT, "stochjax", "configs", "table1.py")) as f:
      text = f.read()
    self.assertIn(old, text)
    path = os.path.join(self.create_tempdir().full_path, "broken.py")
    with open(path, "w") as f:
      f.write(text.replace(old, new))
    return path

  def test_a_misspelt_defense_fails_naming_it(self):
    path = self._copy_with(
      '"rotation(max_degrees=90)"', '"rotaton(max_degrees=90)"'
    )
    done = dry_run("table1", path, self.create_tempdir().full_path, devices=1)
    self.assertNotEqual(done.returncode, 0)
    self.assertIn("Unknown defense 'rotaton'", done.stderr)

  def test_a_field_the_code_does_not_know_fails_naming_it(self):
    path = self._copy_with(
      "config.attack.num_votes = 1", "config.attack.num_vote = 1"
    )
    done = dry_run("table1", path, self.create_tempdir().full_path, devices=1)
    self.assertNotEqual(done.returncode, 0)
    self.assertIn("attack.num_vote (did you mean attack.num_votes", done.stderr)

  def test_an_impossible_value_fails_naming_the_field(self):
    path = self._copy_with("config.grid.step_fractions = (0.125, 0.25)",
                           "config.grid.step_fractions = (0.125, -0.25)")  # fmt: skip
    done = dry_run("table1", path, self.create_tempdir().full_path, devices=1)
    self.assertNotEqual(done.returncode, 0)
    self.assertIn("grid.step_fractions has -0.25", done.stderr)


if __name__ == "__main__":
  absltest.main()
