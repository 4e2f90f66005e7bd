"""Strict JAX settings for every test (house style rule 15), and one
persistent compilation cache per test session.

Two tiers: ``python -m pytest -n 2`` runs the default tier (pyproject's
``-m "not slow"``); ``python -m pytest -n 2 -m slow`` runs the tests marked
``@pytest.mark.slow`` (the `:paper` dry runs, full experiment smokes,
multi-process sharding, long statistical checks).
"""

import os
import shutil
import tempfile

# One persistent compilation cache for a test session, never the user's:
# made by the controller, inherited by pytest-xdist's workers and by the
# subprocesses tests start, removed when the session that made it ends.
# Each worker compiles into its own folder (JAX writes entries without a
# lock, and a half-written entry read by the other worker would warn, an
# error here); the `:paper` dry runs share the root (`--compilation_cache`).
_OWNER = "STOCHJAX_TEST_CACHE" not in os.environ
if _OWNER:
  os.environ["STOCHJAX_TEST_CACHE"] = tempfile.mkdtemp(
    prefix="stochjax-test-cache-"
  )
SESSION_CACHE = os.environ["STOCHJAX_TEST_CACHE"]
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(
  SESSION_CACHE, os.environ.get("PYTEST_XDIST_WORKER", "main")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402

import stochjax  # noqa: E402, F401  (sets the safe XLA flags first)

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_default_matmul_precision", "float32")

# absltest helpers (create_tempdir) read absl flags; pytest does not parse them.
flags.FLAGS.mark_as_parsed()


# The default tier compiles with LLVM at -O0 (XLA's HLO passes unchanged):
# its programs are small and much of its time was LLVM optimizing code that
# runs once (docs/performance.md#tests). The slow tier, and any run selecting
# other marks, keeps XLA's default, which users run (but for the `:paper` dry
# runs' subprocesses, tests/dry_run_test.py); so in CI each test runs
# at one of the two settings. STOCHJAX_TEST_OPT_LEVEL overrides ('' = XLA's
# default); the backend must not start before this hook (importing jax and
# stochjax starts none).
_FAST_COMPILE = "--xla_backend_optimization_level="


def pytest_configure(config):
  """Before any backend starts (workers inherit the environment)."""
  level = os.environ.get(
    "STOCHJAX_TEST_OPT_LEVEL",
    "0" if config.getoption("markexpr") == "not slow" else "",
  )
  xla_flags = os.environ.get("XLA_FLAGS", "")
  if level and _FAST_COMPILE not in xla_flags:
    from jax._src import xla_bridge  # noqa: PLC0415  (as stochjax._xla_flags)

    if xla_bridge.backends_are_initialized():
      raise pytest.UsageError("JAX's backend started before pytest_configure")
    os.environ["XLA_FLAGS"] = f"{xla_flags} {_FAST_COMPILE}{level}".strip()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
  """Marks slow the cases named by `test_utils.slow_cases`."""
  del config
  for item in items:
    cases = getattr(getattr(item, "obj", None), "slow_cases", None)
    if cases is None:
      continue
    method = getattr(item.obj, "__wrapped__", item.obj).__name__
    if item.name.removeprefix(method).removeprefix("_") in cases:
      item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  if _OWNER:
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)
