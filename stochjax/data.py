"""Datasets as in-memory arrays: float32 NHWC images in [0, 1], int32 labels.

Sources (`load(name, split)`):
  * ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 real
    images, shipped with the package, so it works offline), upsampled
    bilinearly to 32x32 and repeated to 3 channels. Fixed split: a seed-0
    permutation, the last 360 images are the test set. The embedded default.
  * ``cifar10``: the official binary archive ``cifar-10-binary.tar.gz`` or its
    extracted ``cifar-10-batches-bin/`` folder under ``data_dir``.

Batches come from `batches(key, dataset, batch_size)`, shuffled by `key`.
"""

import os
import tarfile
from collections.abc import Iterator
from typing import NamedTuple

import jax
import numpy as np

DIGITS_TEST_SIZE = 360
_CIFAR_RECORD = 1 + 32 * 32 * 3
_CIFAR_FILES = {
  "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
  "test": ["test_batch.bin"],
}


class Dataset(NamedTuple):
  """images ``(N, H, W, C)`` float32 in [0, 1]; labels ``(N,)`` int32."""

  images: np.ndarray
  labels: np.ndarray
  num_classes: int


def _upsample(images: np.ndarray, size: int) -> np.ndarray:
  """Bilinear (half-pixel centres) resize of ``(N, h, w)`` to ``(N, s, s)``."""
  out = jax.image.resize(
    images, (images.shape[0], size, size), "linear", antialias=False
  )
  return np.clip(np.asarray(out, np.float32), 0.0, 1.0)


def load_digits(split: str, size: int = 32) -> Dataset:
  """scikit-learn's digits, upsampled to ``(size, size, 3)``."""
  from sklearn import datasets  # noqa: PLC0415  (slow import)

  digits = datasets.load_digits()
  images = (digits.images / 16.0).astype(np.float32)
  order = np.random.RandomState(0).permutation(len(images))
  test, train = order[-DIGITS_TEST_SIZE:], order[:-DIGITS_TEST_SIZE]
  index = {"train": train, "test": test}[split]
  pixels = _upsample(images[index], size)
  rgb = np.repeat(pixels[..., None], 3, axis=-1)
  return Dataset(rgb, digits.target[index].astype(np.int32), 10)


def _parse_cifar(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
  if len(raw) % _CIFAR_RECORD:
    raise ValueError(
      f"{name}: {len(raw)} bytes is not a whole number of CIFAR-10 records "
      f"({_CIFAR_RECORD} bytes each); the file is truncated or corrupt."
    )
  records = np.frombuffer(raw, np.uint8).reshape(-1, _CIFAR_RECORD)
  labels = records[:, 0].astype(np.int32)
  if labels.size and labels.max() > 9:
    raise ValueError(f"{name}: label {labels.max()} > 9; not CIFAR-10 data.")
  images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return images.astype(np.float32) / 255.0, labels


def load_cifar10(data_dir: str, split: str) -> Dataset:
  """CIFAR-10 from ``cifar-10-binary.tar.gz`` or ``cifar-10-batches-bin/``.

  Raises:
    ValueError: neither layout under `data_dir`, or a corrupt file.
  """
  folder = os.path.join(data_dir, "cifar-10-batches-bin")
  archive = os.path.join(data_dir, "cifar-10-binary.tar.gz")
  names = _CIFAR_FILES[split]
  parts = []
  if os.path.isdir(folder):
    for name in names:
      path = os.path.join(folder, name)
      if not os.path.exists(path):
        raise ValueError(f"Missing CIFAR-10 file {path}.")
      with open(path, "rb") as f:
        parts.append(_parse_cifar(f.read(), path))
  elif os.path.exists(archive):
    try:
      with tarfile.open(archive) as tar:
        for name in names:
          member = tar.extractfile(f"cifar-10-batches-bin/{name}")
          parts.append(_parse_cifar(member.read(), f"{archive}:{name}"))
    except (tarfile.TarError, KeyError, EOFError, OSError) as e:
      raise ValueError(f"Cannot read CIFAR-10 archive {archive}: {e}") from e
  else:
    raise ValueError(
      f"No CIFAR-10 data in {data_dir!r}: expected {folder}/ with "
      f"{', '.join(_CIFAR_FILES['train'] + _CIFAR_FILES['test'])}, or "
      f"{archive} (the official binary version)."
    )
  images = np.concatenate([p[0] for p in parts])
  labels = np.concatenate([p[1] for p in parts])
  return Dataset(images, labels, 10)


DATASETS = ("digits", "cifar10")


def load(name: str, split: str, *, data_dir: str | None = None) -> Dataset:
  """Loads split "train" or "test" of dataset `name` (see module docstring)."""
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}; valid: {', '.join(DATASETS)}.")
  if split not in ("train", "test"):
    raise ValueError(f"Unknown split {split!r}; valid: train, test.")
  if name == "digits":
    return load_digits(split)
  if data_dir is None:
    raise ValueError(f"Dataset {name!r} needs data_dir.")
  return load_cifar10(data_dir, split)


def batches(
  key: jax.Array, dataset: Dataset, batch_size: int, *, drop_last: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """One epoch of ``(images, labels)`` batches in an order drawn from `key`."""
  n = len(dataset.labels)
  order = np.asarray(jax.random.permutation(key, n))
  stop = n - n % batch_size if drop_last else n
  for start in range(0, stop, batch_size):
    index = order[start : start + batch_size]
    yield dataset.images[index], dataset.labels[index]
