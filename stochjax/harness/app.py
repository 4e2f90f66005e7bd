"""The experiment runner: the flags every experiment shares.

    stochjax run eot_ablation --config=eot_ablation:smoke --workdir=runs/smoke \
        [--config.attack.num_votes=50] [--overwrite]

`run(main, argv)` defines and parses ``--config`` (a shipped config's name,
``eot_ablation`` or ``eot_ablation:smoke``, or an ml_collections file
``path/to/config.py[:variant]``; locked, so a misspelt override is an
error), ``--workdir``, ``--overwrite``, ``--break_lock``,
``--[no]progress`` and ``--compilation_cache`` (JAX's persistent cache, on
by default under ~/.cache/stochjax; '' disables it), starts multi-host JAX
when the config asks, locks and claims the workdir
(`stochjax.harness.workdir.Workdir`: a workdir another live run holds is
refused; re-running on one that holds a different config is refused, with
the difference shown, unless ``--overwrite`` is given), calls
``main(config, workdir)`` and writes its results. Flags are defined when
`run` is called, never at import.
"""

import contextlib
import importlib.resources
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from stochjax import progress, sharding
from stochjax.harness import workdir as workdir_lib

FLAGS = flags.FLAGS


def default_cache() -> str:
  """JAX's persistent cache folder of stochjax runs (XDG_CACHE_HOME)."""
  cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
  return os.path.join(cache, "stochjax", "jax")


def define_flags() -> None:
  """Defines the runner's flags (once per process)."""
  if "workdir" in FLAGS:
    return
  config_flags.DEFINE_config_file(
    "config",
    None,
    "A shipped config's name (`stochjax configs` lists them), e.g. fig1 or "
    "fig1:smoke, or a config file path/to/config.py[:variant].",
    lock_config=True,
  )
  flags.DEFINE_string("workdir", None, "Directory for this run.")
  flags.DEFINE_bool(
    "overwrite", False, "Reuse a workdir that holds a different config."
  )
  flags.DEFINE_bool(
    "break_lock",
    False,
    "Take over a workdir whose lock names a run that is gone (one on "
    "another host, or one whose liveness cannot be checked).",
  )
  flags.DEFINE_bool(
    "progress", True, "Progress bars (shown only on a terminal)."
  )
  flags.DEFINE_string(
    "compilation_cache",
    default_cache(),
    "JAX's persistent compilation cache folder ('' to disable): a second run "
    "of an experiment reuses the compiled attacks and votes.",
  )


HELP = ("--help", "-h", "-?", "--helpshort")


def print_help(argv: Sequence[str], module: str) -> bool:
  """Prints `module`'s flags if `argv` asks for help (absl's own --help
  shows only the flags of the script's ``__main__``); True if it did."""
  if not any(arg in HELP for arg in argv[1:]):
    return False
  print(f"USAGE: {argv[0]} [flags]\n\n{FLAGS.module_help(module)}")
  print("\nTry --helpfull to get a list of all flags.")
  return True


def shipped_configs() -> list[str]:
  """The names of the configs shipped in `stochjax.configs`."""
  folder = importlib.resources.files("stochjax.configs")
  return sorted(
    entry.name.removesuffix(".py")
    for entry in folder.iterdir()
    if entry.name.endswith(".py") and not entry.name.startswith("_")
    and entry.name != "common.py"
  )  # fmt: skip


def config_path(value: str) -> str:
  """``--config``'s value as a file path. A value ending in ``.py`` or
  holding a path separator (before any ``:variant``) is a file, returned
  unchanged; any other is a shipped config's name (``fig1``,
  ``fig1:smoke``), which becomes its file in the installed package (a
  folder of that name in the current directory, such as a workdir, does
  not shadow it).

  Raises:
    ValueError: a file that does not exist, or an unknown name.
  """
  name, colon, variant = value.partition(":")
  if name.endswith(".py") or os.sep in name or "/" in name:
    if not os.path.isfile(name):
      raise ValueError(f"--config={value}: no file {name!r}.")
    return value
  if name in shipped_configs():
    path = importlib.resources.files("stochjax.configs") / f"{name}.py"
    return f"{path}{colon}{variant}"
  raise ValueError(
    f"--config={value}: not a shipped config (one of "
    f"{', '.join(shipped_configs())}) nor a file path/to/config.py."
  )


def _with_config_path(argv: Sequence[str], default: str | None) -> list[str]:
  """`argv` with ``--config``'s value resolved (`config_path`), or
  ``--config=<default>`` added when absent and `default` is given (first:
  ``--config.FIELD=`` overrides only parse after the config they change)."""
  out, found, args = [argv[0]], False, iter(argv[1:])
  for arg in args:
    if arg == "--config":
      arg = f"--config={next(args, '')}"
    if arg.startswith("--config="):
      found = True
      arg = f"--config={config_path(arg.removeprefix('--config='))}"
    out.append(arg)
  if not found and default is not None:
    out.insert(1, f"--config={config_path(default)}")
  return out


def run(
  main: Callable[[ml_collections.ConfigDict, workdir_lib.Workdir], dict],
  argv: Sequence[str] | None = None,
  *,
  default_config: str | None = None,
) -> None:
  """Parses `argv` (default ``sys.argv``) and calls ``main(config,
  workdir)``; writes results.json. `default_config` (a shipped config's
  name) is used when ``--config`` is not given."""
  define_flags()
  if FLAGS.is_parsed():  # A second run in one process starts from defaults.
    FLAGS.unparse_flags()
  argv = list(sys.argv if argv is None else argv)
  if print_help(argv, __name__):
    return
  flags.mark_flags_as_required(["config", "workdir"])
  try:
    argv = _with_config_path(argv, default_config)
  except ValueError as e:
    raise SystemExit(f"FATAL: {e}") from None

  def _main(args):
    if len(args) > 1:
      raise app.UsageError(f"Unexpected arguments: {args[1:]}")
    config = FLAGS.config
    if not FLAGS.progress:
      progress.set_enabled(False)
    use_compilation_cache(FLAGS.compilation_cache)
    sharding.initialize(config.get("distributed", False))
    workdir = workdir_lib.Workdir(FLAGS.workdir)
    with _refusal(), workdir.lock(break_lock=FLAGS.break_lock):
      workdir.claim(config, FLAGS.overwrite)
      logging.info("devices: %s", jax.devices())
      logging.info("versions: %s", workdir_lib.versions())
      start = time.time()
      results = main(config, workdir)
      results["wall_seconds"] = time.time() - start
      workdir.write_results(results)
    logging.info("results: %s", workdir.file("results.json"))

  app.run(_main, argv=argv)


@contextlib.contextmanager
def _refusal() -> Iterator[None]:
  """A workdir that is held, damaged or holds another config ends the run
  with its message (which names the file and the remedy), not a
  traceback."""
  try:
    yield
  except (
    workdir_lib.WorkdirLockedError,
    workdir_lib.CorruptFileError,
    workdir_lib.WorkdirConfigError,
  ) as e:
    raise SystemExit(f"FATAL: {e}") from None


def use_compilation_cache(directory: str) -> None:
  """Turns on JAX's persistent compilation cache in `directory` ('' turns
  nothing on)."""
  if not directory:
    return
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
