"""The two test tiers: the default tier names everything the slow tier
names (tools/default_tier_coverage.py), and cases are marked as declared."""

import importlib.util
import os

import pytest
from absl.testing import absltest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool():
  path = os.path.join(_ROOT, "tools", "default_tier_coverage.py")
  spec = importlib.util.spec_from_file_location("default_tier_coverage", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


class DefaultTierTest(absltest.TestCase):
  def test_no_public_name_or_module_is_named_by_slow_tests_only(self):
    tool = _tool()
    gaps = tool.gaps(
      os.path.join(_ROOT, "stochjax"), os.path.join(_ROOT, "tests")
    )
    self.assertEqual(gaps.lost_names, [])
    self.assertEqual(gaps.lost_modules, [])

  def test_the_tool_sees_slow_marks(self):
    folder = self.create_tempdir()
    package = folder.mkdir("pkg")
    package.create_file("__init__.py")
    package.create_file(
      "mod.py", "def fast():\n  pass\n\ndef slow():\n  pass\n"
    )
    tests = folder.mkdir("tests")
    tests.create_file(
      "a_test.py",
      "import pytest\n\n"
      "def test_fast():\n  mod.fast()\n\n"
      "@pytest.mark.slow\ndef test_slow():\n  mod.slow()\n",
    )
    gaps = _tool().gaps(package.full_path, tests.full_path)
    self.assertEqual(gaps.lost_names, ["pkg.mod:slow"])
    self.assertEqual(gaps.lost_modules, [])


def test_cases_marked_slow_are_not_in_the_default_tier(request):
  """`test_utils.slow_cases` as `tests/conftest.py` applies it."""
  if request.config.getoption("markexpr") != "not slow":
    pytest.skip("a default-tier check")
  names = {item.name for item in request.session.items}
  if "test_contract_rotation" not in names:
    pytest.skip("defenses_test.py was not collected in this run")
  assert "test_contract_median" not in names
  assert "test_distribution_matches_scipy3" in names  # rate 9.99: kept
  assert "test_distribution_matches_scipy1" not in names  # rate 0.3: slow


def test_the_default_tier_compiles_at_llvm_o0_and_others_at_the_default(
  request,
):
  """`tests/conftest.py`: the default tier's fast-compile setting reaches
  XLA (the workers inherit it); any other selection runs XLA's default."""
  if "STOCHJAX_TEST_OPT_LEVEL" in os.environ:
    pytest.skip("the level was set by hand")
  flags = os.environ.get("XLA_FLAGS", "").split()
  fast = "--xla_backend_optimization_level=0" in flags
  assert fast == (request.config.getoption("markexpr") == "not slow")
