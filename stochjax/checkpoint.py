"""Every Orbax checkpoint stochjax writes: one module, two shapes.

* Training state, one checkpoint per epoch with resume: `manager`, `save`,
  `restore_latest`, `restore`.
* One pytree in a folder (a model's variables, see `stochjax.models.save`):
  `save_tree`, `restore_tree`.

Saves are synchronous (a run killed after a save returns loses nothing) and
atomic (Orbax writes to a temporary directory and renames it).
"""

import logging
import os
from typing import Any

import orbax.checkpoint as ocp
from absl import logging as absl_logging


def _not_orbax(record: logging.LogRecord) -> bool:
  return "orbax" not in record.pathname or record.levelno >= logging.WARNING


# Orbax logs every save and restore at INFO through absl; keep that out of
# the user's terminal (warnings still show).
absl_logging.get_absl_handler().addFilter(_not_orbax)
logging.getLogger("absl").addFilter(_not_orbax)


def manager(directory: str, max_to_keep: int | None = None):
  """A CheckpointManager keeping every checkpoint (or the last few)."""
  return ocp.CheckpointManager(
    os.path.abspath(directory),
    options=ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep,
      create=True,
      enable_async_checkpointing=False,
    ),
  )


def save(mngr, step: int, tree: Any) -> None:
  mngr.save(step, args=ocp.args.StandardSave(tree))
  mngr.wait_until_finished()


def restore_latest(mngr, like: Any) -> tuple[int | None, Any]:
  """(latest step, tree shaped like `like`), or (None, like) when empty."""
  step = mngr.latest_step()
  if step is None:
    return None, like
  return step, mngr.restore(step, args=ocp.args.StandardRestore(like))


def restore(mngr, step: int, like: Any) -> Any:
  """The checkpoint of `step`, shaped like `like`.

  Raises:
    FileNotFoundError: no checkpoint of that step (the steps kept are
      listed).
  """
  if step not in mngr.all_steps():
    raise FileNotFoundError(
      f"No checkpoint of step {step} in {mngr.directory}; kept: "
      f"{sorted(mngr.all_steps())}."
    )
  return mngr.restore(step, args=ocp.args.StandardRestore(like))


def save_tree(path: str, tree: Any) -> None:
  """Writes one pytree to the folder `path` (replacing what is there)."""
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.abspath(path), tree, force=True)


def restore_tree(path: str, like: Any) -> Any:
  """The pytree `save_tree` wrote to `path`, shaped like `like`."""
  with ocp.StandardCheckpointer() as checkpointer:
    return checkpointer.restore(os.path.abspath(path), like)
