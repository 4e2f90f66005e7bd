"""Every experiment's smoke config runs end to end, and resumes."""

import json
import math
import os

import jax
import numpy as np
import pytest
from absl.testing import absltest, parameterized

from stochjax import analysis, data, detectors, models, voting
from stochjax.configs import blackbox as blackbox_config
from stochjax.configs import eot_ablation as eot_ablation_config
from stochjax.configs import eps_sensitivity as eps_sensitivity_config
from stochjax.configs import (
  fig1,
  fig2,
  fig3,
  fig4,
  table1,
  table2,
  table2_cifar,
)
from stochjax.configs import finetune as finetune_config
from stochjax.configs import rse as rse_config
from stochjax.configs import section5 as section5_config
from stochjax.harness import dry_run
from stochjax.harness import grid as grid_lib
from stochjax.harness import workdir as workdir_lib
from stochjax.paper import (
  blackbox,
  eps_sensitivity,
  figs3_4,
  finetune,
  rse,
  section4,
  section5,
)


def _smoke_run(test, config, driver):
  """``(workdir, results)``: `driver` run on `config` in a fresh workdir."""
  workdir = workdir_lib.Workdir(test.create_tempdir().full_path)
  workdir.claim(config, overwrite=False)
  return workdir, driver.run(config, workdir)


class EotAblationSmokeTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    # optax's Adam bias correction promotes int32 step counts to float.
    self.enter_context(jax.numpy_dtype_promotion("standard"))

  @pytest.mark.slow
  def test_runs_writes_outputs_and_resumes(self):
    config = eot_ablation_config.get_config("smoke")
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    workdir.claim(config, overwrite=False)
    results = section4.run(config, workdir)
    panel = "noise_injection/untargeted/step=0.25eps"
    heatmap = "heatmap_noise_injection_untargeted_step=0.25eps.png"
    for name in ("table.md", "cells.jsonl", heatmap):
      self.assertTrue(os.path.exists(workdir.file(name)), name)
    self.assertTrue(0.0 <= results["clean_accuracy"]["noise_injection"] <= 1.0)
    rates = results["success_rate"][panel]
    self.assertEqual(len(rates), len(config.grid.eot_samples))
    self.assertTrue(
      all(0 <= r <= 1 or math.isnan(r) for row in rates for r in row)
    )
    json.dumps(results)  # serializable
    # A second run on the same workdir recomputes nothing and agrees.
    cells = workdir.cells()
    again = section4.run(config, workdir)
    np.testing.assert_array_equal(
      again["success_rate"][panel], results["success_rate"][panel]
    )
    self.assertEqual(workdir.cells(), cells)
    # The controls, the eps rule and clean accuracy are cells too.
    for cell in (
      "undefended_control/noise_injection/untargeted",
      "eps_sweep/noise_injection",
      "clean_accuracy/noise_injection",
    ):
      self.assertIn(cell, cells)  # fmt: skip
    self.assertEqual(again["undefended_attack"], results["undefended_attack"])

  @pytest.mark.slow
  def test_eps_sensitivity_runs_each_row_at_each_eps_and_resumes(self):
    config = eps_sensitivity_config.get_config("smoke")
    workdir, results = _smoke_run(self, config, eps_sensitivity)
    arms = results["eps_arms"]
    # 2 goals x 2 radii x the cells within the budget (k x m <= 2).
    expected = {(goal, eps, k, m)
                for goal in ("untargeted", "targeted")
                for eps in config.eps_values
                for m in config.grid.eot_samples
                for k in config.grid.steps if k * m <= config.grid.max_budget}  # fmt: skip
    self.assertEqual({(a["goal"], a["eps"], a["k"], a["m"]) for a in arms},
                     expected)  # fmt: skip
    self.assertIn((1, 2), {(a["k"], a["m"]) for a in arms})
    evaluation = set(results["split"]["evaluation_indices"])
    for arm in arms:
      self.assertLessEqual(set(arm["evaluation"]["indices"]), evaluation)
    json.dumps(results)
    cells = workdir.cells()
    again = eps_sensitivity.run(config, workdir)
    self.assertEqual(workdir.cells(), cells)
    self.assertEqual(again["eps_arms"], arms)

  def test_converted_weights_replace_training(self):
    config = eot_ablation_config.get_config("smoke")
    model = models.get_model("ResNetTiny", num_classes=10, stem="cifar")
    variables = model.init(
      jax.random.key(3), np.zeros((1, 32, 32, 3), np.float32)
    )
    weights = self.create_tempdir().full_path
    models.save(weights, "ResNetTiny", model, variables)
    with config.unlocked():
      config.defenses.noise_injection.weights = weights
      config.grid.steps, config.grid.eot_samples = (2,), (1,)
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    results = section4.run(config, workdir)
    expected = voting.accuracy(
      models.classifier(model, variables), data.load("digits", "test")
    )
    self.assertEqual(results["clean_accuracy"]["noise_injection"], expected)
    self.assertFalse(os.path.exists(workdir.file("checkpoints")))

  def test_unknown_variant(self):
    with self.assertRaisesRegex(ValueError, "smoke"):
      eot_ablation_config.get_config("huge")


class PaperGridSmokeTest(parameterized.TestCase):
  """Table 1, Table 2, Fig. 1 and Fig. 2 share the ablation engine."""

  def setUp(self):
    super().setUp()
    self.enter_context(jax.numpy_dtype_promotion("standard"))

  @parameterized.parameters(table1, table2, fig1, fig2)
  @pytest.mark.slow
  def test_smoke_writes_every_panel(self, module):
    config = module.get_config("smoke")
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    workdir.claim(config, overwrite=False)
    results = section4.run(config, workdir)
    goals = ["targeted" if t else "untargeted" for t in config.grid.targeted]
    expected = {
      f"{name}/{goal}/step={f:g}eps"
      for name in config.defenses
      for goal in goals
      for f in config.grid.step_fractions
    }
    if len(config.grid.step_fractions) > 1:
      expected |= {
        f"{name}/{goal}/best step" for name in config.defenses for goal in goals
      }
    self.assertEqual(set(results["success_rate"]), expected)
    for panel, pairs in results["equal_budget"].items():
      for pair in pairs:
        self.assertEqual(pair["no_eot"]["m"], 1)
        self.assertEqual(
          pair["no_eot"]["k"], pair["eot"]["k"] * pair["eot"]["m"], panel
        )
    json.dumps(results)
    if module is table2:
      self._check_network_defenses(config, results)
      self._check_resume_reads_the_saved_detector(config, workdir)

  def _check_network_defenses(self, config, results):
    """Table 2's SAP, k-WTA and odds rows: SAP on its own axes, the
    detector calibrated, and every row's no-EOT ablation tested."""
    sap = config.defenses.sap.grid
    self.assertEqual(
      results["axes"]["sap/untargeted/step=0.25eps"],
      (list(sap.steps), list(sap.eot_samples)),
    )
    self.assertTrue(
      math.isfinite(results["detectors"]["odds"]["detector_threshold"])
    )
    ablations = {arm["defense"] for arm in results["arms"] if arm["ablation"]}
    self.assertEqual(ablations, set(config.defenses))

  def _check_resume_reads_the_saved_detector(self, config, workdir):
    """A resumed run calibrates nothing: it reads the detector back (here
    one with a changed threshold, to tell the two apart)."""
    path = workdir.file("detector_odds")
    saved = detectors.load(path)
    detectors.save(saved.replace(threshold=saved.threshold + 1.0), path)
    again = section4.run(config, workdir)
    self.assertAlmostEqual(
      again["detectors"]["odds"]["detector_threshold"],
      float(saved.threshold) + 1.0,
      places=5,
    )

  def test_paper_variants_name_converted_weights(self):
    for module in (table1, table2, fig1, fig2):
      config = module.get_config("paper")
      self.assertEqual(config.dataset, "imagenet")
      for setting in config.defenses.values():
        self.assertTrue(setting.weights.startswith("weights/"), module)
        self.assertAlmostEqual(setting.eps, 8 / 255)

  def test_table2_parts_split_the_smoke_rows(self):
    # The CPU default runs in two parts of one experiment (the verdicts
    # pool their arms by seed); together they are the five rows.
    main, network = table2.get_config(), table2.get_config("network")
    self.assertEqual(set(main.defenses), {"guo_crop", "xie_resize_pad"})
    self.assertEqual(set(network.defenses), {"sap", "kwta", "odds"})
    self.assertEqual(
      set(main.defenses) | set(network.defenses),
      set(table2.get_config("smoke").defenses),
    )
    for part in (main, network):
      self.assertEqual((part.experiment, part.seed), ("table2", 0))
      # The runner's field check knows every field of both parts.
      dry_run.check_fields(part, dry_run.REFERENCES["stochjax.paper.section4"])
    self.assertEqual(network.grid.to_dict(), main.grid.to_dict())
    # The network part keeps the plan's primary pairs and drops the
    # secondary ablations (within 30 minutes); :smoke keeps them.
    for p in analysis.PLAN.family("i"):
      if p.experiment != "table2" or p.defense not in network.defenses:
        continue
      axes = grid_lib.axes(network, p.defense)
      self.assertIsNone(axes.ablation)
      for k, m in (p.no_eot, p.eot):
        self.assertIn(k, grid_lib.in_budget(axes.steps, m, axes.max_budget))
        self.assertIn(m, axes.eot_samples)

  def test_table2_cifar_rows_carry_the_papers_attacks(self):
    config = table2_cifar.get_config("paper")
    self.assertEqual(config.dataset, "cifar10")
    eps = 8 / 255
    # (k, m, step) of the EOT attack, (k, step) of the no-EOT ablation.
    paper = {
      "sap": ((500, 10, 0.1 * eps), (500, 0.1 * eps)),
      "kwta": ((100, 1000, 0.01), (40_000, 0.1 / 255)),
      "odds": ((100, 40, 0.2 / 255), (4000, 0.1 / 255)),
    }
    for name, ((k, m, step), (k_ablation, step_ablation)) in paper.items():
      grid = config.defenses[name].grid
      self.assertEqual((grid.ablation.versus_k, grid.ablation.versus_m), (k, m))
      self.assertAlmostEqual(grid.ablation.versus_fraction * eps, step)
      self.assertEqual(tuple(grid.ablation.steps), (k_ablation,))
      self.assertAlmostEqual(grid.ablation.step_fraction * eps, step_ablation)
      self.assertIn(m, grid.eot_samples)


class EqualBudgetTest(absltest.TestCase):
  def test_pairs_cells_of_equal_budget(self):
    grid = np.array([[0.1, 0.2, 0.5], [0.3, 0.4, 0.6]])  # m = 1, 5
    pairs = section4.equal_budget(grid, steps=[10, 20, 50], draws=[1, 5])
    self.assertEqual(
      pairs,
      [
        {
          "budget": 50,
          "no_eot": {"k": 50, "m": 1, "success": 0.5},
          "eot": {"k": 10, "m": 5, "success": 0.3},
        }
      ],
    )


class RseSmokeTest(absltest.TestCase):
  """The book's RSE against adversarial training (`configs/rse.py`)."""

  def setUp(self):
    super().setUp()
    self.enter_context(jax.numpy_dtype_promotion("standard"))

  def test_cpu_parts_split_the_entries_and_rse_goes_with_its_invariance(self):
    default, reference = (rse_config.get_config(a) for a in (None, "reference"))
    self.assertEqual(list(default.defenses), ["rse"])
    self.assertEqual(sorted(reference.defenses),
                     ["adversarial_training", "noise_injection"])  # fmt: skip
    self.assertEqual(rse._rse_entry(default), "rse")
    self.assertIsNone(rse._rse_entry(reference))
    for part in (default, reference):
      self.assertEqual((part.experiment, part.seed), ("rse", 0))
    self.assertLen(rse_config.get_config("paper").defenses, 3)
    self.assertLen(rse_config.get_config("smoke").defenses, 3)

  @pytest.mark.slow
  def test_trains_three_models_attacks_each_and_resumes(self):
    config = rse_config.get_config("smoke")
    workdir, results = _smoke_run(self, config, rse)
    # Three networks trained, each once: clean (noise injection's), with
    # RSE's noise layers, and adversarially at the entry's eps.
    self.assertEqual(
      sorted(os.listdir(workdir.file("checkpoints"))),
      ["clean", "clean_pgd2_eps8_step0.25eps", "clean_rse_0.4_0.1"],
    )
    found = {(a["defense"], a["k"], a["m"]) for a in results["arms"]}
    self.assertEqual(found, {("rse", 2, 1), ("rse", 2, 2),
                             ("noise_injection", 2, 1),
                             ("noise_injection", 2, 2),
                             ("adversarial_training", 2, 1),
                             ("adversarial_training", 4, 1)})  # fmt: skip
    self.assertEqual(set(results["eps"].values()), {8 / 255})
    invariance = results["rse_invariance"]
    n = len(results["split"]["evaluation_indices"])
    for when in ("before", "after"):
      values = invariance[when]["per_image"]
      self.assertLen(values, n)
      # Fractions of 3 draws.
      self.assertTrue(all(round(3 * v) == 3 * v for v in np.float32(values)))
    cells = workdir.cells()
    again = rse.run(config, workdir)
    self.assertEqual(workdir.cells(), cells)
    self.assertEqual(again["arms"], results["arms"])

  def test_adversarial_training_needs_a_fixed_eps(self):
    config = rse_config.get_config("smoke")
    config.eps_rule.use = True
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    with self.assertRaisesRegex(ValueError, "eps_rule.use=False"):
      rse.run(config, workdir)
    # Refused before anything trained.
    self.assertFalse(os.path.exists(workdir.file("checkpoints")))

  def test_one_entry_with_noise_layers(self):
    config = rse_config.get_config("smoke")
    config.defenses.noise_injection.noise = (0.1, 0.1)
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    with self.assertRaisesRegex(ValueError, "one entry with noise layers"):
      rse.run(config, workdir)


class BlackboxSmokeTest(absltest.TestCase):
  """The blog's black-box claim (`configs/blackbox.py`)."""

  def setUp(self):
    super().setUp()
    self.enter_context(jax.numpy_dtype_promotion("standard"))

  @pytest.mark.slow
  def test_runs_every_arm_at_every_budget_and_resumes(self):
    config = blackbox_config.get_config("smoke")
    workdir, results = _smoke_run(self, config, blackbox)
    found = {(a["defense"], a["attack"], a["k"], a["m"])
             for a in results["arms"]}  # fmt: skip
    expected = set()
    for name in ("noise_injection", "smoothing_0_50"):
      expected |= {(name, "square_undefended", 4, 1),
                   (name, "square_undefended", 8, 1), (name, "square", 4, 1),
                   (name, "square", 8, 1), (name, "eot_square", 2, 2),
                   (name, "eot_square", 4, 2), (name, "pgd", 2, 2)}  # fmt: skip
    self.assertEqual(found, expected)
    self.assertTrue(os.path.exists(workdir.file("blackbox.png")))
    self.assertEqual(results["budgets"], [4, 8])
    json.dumps(results)
    cells = workdir.cells()
    again = blackbox.run(config, workdir)
    self.assertEqual(workdir.cells(), cells)
    self.assertEqual(again["arms"], results["arms"])


class FinetuneSmokeTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.enter_context(jax.numpy_dtype_promotion("standard"))

  @pytest.mark.slow
  def test_runs_records_each_epoch_and_resumes(self):
    config = finetune_config.get_config("smoke")
    workdir, results = _smoke_run(self, config, finetune)
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

  @pytest.mark.slow
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
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    results = finetune.run(config, workdir)
    expected = voting.accuracy(
      models.classifier(model, variables),
      data.load("digits", "test").subset(slice(config.num_eval)),
    )
    self.assertEqual(results["before"]["clean"], expected)
    self.assertEqual(workdir.metrics(phase="pretrain"), [])

  def test_bad_defense_spec_fails_before_training(self):
    config = finetune_config.get_config("smoke")
    with config.unlocked():
      config.defense = "no_such_defense()"
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    with self.assertRaisesRegex(ValueError, "no_such_defense"):
      finetune.run(config, workdir)
    self.assertEqual(workdir.metrics(), [])


class InvarianceSmokeTest(absltest.TestCase):
  """Figs. 3 and 4 share `stochjax.invariance`."""

  def setUp(self):
    super().setUp()
    self.enter_context(jax.numpy_dtype_promotion("standard"))

  @pytest.mark.slow
  def test_fig4_smoke_runs_and_resumes(self):
    config = fig4.get_config("smoke")
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    workdir.claim(config, overwrite=False)
    results = figs3_4.run(config, workdir)
    for name in ("before_after.png", "success_by_epoch.png"):
      self.assertTrue(os.path.exists(workdir.file(name)), name)
    (name,) = config.defenses
    for goal in ("untargeted", "targeted"):
      summary = results["defenses"][name][goal]
      self.assertEqual(summary["by_epoch"]["epoch"], list(config.eval_epochs))
      self.assertEqual(
        summary["after"]["benign_accuracy"],
        summary["by_epoch"]["benign_accuracy"][-1],
      )
    json.dumps(results)
    # The eps rule on the clean model sets the attack's radius and step.
    picked = results["eps_sweep"]["picked"]
    self.assertIn(picked, config.eps_rule.candidates)
    self.assertEqual(
      results["attack_overrides"],
      {"eps": picked, "step_size": picked * config.attack.step_fraction},
    )
    cells = workdir.cells()
    again = figs3_4.run(config, workdir)  # Restores; recomputes nothing.
    # (As JSON: NaN rates, where no sample was retained, compare equal.)
    self.assertEqual(
      json.dumps(again["defenses"]), json.dumps(results["defenses"])
    )
    self.assertEqual(workdir.cells(), cells)

  def test_configs(self):
    config = fig3.get_config(None)
    self.assertLen(config.defenses, 6)
    self.assertIn("fft_perturbation()", config.defenses["bart_k6"])
    self.assertNotIn("median()", config.defenses["bart_k2"])
    self.assertEqual(fig3.get_config("paper").train.epochs, 30)
    self.assertLen(fig4.get_config("paper").defenses, 10)
    bad = fig4.get_config("smoke")
    with bad.unlocked():
      bad.eval_epochs = (0,)
    with self.assertRaisesRegex(ValueError, "last epoch"):
      figs3_4.run(bad, workdir_lib.Workdir(self.create_tempdir().full_path))


class Section5SmokeTest(absltest.TestCase):
  def test_runs_and_resumes(self):
    config = section5_config.get_config("smoke")
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
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
