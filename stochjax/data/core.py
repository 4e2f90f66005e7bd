"""What every data source provides, and batching with a key.

A source has ``labels`` (``(N,)`` int32), ``num_classes``, ``image_shape``
and ``read(index, key) -> (n, H, W, C)`` float32 images in [0, 1]. In-memory
sets are a `Dataset`; image folders decode on demand (`ImageFiles`), so a
training split never has to fit in memory.
"""

from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import NamedTuple, Protocol

import jax
import numpy as np


class Source(Protocol):
  labels: np.ndarray
  num_classes: int

  @property
  def image_shape(self) -> tuple[int, int, int]: ...

  def read(self, index: np.ndarray, key: jax.Array | None = None): ...


class Dataset(NamedTuple):
  """images ``(N, H, W, C)`` float32 in [0, 1]; labels ``(N,)`` int32."""

  images: np.ndarray
  labels: np.ndarray
  num_classes: int

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self.images.shape[1:]

  def read(self, index: np.ndarray, key: jax.Array | None = None):
    del key  # In-memory images have no random augmentation.
    return self.images[index]

  def subset(self, index) -> "Dataset":
    return Dataset(self.images[index], self.labels[index], self.num_classes)


# ``transform(path, rng) -> (H, W, C)`` float32 in [0, 1].
Transform = Callable[[str, np.random.Generator], np.ndarray]


class ImageFiles:
  """Images decoded from files on demand, in a thread pool.

  Attributes:
    paths: one file per example.
    labels: ``(N,)`` int32.
    num_classes: K.
    transform: ``(path, rng) -> (H, W, C)`` float32 in [0, 1]; `rng` is a
      NumPy generator seeded from the read key (one per epoch) and the
      example's index, so a random crop is reproducible and independent of
      the batch the example lands in.
  """

  def __init__(
    self,
    paths: Sequence[str],
    labels: np.ndarray,
    num_classes: int,
    transform: Transform,
    image_shape: tuple[int, int, int],
  ):
    if len(paths) != len(labels):
      raise ValueError(f"{len(paths)} paths but {len(labels)} labels.")
    self.paths = list(paths)
    self.labels = np.asarray(labels, np.int32)
    self.num_classes = num_classes
    self.transform = transform
    self._image_shape = image_shape

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self._image_shape

  def __len__(self) -> int:
    return len(self.paths)

  def read(self, index: np.ndarray, key: jax.Array | None = None):
    seed = 0 if key is None else int(jax.random.randint(key, (), 0, 2**31 - 1))
    index = np.asarray(index).ravel()

    def one(i):
      rng = np.random.default_rng([seed, int(i)])
      return self.transform(self.paths[i], rng)

    with futures.ThreadPoolExecutor() as pool:
      return np.stack(list(pool.map(one, index)))

  def load(self, key: jax.Array | None = None) -> Dataset:
    """Decodes every image into an in-memory `Dataset`."""
    images = self.read(np.arange(len(self.paths)), key)
    return Dataset(images, self.labels, self.num_classes)


def batches(
  key: jax.Array,
  source: Source,
  batch_size: int,
  *,
  drop_last: bool = True,
  process: tuple[int, int] | None = None,
  with_index: bool = False,
) -> Iterator[tuple[np.ndarray, ...]]:
  """One epoch of ``(images, labels)`` batches in an order drawn from `key`
  (``(images, labels, index)`` with `with_index`: the examples' positions
  in `source`, to key each example by its index).

  With ``process=(p, P)`` (multi-host data parallelism), each global batch
  of `batch_size` is cut into P contiguous parts and only part p is read, so
  every process reads its own rows; `batch_size` must be a multiple of P.
  """
  p, num_processes = (0, 1) if process is None else process
  if batch_size % num_processes:
    raise ValueError(
      f"batch_size {batch_size} does not split over {num_processes} processes."
    )
  rows = batch_size // num_processes
  n = len(source.labels)
  order_key, read_key = jax.random.split(key)
  order = np.asarray(jax.random.permutation(order_key, n))
  stop = n - n % batch_size if drop_last else n
  for start in range(0, stop, batch_size):
    index = order[start : start + batch_size][p * rows : (p + 1) * rows]
    batch = (
      # One read key per epoch: a reader seeds example i from (key, i), so
      # its augmentation depends on the epoch and its index, not its batch.
      source.read(index, read_key),
      source.labels[index],
    )
    yield (*batch, index.astype(np.uint32)) if with_index else batch
