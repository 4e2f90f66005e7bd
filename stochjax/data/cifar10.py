"""CIFAR-10 from the official binary archive or its extracted folder."""

import os
import tarfile

import numpy as np

from stochjax.data.core import Dataset

_CIFAR_RECORD = 1 + 32 * 32 * 3
_CIFAR_FILES = {
  "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
  "test": ["test_batch.bin"],
}


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
