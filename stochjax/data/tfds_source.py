"""``tfds:<name>``: datasets prepared by tensorflow-datasets, read without TF.

`tfds.data_source` gives random access to prepared ``array_record`` folders
(prepared once elsewhere, with TensorFlow; reading needs none). Images of a
fixed size are used as stored; others get the evaluation transform (shorter
side 256, centre 224 crop) so a batch has one shape. Labels may come back as
Python ints or NumPy scalars depending on the tfds version: both work.
"""

import numpy as np
from PIL import Image

from stochjax.data import core, images

_SPLITS = {"train": ("train",), "test": ("test", "validation")}


def _split_name(info, name: str, split: str) -> str:
  available = set(info.splits.keys())
  for candidate in _SPLITS[split]:
    if not available or candidate in available:
      return candidate
  raise ValueError(
    f"tfds:{name} has splits {sorted(available)}; none of "
    f"{_SPLITS[split]} for split {split!r}."
  )


class TfdsSource:
  """A tfds data source as a stochjax source (see `core.Source`)."""

  def __init__(self, name: str, split: str, data_dir: str | None = None):
    import tensorflow_datasets as tfds  # noqa: PLC0415  (slow import)

    try:
      builder = tfds.builder(name, data_dir=data_dir or None)
    except Exception as e:  # tfds raises several types for unknown names.
      raise ValueError(f"Unknown tfds dataset {name!r}: {e}") from e
    split = _split_name(builder.info, name, split)
    try:
      self._source = tfds.data_source(
        name, split=split, data_dir=data_dir or None, download=False
      )
    except Exception as e:
      raise ValueError(
        f"tfds:{name} split {split!r} is not prepared in {data_dir!r} "
        "(array_record format; prepare it once with TensorFlow installed: "
        f"tfds.builder(name, file_format='array_record')"
        f".download_and_prepare()): {e}"
      ) from e
    features = self._source.dataset_info.features
    self.num_classes = int(features["label"].num_classes)
    shape = features["image"].shape
    self._fixed = None not in shape
    self._image_shape = tuple(shape) if self._fixed else (224, 224, 3)
    self.labels = np.asarray(
      [int(self._source[i]["label"]) for i in range(len(self._source))],
      np.int32,
    )

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self._image_shape

  def __len__(self) -> int:
    return len(self.labels)

  def _image(self, i: int) -> np.ndarray:
    pixels = np.asarray(self._source[int(i)]["image"])
    if self._fixed:
      return pixels.astype(np.float32) / 255.0
    image = Image.fromarray(pixels).convert("RGB")
    return images.to_float(
      images.center_crop(images.resize_shorter(image, 256), 224)
    )

  def read(self, index, key=None) -> np.ndarray:
    del key  # No random augmentation.
    return np.stack([self._image(i) for i in np.asarray(index).ravel()])

  def load(self, key=None) -> core.Dataset:
    images_ = self.read(np.arange(len(self.labels)), key)
    return core.Dataset(images_, self.labels, self.num_classes)
