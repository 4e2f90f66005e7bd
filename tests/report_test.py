"""The markdown report: sections per workdir, with the paper's numbers."""

import os

import numpy as np
from absl.testing import absltest

from stochjax import analysis, stats
from stochjax.harness import report, verdicts
from stochjax.harness import workdir as workdir_lib


def _workdir(root, name, results, files=()):
  path = os.path.join(root, name)
  os.makedirs(path)
  workdir_lib.write_json_atomic(os.path.join(path, "results.json"), results)
  for file, text in files:
    with open(os.path.join(path, file), "w") as f:
      f.write(text)
  return path


class ReportTest(absltest.TestCase):
  def test_sections_and_paper_numbers(self):
    root = self.create_tempdir().full_path
    pair = {
      "budget": 50,
      "no_eot": {"k": 50, "m": 1, "success": 0.9},
      "eot": {"k": 10, "m": 5, "success": 0.95},
    }
    table1 = _workdir(
      root,
      "table1",
      {
        "success_rate": {},
        "equal_budget": {"rotation/untargeted/best step": [pair]},
        "benign_accuracy": {"rotation/untargeted": 0.5},
        "wall_seconds": 12.0,
      },
      [("heatmap_rotation.png", "")],
    )
    summary = {
      "before": {"benign_accuracy": 0.6, "attack_success_rate": 0.5},
      "after": {"benign_accuracy": 0.9, "attack_success_rate": 0.8},
    }
    fig3 = _workdir(
      root,
      "fig3",
      {
        "defenses": {"bart_k2": {"untargeted": summary}},
        "labels": ["k=2"],
        "goals": ["untargeted"],
        "attack": "pgd(num_steps=20)",
        "attack_overrides": {"eps": 2 / 255, "step_size": 0.5 / 255},
        "eps_sweep": {
          "candidates": [1 / 255, 2 / 255],
          "success": [0.5, 0.95],
          "ci": [[0.4, 0.6], [0.9, 0.98]],
          "n": 100,
          "picked": 2 / 255,
        },
      },
    )
    fig4 = _workdir(
      root,
      "fig4",
      {
        "defenses": {"sigma_010": {"untargeted": summary}},
        "labels": ["sigma=0.1"],
        "goals": ["untargeted"],
        "attack": "pgd(eps=0.0157, num_steps=20)",
      },
    )
    unfinished = os.path.join(root, "fig1")
    os.makedirs(unfinished)
    out = os.path.join(root, "report.md")
    text = report.write([table1, fig3, fig4, unfinished], out)
    with open(out) as f:
      self.assertEqual(f.read(), text)
    self.assertIn("Not finished (no results.json): " + unfinished, text)
    self.assertIn(
      "| rotation/untargeted/best step | 50 | (50, 1) | 90.0 | (10, 5) | "
      "95.0 | 100.0 / 100.0 |",
      text,
    )
    self.assertIn(
      "![heatmap_rotation.png](figures/table1/heatmap_rotation.png)", text
    )
    # Figures are copied beside the report.
    self.assertTrue(
      os.path.exists(os.path.join(root, "figures/table1/heatmap_rotation.png"))
    )
    # Fig. 3's k = 2 column and Fig. 4's sigma = 0.10 column.
    self.assertIn(
      "| k=2 | untargeted | 60.0 → 90.0 | 50.0 → 80.0 | – → – | – → – | "
      "86.75 → 95.29 | 59.91 → 98.13 |",
      text,
    )
    self.assertIn("81.53 → 95.16 | 98.75 → 99.06 |", text)
    self.assertIn("Wall time 12 s.", text)
    # Fig. 3's attack radius came from the eps rule; Fig. 4's from its spec.
    self.assertIn(
      "Eps rule for the clean model: undefended PGD success on 100 correct "
      "images by eps (1/255: 50.0, 2/255: 95.0) picked 2/255.",
      text,
    )
    self.assertIn(
      "Attack: pgd(num_steps=20) with eps = 2/255, step_size = 0.5/255 "
      "(the eps rule).",
      text,
    )
    self.assertIn("Attack: pgd(eps=0.0157, num_steps=20).", text)

  def test_an_audit_lists_its_verdicts(self):
    root = self.create_tempdir().full_path
    audit = _workdir(
      root,
      "audit",
      {
        "accuracy": {"verdict": "no significant accuracy cost"},
        "sanity": {"verdict": "all passed", "checks": []},
        "cost": {"grad_evals": 1},
      },
    )
    text = report.write([audit], os.path.join(root, "report.md"))
    self.assertIn("* accuracy: no significant accuracy cost", text)
    self.assertIn("* sanity: all passed", text)
    # No claim experiment among the runs: no table of "not run" claims.
    self.assertIn("No run of a claim experiment among these workdirs", text)
    self.assertNotIn("not run", text)
    self.assertNotIn("## The paper's claims", text)

  def test_unknown_results_are_refused(self):
    root = self.create_tempdir().full_path
    odd = _workdir(root, "odd", {"something": 1})
    with self.assertRaisesRegex(ValueError, "not from a known experiment"):
      report.write([odd], os.path.join(root, "report.md"))


def _run_dir(root, name, experiment, seed, results, setting=None):
  """A finished run's workdir: its config's experiment, seed and (if
  given) ``(dataset, model)``, and `results` stamped with the plan in
  force (unless it says otherwise)."""
  path = os.path.join(root, name)
  os.makedirs(path)
  config = {"experiment": experiment, "seed": seed}
  if setting is not None:
    config |= {"dataset": setting[0], "model": {"name": setting[1]}}
  workdir_lib.write_json_atomic(
    os.path.join(path, "config.json"), {"config": config}
  )
  results = {"analysis_plan_digest": analysis.PLAN.digest()} | results
  workdir_lib.write_json_atomic(os.path.join(path, "results.json"), results)
  return path


def _arm(defense, goal, k, m, fraction, calibration, evaluation):
  """A grid arm as `section4.arms` writes it."""
  return {
    "defense": defense, "goal": goal, "k": k, "m": m,
    "step_fraction": fraction, "ablation": False,
    "calibration": {"successes": int(sum(calibration)),
                    "n": len(calibration)},
    "evaluation": {"indices": list(range(len(evaluation))),
                   "per_sample": [bool(v) for v in evaluation]},
  }  # fmt: skip


class ResultsJsonTest(absltest.TestCase):
  def _workdir(self, root, seed, no_eot, eot, digest=None, setting=None):
    """An eot_ablation run whose eps/4 arms are `no_eot`, `eot` (and whose
    eps/2 arms are worse on calibration, so the step choice is eps/4), on
    `setting` ``(dataset, model)`` if given."""
    arms = []
    for fraction, cal in ((0.25, [True] * 60 + [False] * 60),
                          (0.5, [True] * 30 + [False] * 90)):  # fmt: skip
      arms.append(_arm("noise_injection", "untargeted", 100, 1, fraction, cal,
                       no_eot if fraction == 0.25 else [False] * len(no_eot)))  # fmt: skip
      arms.append(_arm("noise_injection", "untargeted", 10, 10, fraction, cal,
                       eot if fraction == 0.25 else [False] * len(eot)))  # fmt: skip
    results = {"arms": arms}
    if digest is not None:
      results["analysis_plan_digest"] = digest
    name = f"eot_ablation_seed{seed}" + ("_" + "_".join(setting) if setting
                                         else "")  # fmt: skip
    return _run_dir(root, name, "eot_ablation", seed, results, setting)

  def test_other_settings_replicate_and_are_never_pooled(self):
    rng = np.random.default_rng(1)

    def pair(eot_gain):
      a = rng.random(300) < 0.5
      return a, a | (rng.random(300) < eot_gain)

    def decided(replication_gain):
      root = self.create_tempdir().full_path
      for seed in (0, 1):
        self._workdir(root, seed, *pair(0.3))
      self._workdir(root, 0, *pair(replication_gain),
                    setting=("photos", "ResNet20"))  # fmt: skip
      workdirs = sorted(os.path.join(root, d) for d in os.listdir(root))
      out = os.path.join(root, "results.md")
      text = report.write(workdirs, out)
      decided = verdicts.decide(report.runs(workdirs))
      (d,) = [d for d in decided["decisions"]
              if d["experiment"] == "eot_ablation"]  # fmt: skip
      return decided, d, text

    # EOT far stronger in both settings: decided alike, so it replicates.
    both, d, text = decided(0.3)
    self.assertEqual(d["decision"], "not supported")
    self.assertEqual(both["setting"], {"dataset": "digits", "model": "ResNet8"})
    (rep,) = both["replications"]
    self.assertEqual((rep["dataset"], rep["model"]), ("photos", "ResNet20"))
    self.assertEqual(d["settings"][0]["decision"], "not supported")
    self.assertTrue(d["replicates"])
    # The primary pools its own two seeds only, the replication its one.
    record = both["comparisons"][d["primary"]]
    self.assertEqual(record["seeds"], [0, 1])
    self.assertEqual(record["a"]["n"], 600)
    (mine,) = [r for r in rep["decisions"] if r["experiment"] == "eot_ablation"]
    self.assertEqual(rep["comparisons"][mine["primary"]]["a"]["n"], 300)
    self.assertIn("### Replication: photos, ResNet20", text)
    self.assertIn("seeds 0, 1; photos, ResNet20: not supported, replicated",
                  "\n".join(verdicts.summary(both)))  # fmt: skip
    # No EOT gain on the photos: the primary stands, but does not replicate.
    _, d, _ = decided(0.0)
    self.assertEqual(d["decision"], "not supported")
    self.assertNotEqual(d["settings"][0]["decision"], "not supported")
    self.assertFalse(d["replicates"])

  def test_pooled_decision_follows_its_numbers(self):
    root = self.create_tempdir().full_path
    rng = np.random.default_rng(0)
    outcomes = []
    for seed in range(3):
      a = rng.random(200) < 0.6
      b = np.where(rng.random(200) < 0.03, ~a, a)
      outcomes.append((a, b))
      self._workdir(root, seed, a, b)
    workdirs = sorted(os.path.join(root, d) for d in os.listdir(root))
    out = os.path.join(root, "docs", "results.md")
    json_out = os.path.join(root, "docs", "results.json")
    readme = os.path.join(root, "README.md")
    with open(readme, "w") as f:
      f.write(f"intro\n{report.README_BEGIN}\nold\n{report.README_END}\nend\n")
    report.write(workdirs, out, json_out, readme=readme)
    loaded = workdir_lib.read_json(json_out)
    self.assertEqual(loaded["analysis_plan_digest"], analysis.PLAN.digest())
    self.assertEqual(loaded["analysis_plan"], analysis.PLAN.to_json())
    (decision,) = [d for d in loaded["decisions"]
                   if d["experiment"] == "eot_ablation"]  # fmt: skip
    record = loaded["comparisons"][decision["primary"]]
    self.assertEqual(record["role"], "primary")
    self.assertEqual(record["seeds"], [0, 1, 2])
    self.assertEqual(record["a"]["step"][0]["chosen"], 0.25)
    # The pooled interval recomputes from the concatenated pairs.
    a = np.concatenate([o[0] for o in outcomes])
    b = np.concatenate([o[1] for o in outcomes])
    level = analysis.PLAN.interval_level("i")
    estimate, low, high = stats.paired_difference_interval(a, b, level)
    self.assertAlmostEqual(record["difference"]["estimate"], estimate)
    self.assertEqual(record["difference"]["ci"], [low, high])
    self.assertEqual(record["p_one_sided"], stats.mcnemar_one_sided(a, b))
    expected = analysis.claim_i(analysis.region(low, high, 0.05))
    self.assertEqual(decision["decision"], expected)
    self.assertEqual(record["per_seed"][0]["n"], 200)
    # eps/4 is the smaller of the two candidates: a note, not a screen.
    self.assertIn("seed 2: PGD-100 x EOT-1 chose the smallest step, eps*0.25",
                  record["notes"])  # fmt: skip
    with open(readme) as f:
      text = f.read()
    self.assertIn("intro", text)
    self.assertIn("end", text)
    self.assertNotIn("old", text)
    self.assertIn(f"1 {expected}", text)
    self.assertIn("not run", text)

  def test_an_eps_rule_at_its_largest_candidate_is_noted(self):
    root = self.create_tempdir().full_path
    path = self._workdir(root, 0, [True, False] * 100, [True, False] * 100)
    results = workdir_lib.read_json(os.path.join(path, "results.json"))
    results["eps_sweep"] = {"noise_injection": {
      "candidates": [1 / 255, 2 / 255], "success": [0.3, 0.6],
      "picked": 2 / 255}}  # fmt: skip
    workdir_lib.write_json_atomic(os.path.join(path, "results.json"), results)
    decided = verdicts.decide(report.runs([path]))
    (record,) = [r for r in decided["comparisons"] if r["role"] == "primary"]
    self.assertIn("seed 0: the eps rule picked its largest candidate, 2/255 "
                  "(undefended success there 60 %)", record["notes"])  # fmt: skip
    self.assertIn("Notes beside the primaries", "\n".join(
      verdicts.decision_table(decided)))  # fmt: skip

  def test_results_under_another_plan_are_refused(self):
    root = self.create_tempdir().full_path
    v = [True, False] * 100
    stale = self._workdir(root, 0, v, v, digest="0" * 64)
    with self.assertRaisesRegex(verdicts.PlanMismatchError, "plan 000000"):
      report.write([stale], os.path.join(root, "r.md"))
    path = os.path.join(stale, "results.json")
    results = workdir_lib.read_json(path)
    del results["analysis_plan_digest"]
    workdir_lib.write_json_atomic(path, results)
    with self.assertRaisesRegex(verdicts.PlanMismatchError, "no analysis plan"):
      report.write([stale], os.path.join(root, "r.md"))

  def test_saturated_calibration_is_untestable(self):
    root = self.create_tempdir().full_path
    path = self._workdir(root, 0, [True] * 200, [True] * 200)
    results = workdir_lib.read_json(os.path.join(path, "results.json"))
    for arm in results["arms"]:
      arm["calibration"] = {"successes": 120, "n": 120}
    workdir_lib.write_json_atomic(os.path.join(path, "results.json"), results)
    decided = verdicts.decide(report.runs([path]))
    (d,) = [
      d for d in decided["decisions"] if d["experiment"] == "eot_ablation"
    ]
    self.assertEqual(d["decision"], "untestable")

  def test_claim_iii_decides_the_gap_change_by_the_sign_flip_test(self):
    root = self.create_tempdir().full_path
    rng = np.random.default_rng(2)
    n = 150
    # Before: defended 20 %, undefended 90 % (gap -70 points); after
    # fine-tuning the defended side rises to the undefended one.
    outcomes = {
      (0, "defended"): rng.random(n) < 0.2,
      (0, "undefended"): rng.random(n) < 0.9,
      (2, "defended"): rng.random(n) < 0.85,
      (2, "undefended"): rng.random(n) < 0.9,
    }
    arms = [
      {"defense": "bart_k1", "goal": "untargeted", "epoch": e, "kind": kind,
       "eps": 2 / 255, "eps_is_largest_candidate": False,
       # One image fewer retained in one arm: the four-arm intersection.
       "indices": list(range(n - (kind == "undefended" and e == 2))),
       "per_sample": [bool(v) for v in values[: n - (kind == "undefended"
                                                      and e == 2)]]}
      for (e, kind), values in outcomes.items()
    ]  # fmt: skip
    path = _run_dir(root, "fig3", "fig3", 0, {"gap_arms": arms})
    decided = verdicts.decide(report.runs([path]))
    (d,) = [d for d in decided["decisions"]
            if d["defense"] == "bart_k1" and d["goal"] == "untargeted"]  # fmt: skip
    record = decided["comparisons"][d["primary"]]
    keep = n - 1
    s = {k: v[:keep].astype(int) for k, v in outcomes.items()}
    change = (s[(2, "defended")] - s[(2, "undefended")]) - (
      s[(0, "defended")] - s[(0, "undefended")]
    )
    self.assertEqual(record["n"], keep)
    self.assertAlmostEqual(record["difference"]["estimate"], change.mean())
    self.assertEqual(record["p_one_sided"], stats.sign_flip_test(change))
    low, high = record["difference"]["ci"]
    self.assertGreater(low, 0)
    self.assertEqual(d["decision"], "supported")
    self.assertEqual(d["decision"], analysis.claim_iii(
      analysis.region(low, high, 0.05)))  # fmt: skip
    # The same run reported twice (an old and a new workdir) would double n.
    twin = _run_dir(root, "fig3_again", "fig3", 0, {"gap_arms": arms})
    with self.assertRaisesRegex(ValueError, "fig3_again"):
      verdicts.decide(report.runs([path, twin]))
    # The eps rule at its largest candidate makes the comparison untestable.
    for arm in arms:
      arm["eps_is_largest_candidate"] = arm["epoch"] == 2
    workdir_lib.write_json_atomic(
      os.path.join(path, "results.json"),
      {"gap_arms": arms, "analysis_plan_digest": analysis.PLAN.digest()},
    )
    decided = verdicts.decide(report.runs([path]))
    (d,) = [d for d in decided["decisions"]
            if d["defense"] == "bart_k1" and d["goal"] == "untargeted"]  # fmt: skip
    self.assertEqual(d["decision"], "untestable")

  def test_claim_ii_contrast_is_the_gain_difference_on_shared_images(self):
    root = self.create_tempdir().full_path
    rng = np.random.default_rng(4)
    n, cal = 150, [True] * 50 + [False] * 70
    sides = {}
    arms = []
    for defense in ("smoothing_0_50", "smoothing_0_25"):
      a = rng.random(n) < 0.3
      b = a | (rng.random(n) < (0.2 if defense == "smoothing_0_50" else 0.02))
      sides[defense] = (a, b)
      for (k, m), v in (((100, 1), a), ((10, 10), b)):
        arms.append(_arm(defense, "targeted", k, m, 0.25, cal, v))
    path = _run_dir(root, "fig2", "fig2", 0, {"arms": arms})
    decided = verdicts.decide(report.runs([path]))
    (contrast,) = [c for c in decided["claim_ii_contrasts"]
                   if "not_run" not in c]  # fmt: skip
    gain = {d: b.astype(int) - a.astype(int) for d, (a, b) in sides.items()}
    d = gain["smoothing_0_50"] - gain["smoothing_0_25"]
    self.assertEqual(contrast["n"], n)
    self.assertAlmostEqual(contrast["difference"]["estimate"], d.mean())
    self.assertEqual(contrast["p_one_sided"], stats.sign_flip_test(d))
    self.assertLess(contrast["p_one_sided"], 0.01)

  def test_parts_of_one_run_pool_their_arms(self):
    # table2 and table2:network: one experiment and seed in two workdirs.
    root = self.create_tempdir().full_path
    rng = np.random.default_rng(6)
    cal = [True] * 50 + [False] * 70
    parts = {"table2_seed0": "guo_crop", "table2_network_seed0": "sap"}
    for name, defense in parts.items():
      a = rng.random(150) < 0.5
      pair = ((100, 1), (10, 10)) if defense == "guo_crop" else ((50, 1),
                                                                 (10, 5))  # fmt: skip
      arms = [_arm(defense, "untargeted", k, m, 0.25, cal, a) for k, m in pair]
      _run_dir(root, name, "table2", 0, {"arms": arms})
    paths = [os.path.join(root, name) for name in parts]
    decided = verdicts.decide(report.runs(paths))
    table2 = {d["defense"]: d for d in decided["decisions"]
              if d["experiment"] == "table2"}  # fmt: skip
    for defense in parts.values():
      # Identical sides: no EOT not weaker, within the margin.
      self.assertEqual(table2[defense]["decision"], "supported", defense)
    self.assertEqual(table2["kwta"]["decision"], "not run")
    # The same arm in two parts is refused, naming both.
    copy = os.path.join(root, "table2_again")
    _run_dir(root, "table2_again", "table2", 0, workdir_lib.read_json(
      os.path.join(paths[0], "results.json")))  # fmt: skip
    with self.assertRaisesRegex(ValueError, "table2_again"):
      verdicts.decide(report.runs([*paths, copy]))

  def test_eps_sensitivity_compares_the_primary_pair_at_each_eps(self):
    root = self.create_tempdir().full_path
    rng = np.random.default_rng(7)
    cal_good, cal_bad = [True] * 60 + [False] * 60, [True] * 10 + [False] * 110
    arms, expected = [], {}
    for eps in (1 / 255, 4 / 255):
      a = rng.random(150) < 0.4
      b = a | (rng.random(150) < (0.02 if eps < 2 / 255 else 0.3))
      expected[eps] = (a, b)
      for fraction in (0.25, 0.5):
        # eps/2 wins on calibration at 4/255, eps/4 at 1/255.
        good = (fraction == 0.5) == (eps > 2 / 255)
        for (k, m), v in (((100, 1), a), ((10, 10), b)):
          arm = _arm("noise_injection", "untargeted", k, m, fraction,
                     cal_good if good else cal_bad,
                     v if good else np.zeros(150, bool))  # fmt: skip
          arms.append(arm | {"eps": eps})
    path = _run_dir(root, "eps_sensitivity_seed0", "eps_sensitivity", 0,
                    {"eps_arms": arms, "eps_values": [1 / 255, 4 / 255]})  # fmt: skip
    decided = verdicts.decide(report.runs([path]))
    records = [r for r in decided["comparisons"] if "eps" in r]
    self.assertEqual([r["eps"] for r in records], [1 / 255, 4 / 255])
    for r in records:
      a, b = expected[r["eps"]]
      self.assertEqual(r["role"], "secondary")
      self.assertEqual(r["a"]["step"]["chosen"], 0.25 if r["eps"] < 2 / 255
                       else 0.5)  # fmt: skip
      estimate, low, high = stats.paired_difference_interval(a, b, 0.95)
      self.assertAlmostEqual(r["difference"]["estimate"], estimate)
      self.assertEqual(r["difference"]["ci"], [low, high])
    # No decision rests on it.
    self.assertNotIn("eps_sensitivity", {d["experiment"]
                                         for d in decided["decisions"]})  # fmt: skip
    out = os.path.join(root, "docs", "results.md")
    text = report.write([path], out)
    figure = os.path.join(root, "docs", "figures", "eps_sensitivity.png")
    self.assertTrue(os.path.getsize(figure) > 0)
    self.assertIn("figures/eps_sensitivity.png", text)
    self.assertIn("eps = 4/255, steps chosen", text)

  def test_the_archive_keeps_earlier_sessions_runs(self):
    root = self.create_tempdir().full_path
    kept = os.path.join(root, "docs", "runs")
    v = [True, False] * 100
    # An earlier session archived seeds 0 and 1; this one re-ran seed 1
    # (new outcomes) and ran seed 2.
    earlier = os.path.join(root, "earlier")
    os.makedirs(earlier)
    for seed in (0, 1):
      self._workdir(earlier, seed, v, v)
    report.archive(sorted(os.path.join(earlier, d) for d in os.listdir(
      earlier)), kept)  # fmt: skip
    now = os.path.join(root, "runs")
    os.makedirs(now)
    w = [True] * 150 + [False] * 50
    fresh = [self._workdir(now, seed, w, w) for seed in (1, 2)]
    os.makedirs(os.path.join(now, "unfinished"))  # No results.json.
    workdirs = report.archive([*fresh, os.path.join(now, "unfinished")], kept)
    # The fresh runs themselves (their figures are there), the archive's
    # copy of the older one.
    self.assertEqual(workdirs, [os.path.join(kept, "eot_ablation_seed0"),
                                *fresh])  # fmt: skip
    copy = os.path.join(kept, "eot_ablation_seed2")
    for name in report.ARCHIVED:
      self.assertTrue(os.path.exists(os.path.join(copy, name)))
    self.assertFalse(os.path.exists(os.path.join(copy, "checkpoints")))
    seed1 = workdir_lib.read_json(
      os.path.join(kept, "eot_ablation_seed1", "results.json")
    )
    self.assertEqual(seed1["arms"][0]["evaluation"]["per_sample"], w)
    decided = verdicts.decide(report.runs(workdirs))
    (record,) = [r for r in decided["comparisons"]
                 if r["role"] == "primary" and r["experiment"] == "eot_ablation"]  # fmt: skip
    self.assertEqual(record["seeds"], [0, 1, 2])
    # Dry runs are never archived.
    dry = self._workdir(os.path.join(root, "dry"), 0, v, v)
    path = os.path.join(dry, "results.json")
    workdir_lib.write_json_atomic(path, workdir_lib.read_json(path)
                                  | {"dry_run": True})  # fmt: skip
    with self.assertRaisesRegex(ValueError, "dry runs"):
      report.archive([dry], kept)
    smoke = self._workdir(os.path.join(root, "smoke"), 0, v, v)
    path = os.path.join(smoke, "config.json")
    workdir_lib.write_json_atomic(path, workdir_lib.read_json(path) | {
      "command": ["stochjax", "run", "eot_ablation",
                  "--config=eot_ablation:smoke"]})  # fmt: skip
    with self.assertRaisesRegex(ValueError, "smoke"):
      report.archive([smoke], kept)

  def test_claim_ii_contrast_with_noise_injection_spans_two_runs(self):
    # sigma = 0.5 in fig2's run, noise injection in fig1's: one seed, one
    # split, so the same evaluation images.
    root = self.create_tempdir().full_path
    rng = np.random.default_rng(8)
    n, cal = 150, [True] * 50 + [False] * 70
    gains = {}
    for experiment, defense, lift in (("fig2", "smoothing_0_50", 0.3),
                                      ("fig1", "noise_injection", 0.0)):  # fmt: skip
      a = rng.random(n) < 0.3
      b = a | (rng.random(n) < lift)
      gains[defense] = b.astype(int) - a.astype(int)
      arms = [_arm(defense, "targeted", k, m, 0.25, cal, v)
              for (k, m), v in (((100, 1), a), ((10, 10), b))]  # fmt: skip
      _run_dir(root, f"{experiment}_seed0", experiment, 0, {"arms": arms})
    paths = sorted(os.path.join(root, d) for d in os.listdir(root))
    decided = verdicts.decide(report.runs(paths))
    (contrast,) = [c for c in decided["claim_ii_contrasts"]
                   if "not_run" not in c]  # fmt: skip
    self.assertEqual(contrast["weak"], "noise_injection")
    # Runs of one seed on other images are never paired.
    for i, path in enumerate(paths):
      results = workdir_lib.read_json(os.path.join(path, "results.json"))
      results["split"] = {"calibration_indices": [i]}
      workdir_lib.write_json_atomic(os.path.join(path, "results.json"),
                                    results)  # fmt: skip
    with self.assertRaisesRegex(ValueError, "splits differ"):
      verdicts.decide(report.runs(paths))
    d = gains["smoothing_0_50"] - gains["noise_injection"]
    self.assertAlmostEqual(contrast["difference"]["estimate"], d.mean())
    self.assertEqual(contrast["p_one_sided"], stats.sign_flip_test(d))

  def test_claim_ii_contrast_waits_for_both_defenses(self):
    # A run with the strong defense only (a dry run's grid, a run cut
    # short) has no contrast yet; the decisions still follow.
    root = self.create_tempdir().full_path
    rng = np.random.default_rng(5)
    cal = [True] * 50 + [False] * 70
    a = rng.random(150) < 0.3
    arms = [_arm("smoothing_0_50", "targeted", k, m, 0.25, cal, a)
            for k, m in ((100, 1), (10, 10))]  # fmt: skip
    path = _run_dir(root, "fig2", "fig2", 0, {"arms": arms})
    decided = verdicts.decide(report.runs([path]))
    self.assertEqual([c["weak"] for c in decided["claim_ii_contrasts"]],
                     ["noise_injection", "smoothing_0_25"])  # fmt: skip
    for contrast in decided["claim_ii_contrasts"]:
      self.assertIn("fig2", contrast["not_run"])
    self.assertIn("smoothing_0_25: not run", report.write(
      [path], os.path.join(root, "r.md")))  # fmt: skip
    (claim_ii,) = [d for d in decided["decisions"] if d["claim"] == "ii"]
    # Nothing run at all: both contrasts say so.
    empty = verdicts.decide([])["claim_ii_contrasts"]
    self.assertEqual([c["weak"] for c in empty if "not_run" in c],
                     ["noise_injection", "smoothing_0_25"])  # fmt: skip
    # Its weak components (fig1, fig2 at sigma = 0.25) were not run.
    self.assertEqual(claim_ii["decision"], "not run")


if __name__ == "__main__":
  absltest.main()


class BookClaimTest(absltest.TestCase):
  """The book's RSE against adversarial training (plan amendment 5)."""

  def _run(self, root, reference_calibration_successes=20):
    rng = np.random.default_rng(7)
    calibration, evaluation = list(range(120)), list(range(120, 320))
    self.robust = {}

    def arm(defense, k, m, retained_rate, success_rate, cal_successes):
      kept = [i for i in evaluation if rng.random() < retained_rate]
      broken = [bool(rng.random() < success_rate) for _ in kept]
      self.robust.setdefault(defense, np.array(
        [i in kept and not broken[kept.index(i)] for i in evaluation]))  # fmt: skip
      return {
        "defense": defense, "goal": "untargeted", "k": k, "m": m,
        "step_fraction": 0.25, "ablation": False,
        "calibration": {"successes": cal_successes, "n": 100},
        "evaluation": {"indices": kept, "per_sample": broken},
      }  # fmt: skip

    arms = [
      # The strongest on calibration images first (its numbers are kept).
      arm("rse", 20, 20, 0.85, 0.7, 90),
      arm("rse", 10, 1, 0.85, 0.0, 40),  # Weaker: never breaks anything.
      arm("adversarial_training", 50, 1, 0.8, 0.3,
          reference_calibration_successes),
      arm("noise_injection", 10, 10, 0.9, 0.95, 95),
      arm("noise_injection", 200, 1, 0.9, 0.5, 50),  # Larger, weaker.
    ]  # fmt: skip
    invariance = {w: {"mean": 0.5, "ci": [0.4, 0.6], "per_image": []}
                  for w in ("before", "after")}  # fmt: skip
    results = {
      "arms": arms,
      "split": {"calibration_indices": calibration,
                "evaluation_indices": evaluation},
      "rse_invariance": invariance,
    }  # fmt: skip
    return _run_dir(root, "rse_seed0", "rse", 0, results)

  def test_decision_follows_robust_accuracy_of_the_strongest_arms(self):
    root = self.create_tempdir().full_path
    path = self._run(root)
    record = verdicts.decide(report.runs([path]))["book"]
    rse, at = self.robust["rse"], self.robust["adversarial_training"]
    estimate, low, high = stats.paired_difference_interval(at, rse, 0.95)
    self.assertAlmostEqual(record["difference"]["estimate"], estimate)
    self.assertAlmostEqual(estimate, rse.mean() - at.mean())
    self.assertEqual(record["difference"]["ci"], [low, high])
    self.assertLess(high, -0.05)  # RSE far less robust here.
    self.assertEqual(record["decision"], analysis.book_claim(low, high, 0.05))
    self.assertEqual(record["decision"], "not supported")
    self.assertEqual(record["sides"]["rse"]["attack"],
                     "PGD-20 x EOT-20, step eps*0.25")  # fmt: skip
    self.assertEqual(record["p_one_sided"], stats.mcnemar_one_sided(rse, at))
    ni = self.robust["noise_injection"]
    self.assertAlmostEqual(record["defended_vs_reference"]["estimate"],
                           ni.mean() - at.mean())  # fmt: skip
    text = "\n".join(verdicts.book_lines(record))
    self.assertIn("**not supported**", text)
    # RSE's strongest arm is its largest budget (400) and adversarial
    # training's PGD-50 its only one; noise injection's (100) is not.
    at_edge = {role: record["per_seed"][0][role]["at_largest_budget"]
               for role in verdicts.BOOK_ENTRIES}  # fmt: skip
    self.assertEqual(at_edge, {"rse": True, "reference": True,
                               "defended": False})  # fmt: skip
    self.assertIn("largest budget, so a larger one might break more "
                  "(robust accuracy an upper bound): adversarial_training "
                  "(seed 0), rse (seed 0).", text)  # fmt: skip
    summary = "\n".join(verdicts.summary(verdicts.decide(report.runs([path]))))
    self.assertIn("The book's claim (RSE only slightly worse than "
                  "adversarial training, `rse`): not supported", summary)  # fmt: skip

  def test_a_replication_is_decided_alone_and_named_in_the_summary(self):
    root = self.create_tempdir().full_path
    primary = self._run(root)
    results = workdir_lib.read_json(os.path.join(primary, "results.json"))
    # The same arms on another setting, but adversarial training's attack
    # never succeeds there: decided alone, never pooled with the primary.
    for a in results["arms"]:
      if a["defense"] == "adversarial_training":
        a["evaluation"]["per_sample"] = [False] * len(
          a["evaluation"]["indices"]
        )
    other = _run_dir(root, "rse_photos", "rse", 0, results,
                     setting=("photos", "ResNet8"))  # fmt: skip
    decided = verdicts.decide(report.runs([primary, other]))
    alone = verdicts.decide(report.runs([primary]))
    self.assertEqual(decided["book"], alone["book"])
    (rep,) = decided["replications"]
    self.assertEqual((rep["dataset"], rep["model"]), ("photos", "ResNet8"))
    self.assertLess(rep["book"]["difference"]["estimate"],
                    decided["book"]["difference"]["estimate"])  # fmt: skip
    line = verdicts.summary(decided)[-1]
    self.assertIn("; photos, ResNet8: not supported "
                  f"{100 * rep['book']['difference']['estimate']:+.1f}", line)  # fmt: skip

  def test_parts_of_one_seed_pool_to_the_whole_runs_record(self):
    root = self.create_tempdir().full_path
    whole = report.runs([self._run(root)])
    results = whole[0].results
    rse_part = results | {
      "arms": [a for a in results["arms"] if a["defense"] == "rse"]
    }
    reference = {k: v for k, v in results.items() if k != "rse_invariance"}
    reference["arms"] = [a for a in results["arms"] if a["defense"] != "rse"]
    parts = [
      _run_dir(root, "rse_part", "rse", 0, rse_part),
      _run_dir(root, "rse_reference", "rse", 0, reference),
    ]
    self.assertEqual(
      verdicts.decide(report.runs(parts))["book"],
      verdicts.decide(whole)["book"],
    )
    both = _run_dir(root, "rse_both_invariance", "rse", 0,
                    reference | {"rse_invariance": results["rse_invariance"]})  # fmt: skip
    with self.assertRaisesRegex(ValueError, "2 runs hold RSE's invariance"):
      verdicts.decide(report.runs([parts[0], both]))
    with self.assertRaisesRegex(ValueError, "0 runs hold RSE's invariance"):
      verdicts.decide(report.runs([parts[1]]))
    with self.assertRaisesRegex(ValueError, "no arm of 'adversarial_"):
      verdicts.decide(report.runs([parts[0]]))
    with self.assertRaisesRegex(ValueError, "both hold arms"):
      verdicts.decide(report.runs([parts[0], parts[1], both]))

  def test_a_reference_that_is_not_robust_makes_it_untestable(self):
    root = self.create_tempdir().full_path
    # 95 of 100 retained calibration images broken: 5/120 robust < 10 %.
    path = self._run(root, reference_calibration_successes=95)
    record = verdicts.decide(report.runs([path]))["book"]
    self.assertEqual(record["decision"], "untestable")
    self.assertIn("4 % < 10 %", record["screens"][0])

  def test_margin_rule(self):
    self.assertEqual(analysis.book_claim(-0.04, 0.02, 0.05), "supported")
    self.assertEqual(analysis.book_claim(-0.2, -0.06, 0.05), "not supported")
    self.assertEqual(analysis.book_claim(-0.1, 0.0, 0.05), "inconclusive")
