"""The safe XLA:CPU flag is set on import, or a warning says it is too late."""

import os
import subprocess
import sys

from absl.testing import absltest

_ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
_ENV["JAX_PLATFORMS"] = "cpu"


def _run(code: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, "-W", "always", "-c", code],
    env=_ENV,
    capture_output=True,
    text=True,
    check=True,
  )


class XlaFlagsTest(absltest.TestCase):
  def test_import_sets_flag(self):
    out = _run("import os, stochjax; print(os.environ['XLA_FLAGS'])")
    self.assertIn("--xla_cpu_experimental_ynn_fusion_type=", out.stdout.split())

  def test_user_choice_is_kept(self):
    env_code = (
      "import os; os.environ['XLA_FLAGS'] = "
      "'--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT'; "
      "import stochjax; print(os.environ['XLA_FLAGS'], stochjax.SAFE_XLA_CPU)"
    )
    out = _run(env_code)
    self.assertIn("LIBRARY_FUSION_TYPE_DOT False", out.stdout)

  def test_warns_if_backend_started_first(self):
    out = _run(
      "import jax; jax.numpy.zeros(1).block_until_ready(); import stochjax"
    )
    self.assertIn("RuntimeWarning", out.stderr)
    self.assertIn("Import stochjax first", out.stderr)


if __name__ == "__main__":
  absltest.main()
