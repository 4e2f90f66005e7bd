"""Data parallelism over every device, with `jax.sharding`.

One mesh axis, ``types.BATCH_AXIS``, spans the devices (of every host, after
`initialize`); a batch is split along it with a `NamedSharding` and
`jax.jit` partitions the program (an attack's scan, a vote's chunks, a train
step) from its inputs' shardings. Weights and the run key are replicated.

Every example draws from ``fold_in(run_key, global_index)``
(`stochjax.prng.at`), so results do not depend on the batch size,
the chunk size or the number of devices.

Multi-host: call `initialize(True)` first (once per process, before any
other JAX call); every process then holds the same host arrays (the same
data, loaded the same way), and `put_batch` sends each host's devices only
their rows of the global batch.
"""

import contextlib
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from stochjax import types

BATCH_AXIS = types.BATCH_AXIS


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
  """A 1-D ``(BATCH_AXIS,)`` mesh over the first `num_devices` (default: all).

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


def using(mesh: Mesh | None):
  """The context to run jitted work on `mesh`'s batches in:
  ``jax.set_mesh(mesh)``, so code traced there can find the mesh
  (`context_devices`); nothing without a mesh."""
  return contextlib.nullcontext() if mesh is None else jax.set_mesh(mesh)


def context_devices() -> int:
  """How many devices the context mesh (`using`) splits the batch over:
  0 outside any mesh (or one without ``BATCH_AXIS``), 1 inside code that
  already runs per device (`jax.shard_map` over ``BATCH_AXIS``)."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or BATCH_AXIS not in mesh.axis_names:
    return 0
  if BATCH_AXIS in mesh.manual_axes:
    return 1
  return mesh.shape[BATCH_AXIS]


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
