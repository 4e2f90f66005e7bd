"""A run's folder: config, metrics log, results and finished grid cells.

Files are written by process 0 only (multi-host runs). A workdir holds
``config.json`` (the run's config, versions and devices),
``metrics.jsonl`` (one JSON object per line, appended as the run goes),
``cells.json`` (finished grid cells, so an interrupted grid resumes) and
``results.json``; every JSON file is written atomically (a temporary file,
fsynced, then renamed), so an interrupted run never leaves half a file.
"""

import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def versions() -> dict[str, str]:
  out = {"python": platform.python_version()}
  for name in PACKAGES:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
      out[name] = importlib.metadata.version(name)
  return out


def write_json_atomic(path: str, value: Any) -> None:
  """Writes JSON to a temporary file in the same folder, then renames it."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=".json")
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> a normal file's mode
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(value, f, indent=2, sort_keys=True, allow_nan=True)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def write_text_atomic(path: str, text: str) -> None:
  """Writes `text` to a temporary file beside `path`, then renames it."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


class Workdir:
  """Files of one run: config, metrics log, results, finished grid cells."""

  def __init__(self, path: str):
    self.path = path
    os.makedirs(path, exist_ok=True)

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  def claim(self, config: ml_collections.ConfigDict, overwrite: bool) -> None:
    """Records `config`; refuses a workdir that holds a different one."""
    path = self.file("config.json")
    new = json.loads(config.to_json_best_effort())
    if os.path.exists(path) and not overwrite:
      old = read_json(path)["config"]
      if old != new:
        diff = _diff(old, new)
        raise ValueError(
          f"{self.path} holds a run of a different config ({diff}). Use "
          "another --workdir, or --overwrite to reuse it."
        )
    if jax.process_index() != 0:
      return
    write_json_atomic(
      path,
      {
        "config": new,
        "versions": versions(),
        "devices": [str(d) for d in jax.devices()],
        "command": sys.argv,
      },
    )

  def log_metrics(self, **metrics: Any) -> None:
    """Appends one JSON line to metrics.jsonl (process 0 only)."""
    if jax.process_index() != 0:
      return
    metrics = {"time": time.time(), **metrics}
    with open(self.file("metrics.jsonl"), "a") as f:
      f.write(json.dumps(metrics, sort_keys=True) + "\n")
      f.flush()
      os.fsync(f.fileno())

  def metrics(self, **match: Any) -> list[dict[str, Any]]:
    """The metrics.jsonl records whose fields equal `match`, in order."""
    path = self.file("metrics.jsonl")
    if not os.path.exists(path):
      return []
    with open(path) as f:
      records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]

  def write_results(self, results: dict) -> None:
    if jax.process_index() != 0:
      return
    write_json_atomic(self.file("results.json"), results)

  def cells(self) -> dict[str, Any]:
    """Finished grid cells (name -> value), to resume an interrupted grid."""
    path = self.file("cells.json")
    return read_json(path) if os.path.exists(path) else {}

  def save_cell(self, name: str, value: Any) -> None:
    if jax.process_index() != 0:
      return
    cells = self.cells()
    cells[name] = value
    write_json_atomic(self.file("cells.json"), cells)

  def cell(self, name: str, compute: Callable[[], Any]) -> Any:
    """The finished cell `name`, or ``compute()`` saved as it. Either way
    the value as JSON reads it back, so a resumed run sees the same types
    (lists, not tuples or arrays) as the run that computed it."""
    cells = self.cells()
    if name in cells:
      return cells[name]
    value = json.loads(json.dumps(compute(), allow_nan=True, default=_plain))
    self.save_cell(name, value)
    return value


def _plain(value: Any) -> Any:
  """NumPy and JAX scalars and arrays as JSON-ready Python values."""
  if hasattr(value, "tolist"):
    return value.tolist()
  raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _diff(old: dict, new: dict, prefix: str = "") -> str:
  changes = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key), new.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      inner = _diff(a, b, f"{prefix}{key}.")
      if inner:
        changes.append(inner)
    elif a != b:
      changes.append(f"{prefix}{key}: {a!r} -> {b!r}")
  return "; ".join(changes)
