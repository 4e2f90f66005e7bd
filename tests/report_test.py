"""The markdown report: sections per workdir, with the paper's numbers."""

import os

import scipy.stats
from absl.testing import absltest

from stochjax import stats
from stochjax.harness import report
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

  def test_unknown_results_are_refused(self):
    root = self.create_tempdir().full_path
    odd = _workdir(root, "odd", {"something": 1})
    with self.assertRaisesRegex(ValueError, "not from a known experiment"):
      report.write([odd], os.path.join(root, "report.md"))


class ResultsJsonTest(absltest.TestCase):
  def _workdir(self, root, name, seed, a, b):
    record = stats.compare(
      "PGD-100 x EOT-1", a, "PGD-10 x EOT-10", b, paired=True,
      claim="ii", experiment="fig2", defense="smoothing_0_50",
      goal="targeted", panel="p", seed=seed,
    )  # fmt: skip
    path = os.path.join(root, name)
    os.makedirs(path)
    workdir_lib.write_json_atomic(
      os.path.join(path, "results.json"), {"comparisons": [record]}
    )
    return path

  def test_round_trip_and_verdicts_follow_p_values(self):
    root = self.create_tempdir().full_path
    strong = [False] * 30 + [True] * 70
    weak = [False] * 80 + [True] * 20
    workdirs = [
      self._workdir(root, "fig2", 0, weak, strong),
      self._workdir(root, "fig2_seed1", 1, weak, strong),
      self._workdir(root, "fig2_seed2", 2, strong[:50], strong[:50]),
    ]
    out = os.path.join(root, "results.md")
    json_out = os.path.join(root, "results.json")
    text = report.write(workdirs, out, json_out)
    loaded = workdir_lib.read_json(json_out)
    self.assertEqual(loaded, report.collect(workdirs))
    for record in loaded["comparisons"]:
      a, b = record["a"], record["b"]
      p = (
        scipy.stats.binomtest(
          record["only_a"], record["only_a"] + record["only_b"]
        ).pvalue
        if record["only_a"] + record["only_b"]
        else 1.0
      )
      self.assertAlmostEqual(record["p_value"], p)
      expected = "tie"
      if p < 0.05:
        expected = "a" if a["rate"] > b["rate"] else "b"
      self.assertEqual(record["verdict"], expected)
    self.assertEqual(
      [r["status"] for r in loaded["comparisons"]],
      ["reproduced", "reproduced", "not shown"],
    )
    # Claim (ii) needs 200 samples per side; these rest on 100 and 50.
    self.assertTrue(all(r["underpowered"] for r in loaded["comparisons"]))
    self.assertIn("reproduced (underpowered)", text)
    (robust,) = loaded["robustness"]
    self.assertEqual(robust["verdicts"], ["b", "b", "tie"])
    self.assertFalse(robust["holds_in_all"])
    self.assertIn("| ii | fig2 (seed 0)", text)
    self.assertIn("34.8 / 40.3", text)  # The paper's numbers beside ours.


if __name__ == "__main__":
  absltest.main()
