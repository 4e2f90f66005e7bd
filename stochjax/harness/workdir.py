"""A run's folder: its lock, config, metrics log, finished cells and results.

Files are written by process 0 only (multi-host runs). A workdir holds
``lock.json`` (the live run's pid, host and command, while it runs),
``config.json`` (the run's config, versions and devices),
``metrics.jsonl`` (one JSON object per line, appended as the run goes),
``cells.jsonl`` (one finished cell per line, appended, so an interrupted
run resumes) and ``results.json``. Whole files are written atomically (a
temporary file, fsynced, then renamed) and lines are appended and fsynced,
so an interrupted run never loses a finished cell: a line cut off by a
kill is the cell that was not finished, and is computed again.
"""

import contextlib
import importlib.metadata
import json
import os
import platform
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from stochjax import analysis

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


class CorruptFileError(ValueError):
  """A workdir file that does not parse, with its path and what to do."""


class WorkdirLockedError(RuntimeError):
  """Another live run holds the workdir."""


def read_json(path: str) -> Any:
  """The JSON value in `path`.

  Raises:
    CorruptFileError: `path` is not valid JSON (named, with a remedy).
  """
  with open(path) as f:
    text = f.read()
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise CorruptFileError(
      f"{path} is not valid JSON ({e}); it was not written by a finished "
      "stochjax run. Move it aside (or delete it) to have it written again, "
      "or use another --workdir."
    ) from None


_HELD: set[str] = set()  # Workdir locks this process holds.

# The workdir format: 2 = cells.jsonl, typed Evaluation cells and named key
# streams (issue 30). A workdir of another format holds cells this version
# must not resume.
FORMAT = 2


class WorkdirConfigError(ValueError):
  """The workdir holds a run of another config or format."""


def _alive(pid: int) -> bool:
  """Whether process `pid` of this host is running."""
  if pid == os.getpid():
    return False  # A lock naming us that we do not hold: an old one.
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _lock_record(path: str) -> dict | None:
  """The lock file's record, or None if it cannot be read."""
  try:
    with open(path) as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  valid = (
    isinstance(record, dict)
    and isinstance(record.get("pid"), int)
    and record["pid"] > 0
    and isinstance(record.get("host"), str)
  )
  return record if valid else None


def _heal(path: str) -> None:
  """Cuts a last line without its newline (an append a kill cut off)
  from `path`, so the next append starts on a line of its own."""
  if not os.path.exists(path) or not os.path.getsize(path):
    return
  with open(path, "rb+") as f:
    f.seek(-1, os.SEEK_END)
    if f.read(1) == b"\n":
      return
    f.seek(0)
    data = f.read()
    f.truncate(data.rfind(b"\n") + 1)
  logging.warning("%s: cut a line a kill left unfinished.", path)


class Workdir:
  """Files of one run: lock, config, metrics log, finished cells, results."""

  def __init__(self, path: str):
    self.path = path
    os.makedirs(path, exist_ok=True)
    self._cells: dict[str, Any] | None = None
    self.num_saved = 0  # Cells this object has saved (a resume saves none).

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  @contextlib.contextmanager
  def lock(self, *, break_lock: bool = False) -> Iterator[None]:
    """Holds ``lock.json`` while the block runs. Process 0 takes it; on a
    multi-process run every process learns whether it did, and all refuse
    together (none is left waiting in a collective).

    A lock whose pid is dead on this host is stale and taken over. One
    held by a live process on this host is always refused; one written on
    another host (or unreadable) is refused unless `break_lock`
    (``--break_lock``: that run is known to be gone).

    Raises:
      WorkdirLockedError: another run holds the workdir.
    """
    path = os.path.abspath(self.file("lock.json"))
    mine, error = None, None
    if jax.process_index() == 0:
      try:
        mine = self._acquire(path, break_lock)
      except WorkdirLockedError as e:
        error = e
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # noqa: PLC0415

      refused = multihost_utils.broadcast_one_to_all(
        np.int32(error is not None)
      )
      if int(refused) and error is None:
        error = WorkdirLockedError(
          f"{self.path}: process 0 could not lock it (see its log)."
        )
    if error is not None:
      raise error
    try:
      yield
    finally:
      if mine is not None:
        _HELD.discard(path)
        if _lock_record(path) == mine:
          os.remove(path)

  def _acquire(self, path: str, break_lock: bool) -> dict:
    """Writes this process's lock record to `path` (whole: linked from a
    written temporary file); returns it."""
    if path in _HELD:
      raise WorkdirLockedError(f"This process already holds {path}.")
    mine = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "started": time.time(),
      "command": list(sys.argv),
    }
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
      json.dump(mine, f)
      f.flush()
      os.fsync(f.fileno())
    try:
      while True:
        try:
          os.link(tmp, path)  # Fails if a lock exists: one run wins.
          break
        except FileExistsError:
          self._take_over(path, break_lock)
        except OSError:  # A filesystem without hard links: create it.
          try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
          except FileExistsError:
            self._take_over(path, break_lock)
            continue
          with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
          break
    finally:
      os.remove(tmp)
    _HELD.add(path)
    return mine

  def _take_over(self, path: str, break_lock: bool) -> None:
    """Moves a stale (or, with `break_lock`, a foreign) lock at `path`
    away; raises if it is held."""
    holder = _lock_record(path)
    here = socket.gethostname()
    if holder is None:
      who = "an unreadable lock file"
      takeable = break_lock
    else:
      who = (
        f"pid {holder['pid']} on {holder['host']} "
        f"({' '.join(map(str, holder.get('command', [])))})"
      )
      if holder["host"] == here:
        takeable = not _alive(holder["pid"])
        if not takeable:
          raise WorkdirLockedError(
            f"{self.path} is in use by {who}, which is running. Wait for "
            "it, stop it, or use another --workdir."
          )
      else:
        takeable = break_lock
    if not takeable:
      raise WorkdirLockedError(
        f"{self.path} is in use by {who}. Wait for that run, or use another "
        "--workdir; if that run is gone, rerun with --break_lock (or delete "
        f"{path})."
      )
    aside = f"{path}.{os.getpid()}.stale"
    try:
      os.replace(path, aside)
    except FileNotFoundError:
      return  # Another run moved it first: try again.
    if _lock_record(aside) != holder:
      # A run took over between our read and our move: put its lock back.
      with contextlib.suppress(FileExistsError):
        os.link(aside, path)
      os.remove(aside)
      return
    os.remove(aside)
    logging.warning("Took over %s (held by %s).", path, who)

  def claim(self, config: ml_collections.ConfigDict, overwrite: bool) -> None:
    """Records `config`; refuses a workdir that holds a different one."""
    path = self.file("config.json")
    new = json.loads(config.to_json_best_effort())
    stored = read_json(path) if os.path.exists(path) else None
    if (
      stored is not None and stored.get("format") != FORMAT
    ) or os.path.exists(self.file("cells.json")):
      raise WorkdirConfigError(
        f"{self.path} was written by an earlier stochjax (workdir format "
        f"{(stored or {}).get('format', 1)}, this one writes {FORMAT}: other "
        "keys and cell formats); its cells cannot be resumed. Use a new "
        "--workdir."
      )
    if stored is not None and not overwrite:
      old = stored["config"]
      if old != new:
        diff = _diff(old, new)
        raise WorkdirConfigError(
          f"{self.path} holds a run of a different config ({diff}). Use "
          "another --workdir, or --overwrite to reuse it."
        )
    if jax.process_index() != 0:
      return
    write_json_atomic(
      path,
      {
        "format": FORMAT,
        "config": new,
        "versions": versions(),
        "devices": [str(d) for d in jax.devices()],
        "command": sys.argv,
      },
    )

  def log_metrics(self, **metrics: Any) -> None:
    """Appends one JSON line to metrics.jsonl (process 0 only)."""
    metrics = {"time": time.time(), **metrics}
    self._append("metrics.jsonl", json.dumps(metrics, sort_keys=True))

  def metrics(self, **match: Any) -> list[dict[str, Any]]:
    """The metrics.jsonl records whose fields equal `match`, in order."""
    records = [r for _, r in self._lines("metrics.jsonl")]
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]

  def write_results(self, results: dict) -> None:
    """results.json, stamped with the analysis plan in force (the report
    refuses results made under another: `stochjax.harness.verdicts`)."""
    if jax.process_index() != 0:
      return
    stamped = results | {"analysis_plan_digest": analysis.PLAN.digest()}
    write_json_atomic(self.file("results.json"), stamped)

  def cells(self) -> dict[str, Any]:
    """Finished cells (name -> value), to resume an interrupted run."""
    if self._cells is None:
      self._cells = self._read_cells()
    return dict(self._cells)

  def save_cell(self, name: str, value: Any) -> None:
    """Records the finished cell `name` (appended to cells.jsonl)."""
    value = _as_json(value)
    self.cells()
    self._cells[name] = value
    self.num_saved += 1
    record = {"name": name, "value": value}
    self._append("cells.jsonl", json.dumps(record, allow_nan=True))

  def cell(self, name: str, compute: Callable[[], Any]) -> Any:
    """The finished cell `name`, or ``compute()`` saved as it. Either way
    the value as JSON reads it back, so a resumed run sees the same types
    (lists, not tuples or arrays) as the run that computed it."""
    cells = self.cells()
    if name not in cells:
      self.save_cell(name, compute())
    return self._cells[name]

  def cell_group(
    self, names: Sequence[str], compute: Callable[[], dict[str, Any]]
  ) -> dict[str, Any]:
    """Cells computed together (e.g. a grid row's snapshots): the finished
    ones if all of `names` are, else ``compute()`` (``{name: value}`` for
    every name) saved one by one; values as JSON reads them back."""
    if not all(name in self.cells() for name in names):
      values = compute()
      missing = set(names) - set(values)
      if missing:
        raise ValueError(f"compute() did not return cells {sorted(missing)}.")
      for name in names:
        self.save_cell(name, values[name])
    return {name: self._cells[name] for name in names}

  def _append(self, name: str, line: str) -> None:
    """Appends `line` to file `name` in one write, fsynced (process 0)."""
    if jax.process_index() != 0:
      return
    _heal(self.file(name))
    with open(self.file(name), "a") as f:
      f.write(line + "\n")
      f.flush()
      os.fsync(f.fileno())

  def _lines(self, name: str) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each JSON line of file `name`. A last
    line without its newline is an append a kill cut off: it is skipped
    (and cut from the file before the next append, `_heal`).

    Raises:
      CorruptFileError: a complete line that is not JSON.
    """
    path = self.file(name)
    if not os.path.exists(path):
      return
    with open(path, "rb") as f:
      data = f.read()
    *complete, tail = data.split(b"\n")
    if tail.strip():  # Cut from the file by the next append (`_heal`).
      logging.warning("%s: skipping a line cut off by a kill.", path)
    for number, line in enumerate(complete, 1):
      if not line.strip():
        continue
      try:
        yield number, json.loads(line)
      except ValueError as e:
        raise CorruptFileError(
          f"{path}, line {number}, is not JSON ({e}). Every other line is "
          f"kept: delete line {number} (what it recorded is computed "
          "again) and rerun, or use another --workdir."
        ) from None

  def _read_cells(self) -> dict[str, Any]:
    cells = {}
    for number, record in self._lines("cells.jsonl"):
      if not (isinstance(record, dict) and set(record) == {"name", "value"}):
        raise CorruptFileError(
          f"{self.file('cells.jsonl')}, line {number}, is not a cell record "
          f"({{'name', 'value'}}). Delete that line and rerun."
        )
      cells[record["name"]] = record["value"]
    return cells


def _as_json(value: Any) -> Any:
  """`value` as JSON reads it back (NumPy and JAX values as Python ones)."""
  return json.loads(json.dumps(value, allow_nan=True, default=_plain))


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
