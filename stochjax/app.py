"""The experiment runner: the flags every experiment shares.

    python -m experiments.eot_ablation --config=configs/eot_ablation.py:smoke \
        --workdir=runs/smoke [--config.attack.num_votes=50] [--overwrite]

`run(main)` parses ``--config`` (an ml_collections file, locked, so a
misspelt override is an error), ``--workdir``, ``--overwrite``,
``--[no]progress`` and ``--compilation_cache`` (JAX's persistent cache,
on by default under ~/.cache/stochjax; '' disables it), starts
multi-host JAX when the config asks, claims the workdir
(`stochjax.workdir.Workdir`: re-running on a workdir that holds a different
config is refused, with the difference shown, unless ``--overwrite`` is
given), calls ``main(config, workdir)`` and writes its results.
"""

import os
import time
from collections.abc import Callable

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from stochjax import progress, sharding
from stochjax import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Config file (configs/<name>.py[:variant]).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for this run.")
_OVERWRITE = flags.DEFINE_bool(
  "overwrite", False, "Reuse a workdir that holds a different config."
)
_PROGRESS = flags.DEFINE_bool(
  "progress", True, "Progress bars (shown only on a terminal)."
)
_CACHE = flags.DEFINE_string(
  "compilation_cache",
  os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
    "stochjax",
    "jax",
  ),
  "JAX's persistent compilation cache folder ('' to disable): a second run "
  "of an experiment reuses the compiled attacks and votes.",
)


def use_compilation_cache(directory: str) -> None:
  """Turns on JAX's persistent compilation cache in `directory` ('' turns
  nothing on)."""
  if not directory:
    return
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def run(
  main: Callable[[ml_collections.ConfigDict, workdir_lib.Workdir], dict],
) -> None:
  """Parses flags and calls ``main(config, workdir)``; writes results.json."""
  flags.mark_flags_as_required(["config", "workdir"])

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    if not _PROGRESS.value:
      progress.set_enabled(False)
    use_compilation_cache(_CACHE.value)
    sharding.initialize(config.get("distributed", False))
    workdir = workdir_lib.Workdir(_WORKDIR.value)
    workdir.claim(config, _OVERWRITE.value)
    logging.info("devices: %s", jax.devices())
    logging.info("versions: %s", workdir_lib.versions())
    start = time.time()
    results = main(config, workdir)
    results["wall_seconds"] = time.time() - start
    workdir.write_results(results)
    logging.info("results: %s", workdir.file("results.json"))

  app.run(_main)
