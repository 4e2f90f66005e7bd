"""Data parallelism over every device, with `jax.sharding`.

One mesh axis, ``"batch"``, spans the devices (of every host, after
`initialize`); a batch is split along it with a `NamedSharding` and
`jax.jit` partitions the program (an attack's scan, a vote's chunks, a train
step) from its inputs' shardings. Weights and the run key are replicated.

Every example draws from ``fold_in(run_key, global_index)``
(`stochjax.defenses.keys_at`), so results do not depend on the batch size,
the chunk size or the number of devices.

Multi-host: call `initialize(True)` first (once per process, before any
other JAX call); every process then holds the same host arrays (the same
data, loaded the same way), and `put_batch` sends each host's devices only
their rows of the global batch.
"""

import os
from collections.abc import Callable, Sequence

import jax
import numpy as np
import tqdm
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from stochjax.defenses import core as defense_core

BATCH_AXIS = "batch"


def from_config(config) -> Mesh | None:
  """The mesh an experiment config asks for: ``config.num_devices`` (1: none,
  one device; 0: all devices; N: the first N)."""
  num = config.get("num_devices", 1)
  if num == 1:
    return None
  return data_mesh(None if num == 0 else num)


def initialize(distributed: bool) -> None:
  """Starts multi-host JAX (`jax.distributed.initialize`) when asked.

  Call it before any other JAX call. On TPU pods and SLURM/MPI clusters the
  coordinator is discovered from the environment; elsewhere set
  ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0),
  ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. CPU processes exchange
  data through Gloo collectives.
  """
  if not distributed:
    return
  settings = {}
  for name, variable in (
    ("num_processes", "JAX_NUM_PROCESSES"),
    ("process_id", "JAX_PROCESS_ID"),
  ):
    if variable in os.environ:
      settings[name] = int(os.environ[variable])
  if jax.config.jax_cpu_collectives_implementation in (None, "none"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**settings)


def data_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D ``("batch",)`` mesh over the first `num_devices` (default: all).

  Raises:
    ValueError: more devices asked for than exist, or fewer than one.
  """
  devices = jax.devices()
  num = len(devices) if num_devices is None else num_devices
  if not 1 <= num <= len(devices):
    raise ValueError(
      f"num_devices={num_devices} must be in 1..{len(devices)} (the devices "
      "JAX sees; on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
      "makes N)."
    )
  return Mesh(np.asarray(devices[:num]), (BATCH_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Rows split across the mesh, everything else whole."""
  return NamedSharding(mesh, PartitionSpec(BATCH_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def round_up(size: int, mesh: Mesh | None) -> int:
  """The smallest multiple of the mesh size that is >= `size`."""
  if mesh is None:
    return size
  return -(-size // mesh.size) * mesh.size


def put_batch(tree, mesh: Mesh | None):
  """Places host arrays (a pytree) split along their first axis.

  Each process passes the same global arrays; only the rows of its own
  devices are copied. Without a mesh, the arrays go to the default device.

  Raises:
    ValueError: a first axis that the mesh size does not divide.
  """
  if mesh is None:
    return jax.device_put(tree)
  tree = jax.tree.map(np.asarray, tree)
  for x in jax.tree.leaves(tree):
    if x.shape[0] % mesh.size:
      raise ValueError(
        f"A batch of {x.shape[0]} does not split over {mesh.size} devices; "
        f"use a multiple of {mesh.size}."
      )
  sharding = batch_sharding(mesh)
  return jax.tree.map(
    lambda x: jax.make_array_from_callback(x.shape, sharding, lambda i: x[i]),
    tree,
  )


def process_rows(mesh: Mesh | None) -> tuple[int, int] | None:
  """``(process_index, process_count)`` for `data.batches`, with a mesh."""
  if mesh is None:
    return None
  return jax.process_index(), jax.process_count()


def put_process_rows(tree, mesh: Mesh | None):
  """Assembles each process's rows (a pytree) into global batch arrays.

  The global batch is the processes' rows in process order (as
  `data.batches` cuts it with `process_rows`). Without a mesh, the arrays
  are returned as they are.
  """
  if mesh is None:
    return tree
  sharding = batch_sharding(mesh)
  return jax.tree.map(
    lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
    tree,
  )


def put_replicated(tree, mesh: Mesh | None):
  """Copies a pytree (weights, a key) to every device of the mesh."""
  if mesh is None:
    return tree
  return jax.device_put(tree, replicated(mesh))


def to_host(x: jax.Array) -> np.ndarray:
  """A global array as one NumPy array on every process."""
  if getattr(x, "is_fully_addressable", True):
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


_keys_at = jax.jit(defense_core.keys_at)


def map_batches(
  fn: Callable[..., jax.Array],
  key: jax.Array,
  num: int,
  read: Callable[[np.ndarray], Sequence[np.ndarray]],
  *,
  batch_size: int,
  mesh: Mesh | None = None,
  desc: str = "batches",
) -> np.ndarray:
  """Concatenated ``fn(keys_b, *read(index_b))`` over batches of [0, num).

  ``keys_b = keys_at(key, index_b)`` are the examples' own keys, so the
  result does not depend on `batch_size` or on the mesh. The last batch is
  padded with copies of its first example (dropped afterwards), so `fn` sees
  one shape and compiles once (fewer than `batch_size` examples are padded
  to a power of two, so subsets of any size share a few shapes); with a
  `mesh`, each batch (rounded up to a
  multiple of the mesh size) is split across its devices.

  Args:
    fn: ``(keys (B,), *arrays (B, ...)) -> (B, ...)`` device values.
    key: the run key.
    num: how many examples.
    read: ``index (B,) -> arrays`` on the host.
    batch_size: examples per call (before rounding up to the mesh).
    mesh: a `data_mesh`, or None for one device.
    desc: the progress bar's label.

  Raises:
    ValueError: `num` is 0.
  """
  if num == 0:
    raise ValueError("No samples to evaluate.")
  # Fewer examples than a batch: the next power of two, so the few shapes
  # that any count can produce are compiled once each.
  size = round_up(min(batch_size, 1 << (num - 1).bit_length()), mesh)
  out = []
  for lo in tqdm.tqdm(range(0, num, size), desc=desc, leave=False):
    index = np.arange(lo, lo + size)
    valid = index < num
    index = np.where(valid, index, lo)
    indices, *arrays = put_batch([index.astype(np.uint32), *read(index)], mesh)
    out.append(to_host(fn(_keys_at(key, indices), *arrays))[valid])
  return np.concatenate(out)
