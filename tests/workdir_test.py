"""Workdir files: config claims, the lock, atomic results, resumable cells
and what a corrupt file says."""

import json
import os
import socket
import subprocess
import sys
from unittest import mock

import ml_collections
import numpy as np
from absl.testing import absltest

from stochjax.harness import workdir as workdir_lib


def _config(value=1):
  config = ml_collections.ConfigDict()
  config.attack = ml_collections.ConfigDict({"num_steps": value})
  config.seed = 0
  return config


class WorkdirTest(absltest.TestCase):
  def test_refuses_a_different_config_and_shows_the_difference(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    workdir.claim(_config(1), overwrite=False)
    workdir.claim(_config(1), overwrite=False)  # same config: fine
    with self.assertRaisesRegex(ValueError, r"attack.num_steps: 1 -> 2"):
      workdir.claim(_config(2), overwrite=False)
    workdir.claim(_config(2), overwrite=True)
    with open(workdir.file("config.json")) as f:
      stored = json.load(f)
    self.assertEqual(stored["config"]["attack"]["num_steps"], 2)
    self.assertIn("jax", stored["versions"])

  def test_results_and_cells_are_written_whole(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    workdir.write_results({"rate": 0.5, "nan": float("nan")})
    workdir.save_cell("a", {"x": 1})
    workdir.save_cell("b", {"x": 2})
    self.assertEqual(workdir.cells(), {"a": {"x": 1}, "b": {"x": 2}})
    self.assertEqual(
      sorted(os.listdir(workdir.path)), ["cells.jsonl", "results.json"]
    )
    # Appended, one line per cell; a new reader sees the same cells.
    with open(workdir.file("cells.jsonl")) as f:
      self.assertLen(f.read().splitlines(), 2)
    self.assertEqual(workdir_lib.Workdir(workdir.path).cells(), workdir.cells())
    workdir.log_metrics(step=1, loss=0.5)
    workdir.log_metrics(step=2, loss=0.25)
    with open(workdir.file("metrics.jsonl")) as f:
      lines = f.read().splitlines()
    self.assertEqual([json.loads(x)["step"] for x in lines], [1, 2])

  def test_a_cell_group_is_computed_together_and_only_once(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    calls = []

    def row():
      calls.append(1)
      return {"k=1": (1, 2), "k=2": np.arange(2)}

    first = workdir.cell_group(["k=1", "k=2"], row)
    again = workdir_lib.Workdir(workdir.path).cell_group(["k=1", "k=2"], row)
    self.assertLen(calls, 1)
    self.assertEqual(first, {"k=1": [1, 2], "k=2": [0, 1]})
    self.assertEqual(again, first)
    with self.assertRaisesRegex(ValueError, r"did not return cells \['k=3'\]"):
      workdir.cell_group(["k=1", "k=3"], row)

  def test_a_cell_is_computed_once_and_read_back_as_json(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    calls = []

    def compute():
      calls.append(1)
      return {"rate": np.float32(0.5), "outcomes": np.array([True, False])}

    first = workdir.cell("control", compute)
    again = workdir_lib.Workdir(workdir.path).cell("control", compute)
    self.assertLen(calls, 1)
    self.assertEqual(first, {"rate": 0.5, "outcomes": [True, False]})
    self.assertEqual(again, first)


class DamagedFilesTest(absltest.TestCase):
  def _workdir_with_cells(self, text: str) -> workdir_lib.Workdir:
    path = self.create_tempdir().full_path
    with open(os.path.join(path, "cells.jsonl"), "w") as f:
      f.write(text)
    return workdir_lib.Workdir(path)

  def test_a_line_a_kill_cut_off_is_dropped_and_no_finished_cell_lost(self):
    good = json.dumps({"name": "a", "value": 1}) + "\n"
    workdir = self._workdir_with_cells(good + '{"name": "b", "val')
    with self.assertLogs(level="WARNING"):
      self.assertEqual(workdir.cells(), {"a": 1})
    with self.assertLogs(level="WARNING"):  # Cut before the next append.
      self.assertEqual(workdir.cell("b", lambda: 2), 2)
    with open(workdir.file("cells.jsonl")) as f:
      b = json.dumps({"name": "b", "value": 2})
      self.assertEqual(f.read(), good + b + "\n")
    self.assertEqual(
      workdir_lib.Workdir(workdir.path).cells(), {"a": 1, "b": 2}
    )
    # The metrics log heals the same way.
    with open(workdir.file("metrics.jsonl"), "w") as f:
      f.write('{"step": 1}\n{"st')
    with self.assertLogs(level="WARNING"):
      workdir.log_metrics(step=2)
    self.assertEqual([r["step"] for r in workdir.metrics()], [1, 2])

  def test_a_corrupt_line_names_the_file_line_and_remedy(self):
    lines = ['{"name": "a", "value": 1}', "{oops", '{"name": "c", "value": 3}']
    workdir = self._workdir_with_cells("\n".join(lines) + "\n")
    with self.assertRaisesRegex(
      workdir_lib.CorruptFileError, r"cells.jsonl, line 2, .*delete line 2"
    ):
      workdir.cells()
    workdir = self._workdir_with_cells('{"a": 1}\n')
    with self.assertRaisesRegex(workdir_lib.CorruptFileError, "not a cell"):
      workdir.cells()

  def test_a_corrupt_config_or_earlier_cells_file_is_named(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    with open(workdir.file("config.json"), "w") as f:
      f.write('{"config": {"seed"')
    with self.assertRaisesRegex(
      workdir_lib.CorruptFileError, r"config.json is not valid JSON.*--workdir"
    ):
      workdir.claim(_config(1), overwrite=False)

  def test_an_earlier_versions_workdir_is_refused(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    workdir.claim(_config(1), overwrite=False)
    stored = workdir_lib.read_json(workdir.file("config.json"))
    self.assertEqual(stored["format"], workdir_lib.FORMAT)
    del stored["format"]  # As stochjax before the key streams wrote it.
    workdir_lib.write_json_atomic(workdir.file("config.json"), stored)
    for overwrite in (False, True):
      with self.assertRaisesRegex(
        workdir_lib.WorkdirConfigError, "format 1, this one writes 2"
      ):
        workdir.claim(_config(1), overwrite=overwrite)
    other = workdir_lib.Workdir(self.create_tempdir().full_path)
    workdir_lib.write_json_atomic(other.file("cells.json"), {"old": [1, 2]})
    with self.assertRaisesRegex(
      workdir_lib.WorkdirConfigError, "new --workdir"
    ):
      other.claim(_config(1), overwrite=False)


def _dead_pid() -> int:
  """The pid of a process that has exited."""
  done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)  # fmt: skip
  return int(done.stdout)


class LockTest(absltest.TestCase):
  def _lock_file(self, workdir, **record):
    with open(workdir.file("lock.json"), "w") as f:
      json.dump({"host": socket.gethostname(), "command": ["x"]} | record, f)

  def test_a_held_workdir_is_refused_and_released_after(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    with workdir.lock():
      holder = workdir_lib.read_json(workdir.file("lock.json"))
      self.assertEqual(holder["pid"], os.getpid())
      with self.assertRaisesRegex(workdir_lib.WorkdirLockedError, "already"):
        with workdir_lib.Workdir(workdir.path).lock():
          pass
    self.assertFalse(os.path.exists(workdir.file("lock.json")))
    with workdir.lock():  # Free again.
      pass

  def test_a_live_holder_is_refused_naming_it_and_the_override(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    self._lock_file(workdir, pid=os.getppid())  # Alive: our parent.
    for break_lock in (False, True):  # A live holder here: never taken.
      with self.assertRaisesRegex(
        workdir_lib.WorkdirLockedError,
        rf"in use by pid {os.getppid()} on .*, which is running",
      ):
        with workdir.lock(break_lock=break_lock):
          pass
    self._lock_file(workdir, pid=os.getppid(), host="elsewhere")
    with self.assertRaisesRegex(workdir_lib.WorkdirLockedError, "--break_lock"):
      with workdir.lock():
        pass
    with workdir.lock(break_lock=True):  # The documented override.
      holder = workdir_lib.read_json(workdir.file("lock.json"))
      self.assertEqual(holder["pid"], os.getpid())
    with open(workdir.file("lock.json"), "w") as f:
      f.write("")  # Unreadable: refused, unless broken.
    with self.assertRaisesRegex(workdir_lib.WorkdirLockedError, "unreadable"):
      with workdir.lock():
        pass
    with workdir.lock(break_lock=True):
      pass
    self.assertFalse(os.path.exists(workdir.file("lock.json")))

  def test_a_dead_pid_on_this_host_is_stale_another_host_is_not(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    for stale in (_dead_pid(), os.getpid()):  # Ours, but not held: old.
      self._lock_file(workdir, pid=stale)
      with self.assertLogs(level="WARNING"), workdir.lock():
        holder = workdir_lib.read_json(workdir.file("lock.json"))
        self.assertEqual(holder["pid"], os.getpid())
    self._lock_file(workdir, pid=_dead_pid(), host="elsewhere")
    with self.assertRaisesRegex(workdir_lib.WorkdirLockedError, "elsewhere"):
      with workdir.lock():
        pass

  def test_without_hard_links_the_lock_is_created_exclusively(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    with mock.patch.object(os, "link", side_effect=PermissionError):
      with workdir.lock():
        holder = workdir_lib.read_json(workdir.file("lock.json"))
        self.assertEqual(holder["pid"], os.getpid())
        with self.assertRaisesRegex(workdir_lib.WorkdirLockedError, "already"):
          with workdir_lib.Workdir(workdir.path).lock():
            pass
      self.assertFalse(os.path.exists(workdir.file("lock.json")))
      self._lock_file(workdir, pid=1, host="elsewhere")
      with self.assertRaisesRegex(workdir_lib.WorkdirLockedError, "elsewhere"):
        with workdir.lock():
          pass

  def test_a_second_run_on_a_held_workdir_is_refused(self):
    workdir = workdir_lib.Workdir(self.create_tempdir().full_path)
    command = [
      sys.executable, "-m", "stochjax", "run", "section5",
      "--config=section5:smoke", f"--workdir={workdir.path}",
      "--compilation_cache=",
    ]  # fmt: skip
    with workdir.lock():
      done = subprocess.run(command, capture_output=True, text=True)
    self.assertNotEqual(done.returncode, 0)
    self.assertIn(f"{workdir.path} is in use by pid {os.getpid()}", done.stderr)
    self.assertFalse(os.path.exists(workdir.file("results.json")))


if __name__ == "__main__":
  absltest.main()
