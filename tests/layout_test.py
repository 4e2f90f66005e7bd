"""The line between library and harness, read from the imports."""

import ast
import os
import shutil
import subprocess

from absl.testing import absltest

_PACKAGE = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stochjax"
)
# Above the library: the harness, the drivers on it, the shipped configs.
_HARNESS = ("stochjax.harness",)
_DRIVERS = ("stochjax.paper", "stochjax.audit.run", "stochjax.__main__")
_CONFIGS = ("stochjax.configs",)


def _modules() -> dict[str, set[str]]:
  """Every stochjax module and the stochjax modules it imports (at any
  depth in the file: imports inside functions count)."""
  out = {}
  for folder, _, files in os.walk(_PACKAGE):
    for name in files:
      if not name.endswith(".py"):
        continue
      path = os.path.join(folder, name)
      relative = os.path.relpath(path, os.path.dirname(_PACKAGE))
      module = relative[: -len(".py")].replace(os.sep, ".")
      module = module.removesuffix(".__init__")
      with open(path) as f:
        tree = ast.parse(f.read())
      imported = set()
      for node in ast.walk(tree):
        if isinstance(node, ast.Import):
          imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
          imported |= {node.module} | {
            f"{node.module}.{a.name}" for a in node.names
          }
      out[module] = {m for m in imported if m.startswith("stochjax")}
  return out


def _within(module: str, packages) -> bool:
  return any(module == p or module.startswith(p + ".") for p in packages)


class LayoutTest(absltest.TestCase):
  def test_the_library_never_imports_the_harness_drivers_or_configs(self):
    above = _HARNESS + _DRIVERS + _CONFIGS
    for module, imported in _modules().items():
      if _within(module, above):
        continue
      with self.subTest(module=module):
        self.assertEqual(
          {m for m in imported if _within(m, above)}, set(), module
        )

  def test_the_harness_never_imports_a_driver(self):
    for module, imported in _modules().items():
      if not _within(module, _HARNESS) or module == "stochjax.harness.cli":
        continue  # The command imports the chosen driver, by name.
      with self.subTest(module=module):
        self.assertEqual(
          {m for m in imported if _within(m, _DRIVERS)}, set(), module
        )

  def test_training_does_not_import_the_evaluation_protocol(self):
    self.assertNotIn("stochjax.evaluate", _modules()["stochjax.train"])
    self.assertNotIn("stochjax.evaluate", _modules()["stochjax.voting"])

  def test_the_report_archive_is_not_git_ignored(self):
    # docs/runs keeps every run a report covers; an ignore rule that
    # matched it (a bare `runs/`) once lost the archive between sessions.
    root = os.path.dirname(_PACKAGE)
    if shutil.which("git") is None or not os.path.exists(
        os.path.join(root, ".git")):  # fmt: skip
      self.skipTest("not a git checkout")
    paths = ["docs/runs/fig1/results.json", "docs/results.json", "runs/x"]
    ignored = subprocess.run(
      ["git", "check-ignore", "--no-index", *paths],
      cwd=root, capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    self.assertEqual(ignored, ["runs/x"])


if __name__ == "__main__":
  absltest.main()
