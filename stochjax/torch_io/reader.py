"""A torch-free reader for ``torch.save`` files that never runs their code.

Both formats are supported:

* zip (torch >= 1.6): ``<root>/data.pkl`` plus one raw record per storage,
  ``<root>/data/<key>``;
* legacy (torch < 1.6, e.g. Cohen et al.'s 2019 checkpoints): consecutive
  pickles — magic number, protocol version, system info, the object (whose
  storages are persistent ids), the storage keys — then each storage as an
  int64 element count followed by its raw bytes.

The unpickler resolves only the globals a checkpoint of tensors needs
(tensor and parameter rebuilders, storage types, ``OrderedDict``, …). Any
other global — ``os.system``, a user class, ``builtins.eval`` — raises
`UnsafeCheckpointError` before anything is called.
"""

import collections
import io
import pickle
import struct
import zipfile
from typing import Any

import ml_dtypes
import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
  "DoubleStorage": np.float64,
  "FloatStorage": np.float32,
  "HalfStorage": np.float16,
  "BFloat16Storage": ml_dtypes.bfloat16,
  "LongStorage": np.int64,
  "IntStorage": np.int32,
  "ShortStorage": np.int16,
  "CharStorage": np.int8,
  "ByteStorage": np.uint8,
  "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(ValueError):
  """The pickle asks for a global outside the allow-list."""


class _StorageType:
  def __init__(self, name: str):
    self.dtype = np.dtype(STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *unused):
  """``torch._utils._rebuild_tensor_v2`` as a NumPy array (a copy)."""
  del unused  # requires_grad, backward hooks, metadata.
  if storage is None:  # Legacy first pass: shapes only.
    return None
  size, stride = tuple(size), tuple(stride)
  if len(size) != len(stride) or min(stride, default=0) < 0 or offset < 0:
    raise ValueError(f"Bad tensor layout: size {size}, stride {stride}.")
  if any(n == 0 for n in size):
    return np.zeros(size, storage.dtype)
  last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
  if last >= len(storage):  # as_strided must never read past the storage.
    raise ValueError(
      f"Tensor of size {size} at offset {offset} overruns its storage of "
      f"{len(storage)} elements."
    )
  if not size:
    return np.array(storage[offset])
  itemsize = storage.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(
    storage[offset:], shape=tuple(size), strides=[s * itemsize for s in stride]
  )
  return np.array(view)


def _rebuild_parameter(data, *unused):
  del unused
  return data


def _size(*args):
  return tuple(*args)


_ALLOWED = {
  ("collections", "OrderedDict"): collections.OrderedDict,
  ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
  ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
  ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  ("torch", "Size"): _size,
}


class _Unpickler(pickle.Unpickler):
  def __init__(self, file, load_storage, path):
    super().__init__(file)
    self._load_storage = load_storage
    self._path = path
    self._storages = {}

  def find_class(self, module, name):
    if module == "torch" and name in STORAGE_DTYPES:
      return _StorageType(name)
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    raise UnsafeCheckpointError(
      f"{self._path}: refusing to load global {module}.{name}; a checkpoint "
      "of tensors needs only torch's tensor rebuilders and storages. If you "
      "trust this file, re-save just its state_dict with torch."
    )

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
      raise UnsafeCheckpointError(f"{self._path}: unknown persistent id {pid}.")
    storage_type, key = pid[1], str(pid[2])
    if not isinstance(storage_type, _StorageType):
      raise UnsafeCheckpointError(f"{self._path}: bad storage type {pid}.")
    if key not in self._storages:
      self._storages[key] = self._load_storage(key, storage_type.dtype)
    storage = self._storages[key]
    if (
      storage is not None and len(pid) > 5 and pid[5] is not None
    ):  # Legacy view: (key, offset, n).
      _, offset, numel = pid[5]
      storage = storage[offset : offset + numel]
    return storage


def _read_zip(path: str) -> Any:
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
      raise ValueError(f"{path}: no single data.pkl in the zip archive.")
    root = pickles[0][: -len("data.pkl")]
    if f"{root}byteorder" in names:
      order = archive.read(f"{root}byteorder").decode()
      if order != "little":
        raise ValueError(f"{path}: byte order {order!r} is not supported.")

    def load_storage(key, dtype):
      try:
        raw = archive.read(f"{root}data/{key}")
      except KeyError as e:
        raise ValueError(f"{path}: storage {key} is missing.") from e
      return np.frombuffer(raw, dtype).copy()

    unpickler = _Unpickler(
      io.BytesIO(archive.read(pickles[0])), load_storage, path
    )
    return unpickler.load()


def _read_legacy(path: str, f) -> Any:
  def no_storage(key, dtype):
    raise UnsafeCheckpointError(f"{path}: storage {key} outside the object.")

  def header():
    return _Unpickler(f, no_storage, path).load()

  if header() != _LEGACY_MAGIC:
    raise ValueError(f"{path}: not a torch.save file (bad magic number).")
  if header() != _LEGACY_PROTOCOL:
    raise ValueError(f"{path}: unsupported legacy protocol version.")
  header()  # sys_info: endianness and type sizes.
  # The storages' bytes follow the object, so read it twice: first only to
  # learn each storage's dtype, then with the data.
  start = f.tell()
  dtypes = {}

  def record(key, dtype):
    dtypes[key] = dtype

  _Unpickler(f, record, path).load()
  keys = [str(k) for k in header()]
  data = {}
  for key in keys:
    raw_count = f.read(8)
    if len(raw_count) != 8:
      raise ValueError(f"{path}: truncated before storage {key}.")
    (numel,) = struct.unpack("<q", raw_count)
    if key not in dtypes or numel < 0:
      raise ValueError(f"{path}: unexpected storage {key}.")
    raw = f.read(numel * dtypes[key].itemsize)
    if len(raw) != numel * dtypes[key].itemsize:
      raise ValueError(f"{path}: storage {key} is truncated.")
    data[key] = np.frombuffer(raw, dtypes[key]).copy()
  missing = set(dtypes) - set(data)
  if missing:
    raise ValueError(f"{path}: storages {sorted(missing)} are missing.")
  f.seek(start)
  return _Unpickler(f, lambda key, dtype: data[key], path).load()


def read(path: str) -> Any:
  """The object saved in `path`, tensors as NumPy arrays.

  Raises:
    UnsafeCheckpointError: the file references a global outside the
      allow-list (e.g. code to run); nothing in it was called.
    ValueError: not a torch.save file, truncated or corrupt.
  """
  try:
    if zipfile.is_zipfile(path):
      return _read_zip(path)
    with open(path, "rb") as f:
      return _read_legacy(path, f)
  except UnsafeCheckpointError:
    raise
  except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"{path}: corrupt or truncated checkpoint ({e}).") from e
