"""An installed stochjax, not the checkout: a wheel built from a clean copy
of the tree, installed (not editable) into a fresh venv, run from a user's
empty folder on the user's own model and defense."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest
from absl.testing import absltest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What a checkout holds beside the sources: never part of a clean build.
_NOT_SOURCES = shutil.ignore_patterns(
  ".git", "build", "dist", "*.egg-info", "__pycache__", "runs", "venv",
  ".venv", "workdir",
)  # fmt: skip

_MODEL = '''
import jax.numpy as jnp
import numpy as np


def apply(params, images):
  return images.reshape(images.shape[0], -1) @ params["w"]


def make():
  """(apply_fn, params): a fixed linear map on 32 x 32 x 3 images."""
  w = np.random.default_rng(0).normal(size=(32 * 32 * 3, 10)) / 50
  return apply, {"w": jnp.asarray(w, jnp.float32)}
'''

_DEFENSE = '''
import jax
import jax.numpy as jnp


def noisy(key, image):
  """Gaussian noise of std 0.05, clipped to [0, 1]."""
  return jnp.clip(image + 0.05 * jax.random.normal(key, image.shape), 0, 1)
'''


def _run(command, cwd, env, timeout=900):
  done = subprocess.run(
    command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
  )
  return done, done.stdout[-3000:] + done.stderr[-6000:]


@pytest.mark.slow
class InstalledTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    root = self.create_tempdir().full_path
    source = os.path.join(root, "source")
    shutil.copytree(_ROOT, source, ignore=_NOT_SOURCES)
    wheels = os.path.join(root, "wheels")
    # Built as pip builds any sdist: in an isolated build environment
    # (setuptools from the package registry, as `pip install` gets it).
    done, log = _run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, source],
      root, os.environ,
    )  # fmt: skip
    self.assertEqual(done.returncode, 0, log)
    (wheel,) = os.listdir(wheels)
    self.venv = os.path.join(root, "venv")
    subprocess.run([sys.executable, "-m", "venv", self.venv], check=True)
    pip = os.path.join(self.venv, "bin", "pip")
    done, log = _run(
      [pip, "install", "--no-deps", "--no-index", os.path.join(wheels, wheel)],
      root, os.environ,
    )  # fmt: skip
    self.assertEqual(done.returncode, 0, log)
    # The dependencies come from this test's environment (a path, not its
    # .pth files: its editable stochjax stays out).
    python = os.path.join(self.venv, "bin", "python")
    purelib = subprocess.run(
      [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
      check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    with open(os.path.join(purelib, "test_dependencies.pth"), "w") as f:
      f.write(sysconfig.get_paths()["purelib"] + "\n")
    self.user = os.path.join(root, "user")
    os.makedirs(self.user)
    self.env = {
      k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PWD")
    } | {"JAX_PLATFORMS": "cpu", "STOCHJAX_PROGRESS": "0"}

  def _bin(self, name):
    return os.path.join(self.venv, "bin", name)

  def test_the_audit_runs_on_a_users_model_and_defense_in_their_folder(self):
    with open(os.path.join(self.user, "my_model.py"), "w") as f:
      f.write(textwrap.dedent(_MODEL))
    with open(os.path.join(self.user, "my_defense.py"), "w") as f:
      f.write(textwrap.dedent(_DEFENSE))
    done, log = _run(
      [self._bin("python"), "-c", "import stochjax; print(stochjax.__file__)"],
      self.user, self.env,
    )  # fmt: skip
    self.assertEqual(done.returncode, 0, log)
    self.assertTrue(done.stdout.strip().startswith(self.venv), log)
    done, log = _run(
      [self._bin("stochjax-audit"), "--help"], self.user, self.env
    )
    self.assertEqual(done.returncode, 0, log)
    for flag in (
      "--config",
      "--workdir",
      "--[no]break_lock",
      "--[no]overwrite",
    ):
      self.assertIn(flag, done.stdout)
    done, log = _run(
      [self._bin("stochjax-audit"), "--config=audit:smoke", "--workdir=audit",
       "--config.defense=my_defense:noisy", "--config.model.factory=my_model:make",
       "--compilation_cache="],
      self.user, self.env,
    )  # fmt: skip
    self.assertEqual(done.returncode, 0, log)
    with open(os.path.join(self.user, "audit", "audit.json")) as f:
      report = json.load(f)
    self.assertIn("verdict", report["sanity"])
    self.assertTrue(
      os.path.exists(os.path.join(self.user, "audit", "audit.md"))
    )
    with open(os.path.join(self.user, "audit", "config.json")) as f:
      stored = json.load(f)["config"]
    self.assertEqual(stored["defense"], "my_defense:noisy")

  def test_a_paper_config_runs_by_name_and_a_users_file_by_path(self):
    done, log = _run([self._bin("stochjax"), "configs"], self.user, self.env)
    self.assertEqual(done.returncode, 0, log)
    self.assertIn("eot_ablation", done.stdout.split())
    done, log = _run(
      [self._bin("stochjax"), "run", "section5", "--config=section5:smoke",
       "--workdir=s5", "--config.dry_run=True", "--compilation_cache="],
      self.user, self.env,
    )  # fmt: skip
    self.assertEqual(done.returncode, 0, log)  # The dry run's field checks.
    with open(os.path.join(self.user, "s5", "results.json")) as f:
      self.assertTrue(json.load(f)["dry_run"])
    with open(os.path.join(self.user, "mine.py"), "w") as f:
      f.write(
        "from stochjax.configs import section5\n\n"
        "def get_config(arg=None):\n"
        "  config = section5.get_config('smoke')\n"
        "  config.sigmas = (0.25,)\n"
        "  return config\n"
      )
    done, log = _run(
      [self._bin("stochjax"), "run", "section5", "--config=mine.py",
       "--workdir=mine", "--compilation_cache="],
      self.user, self.env,
    )  # fmt: skip
    self.assertEqual(done.returncode, 0, log)
    with open(os.path.join(self.user, "mine", "results.json")) as f:
      self.assertEqual({r["sigma"] for r in json.load(f)["rows"]}, {0.25})


if __name__ == "__main__":
  absltest.main()
