"""Public stochjax names the slow tier refers to and the default tier does not.

    python tools/default_tier_coverage.py [--tests tests] [--package stochjax]

A public name is a module-level function or class whose name does not start
with ``_``, in a module whose path has no part starting with ``_``. A test
refers to it when the name appears in the default tier's test code (an
identifier, an attribute, an import, or a word inside a string, which is how
configs and spec strings such as ``"median(size=3)"`` name things). The
default tier is every test module's code less the classes and functions
marked ``@pytest.mark.slow`` and the modules whose ``pytestmark`` is slow.

Moving a test to the slow tier must not leave a public name, or a module,
that some test names without a default-tier test naming it. A
reference, not coverage: it shows that a default-tier test names the
function, which a test of it does. Exits 1 when the default tier lost a
name or a module; lists (and tolerates) the names no test refers to.
"""

import argparse
import ast
import pathlib
import re
import sys
from typing import NamedTuple

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def public_names(package: pathlib.Path) -> dict[str, str]:
  """``{name: "module.path:name"}`` for every public function and class."""
  names = {}
  for path in sorted(package.rglob("*.py")):
    parts = path.relative_to(package.parent).with_suffix("").parts
    if any(p.startswith("_") and p != "__init__" for p in parts):
      continue
    tree = ast.parse(path.read_text(), filename=str(path))
    module = ".".join(p for p in parts if p != "__init__")
    for node in tree.body:
      if isinstance(node, ast.FunctionDef | ast.ClassDef):
        if not node.name.startswith("_"):
          names.setdefault(node.name, f"{module}:{node.name}")
  return names


def _is_slow(expression: ast.expr) -> bool:
  """``pytest.mark.slow`` (or ``mark.slow``), called or not."""
  if isinstance(expression, ast.Call):
    expression = expression.func
  return isinstance(expression, ast.Attribute) and expression.attr == "slow"


def _slow_module(tree: ast.Module) -> bool:
  for node in tree.body:
    if isinstance(node, ast.Assign) and any(
      isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
    ):
      values = getattr(node.value, "elts", [node.value])
      return any(_is_slow(v) for v in values)
  return False


class _Words(ast.NodeVisitor):
  """Collects every identifier and string word (outside slow tests unless
  `slow`)."""

  def __init__(self, slow: bool):
    self.slow = slow
    self.words: set[str] = set()

  def _visit_definition(self, node):
    if self.slow or not any(_is_slow(d) for d in node.decorator_list):
      self.generic_visit(node)

  visit_ClassDef = _visit_definition
  visit_FunctionDef = _visit_definition

  def visit_Name(self, node):
    self.words.add(node.id)

  def visit_Attribute(self, node):
    self.words.add(node.attr)
    self.generic_visit(node)

  def visit_alias(self, node):
    self.words.update(node.name.split("."))

  def visit_Constant(self, node):
    if isinstance(node.value, str):
      self.words.update(_WORD.findall(node.value))


def test_words(tests: pathlib.Path, *, slow: bool) -> set[str]:
  """Every word the tests' code uses: all of it, or the default tier's."""
  visitor = _Words(slow)
  for path in sorted(tests.rglob("*.py")):
    tree = ast.parse(path.read_text(), filename=str(path))
    if slow or not _slow_module(tree):
      visitor.visit(tree)
  return visitor.words


class Gaps(NamedTuple):
  lost_names: list[str]  # named by a slow test only
  lost_modules: list[str]  # named (or their names) by slow tests only
  untested: list[str]  # named by no test at all


def gaps(package: str, tests: str) -> Gaps:
  names = public_names(pathlib.Path(package))
  every = test_words(pathlib.Path(tests), slow=True)
  default = test_words(pathlib.Path(tests), slow=False)
  lost = [w for n, w in names.items() if n in every and n not in default]
  modules = {w.split(":")[0] for w in names.values()}

  def covered(words):
    return {m for m in modules if m.rsplit(".", 1)[-1] in words} | {
      w.split(":")[0] for n, w in names.items() if n in words
    }

  lost_modules = covered(every) - covered(default)
  untested = [w for n, w in names.items() if n not in every]
  return Gaps(sorted(lost), sorted(lost_modules), sorted(untested))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--package", default="stochjax")
  parser.add_argument("--tests", default="tests")
  args = parser.parse_args(argv)
  found = gaps(args.package, args.tests)
  for title, names in zip(Gaps._fields, found, strict=True):
    print(f"{title}: {len(names)}")
    for where in names:
      print(f"  {where}")
  return 1 if found.lost_names or found.lost_modules else 0


if __name__ == "__main__":
  sys.exit(main())
