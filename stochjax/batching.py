"""Running a function over a dataset in fixed-shape batches.

`map_batches` cuts ``range(num)`` into batches, pads the last one (so the
function compiles once), gives each example the key of its global index
(`prng.at`), places each batch on one device or splits it over a mesh, and
gathers the results on the host. Attacks, votes and accuracies over a
dataset all run through it, so their numbers do not depend on the batch
size or the number of devices.
"""

from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from stochjax import prng, progress, sharding

_keys_at = jax.jit(prng.at)


def batch_shape(num: int, batch_size: int, mesh: Mesh | None) -> int:
  """The batch a run of `num` examples uses: `batch_size`, or for fewer
  examples the next power of two (so subsets of any size share a few
  compiled shapes), rounded up to a multiple of the mesh size."""
  return sharding.round_up(min(batch_size, 1 << (num - 1).bit_length()), mesh)


def map_batches(
  fn: Callable[..., jax.Array],
  key: jax.Array | None,
  num: int,
  read: Callable[[np.ndarray], Sequence[np.ndarray]],
  *,
  batch_size: int,
  mesh: Mesh | None = None,
  desc: str = "batches",
  with_valid: bool = False,
  indices: np.ndarray | None = None,
) -> np.ndarray:
  """Concatenated ``fn(keys_b, *read(index_b))`` over batches of [0, num).

  ``keys_b = prng.at(key, indices[index_b])`` are the examples' own keys
  (by default their position in [0, num)), so the result does not depend
  on `batch_size` or on the mesh (with ``key=None`` `fn` gets no keys). The
  last batch is padded with copies of its first example (dropped
  afterwards); with `with_valid`, `fn` also receives the ``(B,)`` bool
  mask of real rows as the keyword ``valid``, for functions that reduce
  over the batch. With a `mesh`, each batch is split across its devices.

  Args:
    fn: ``(keys (B,), *arrays (B, ...)[, valid (B,)]) -> (B, ...)``.
    key: the run key, or None.
    num: how many examples.
    read: ``index (B,) -> arrays`` on the host.
    batch_size: examples per call (see `batch_shape`).
    mesh: a `sharding.data_mesh`, or None for one device.
    desc: the progress bar's label.
    with_valid: pass the mask of real (unpadded) rows.
    indices: ``(num,)`` the examples' global indices (their keys), e.g.
      their positions in the dataset when `read` reads a subset.

  Raises:
    ValueError: `num` is 0.
  """
  if num == 0:
    raise ValueError("No samples to evaluate.")
  size = batch_shape(num, batch_size, mesh)
  global_index = np.arange(num) if indices is None else np.asarray(indices)
  if global_index.shape != (num,):
    raise ValueError(
      f"indices must have shape ({num},), got {global_index.shape}."
    )
  out = []
  for lo in progress.bar(range(0, num, size), desc=desc, leave=False):
    index = np.arange(lo, lo + size)
    valid = index < num
    index = np.where(valid, index, lo)
    mask = [valid] if with_valid else []
    ids, *arrays = sharding.put_batch(
      [global_index[index].astype(np.uint32), *read(index), *mask], mesh
    )
    keys = [] if key is None else [_keys_at(key, ids)]
    keywords = {"valid": arrays.pop()} if with_valid else {}
    with sharding.using(mesh):  # Traced code finds the mesh (`core.switch`).
      result = fn(*keys, *arrays, **keywords)
    out.append(sharding.to_host(result)[valid])
  return np.concatenate(out)
