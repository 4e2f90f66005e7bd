"""Datasets: float32 NHWC images in [0, 1] and int32 labels.

`load(name, split, data_dir=...)` returns a source (`core.Source`):

  * ``digits``: scikit-learn's bundled digits at 32x32x3 (the embedded
    default; works offline, no data_dir).
  * ``photos``: 32x32 colour patches of ten photographs bundled with
    scikit-image and scikit-learn, one class each (offline, no data_dir;
    `photos`).
  * ``cifar10``: ``cifar-10-binary.tar.gz`` or ``cifar-10-batches-bin/``.
  * ``imagenette``: ``imagenette2-320/{train,val}/<wnid>/*.JPEG``; test is
    every 5th val image (the paper's 785).
  * ``imagenet``: validation only, flat ``ILSVRC2012_val_%08d.JPEG`` or
    ``<wnid>/`` folders; every 50th image (the paper's 1,000).
  * ``tfds:<name>``: a tensorflow-datasets array_record folder, read without
    TensorFlow.

Small sets come back as an in-memory `Dataset`; image folders as
`ImageFiles`, decoded per batch (`batches`) or all at once (`.load()`).
A file that cannot be decoded raises a `ValueError` naming it. `seed`
re-draws the train / test partition of a dataset without an official one
(`splits.RESPLITTABLE`); `splits.calibration_split` divides test images
into calibration and evaluation parts.
"""

from stochjax.data import cifar10, digits, folders, images, photos, splits
from stochjax.data.core import Dataset, ImageFiles, Source, batches

DATASETS = (
  "digits",
  "photos",
  "cifar10",
  "imagenette",
  "imagenet",
  "tfds:<name>",
)


def load(
  name: str, split: str, *, data_dir: str | None = None, seed: int | None = None
) -> Source:
  """Split "train" or "test" of dataset `name` (see the module docstring);
  `seed` (None: 0) draws the partition of a resplittable dataset.

  Raises:
    ValueError: unknown name or split, a missing data folder (saying where
      it looked and which layout it expects), a corrupt file, or a seed for
      a dataset with an official split.
  """
  if split not in ("train", "test"):
    raise ValueError(f"Unknown split {split!r}; valid: train, test.")
  if seed is not None and not splits.resplittable(name):
    raise ValueError(
      f"{name!r} has an official train / test split, which a seed does not "
      "re-draw; pass seed=None (splits.calibration_split re-draws the "
      "calibration / evaluation parts)."
    )
  if name == "digits":
    return digits.load_digits(split, seed=seed or 0)
  if name == "photos":
    return photos.load_photos(split, seed=seed or 0)
  if name.startswith("tfds:"):
    from stochjax.data import tfds_source  # noqa: PLC0415  (imports tfds)

    return tfds_source.TfdsSource(name[len("tfds:") :], split, data_dir)
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}; valid: {', '.join(DATASETS)}.")
  if not data_dir:
    raise ValueError(f"Dataset {name!r} needs data_dir (a local folder).")
  if name == "cifar10":
    return cifar10.load_cifar10(data_dir, split)
  if name == "imagenette":
    return folders.imagenette(data_dir, split)
  if split == "train":
    raise ValueError("imagenet: only the validation set is supported (test).")
  return folders.imagenet(data_dir)


def load_arrays(name: str, split: str, *, data_dir=None, seed=None) -> Dataset:
  """`load`, decoded into memory (for evaluation sets)."""
  source = load(name, split, data_dir=data_dir, seed=seed)
  return source if isinstance(source, Dataset) else source.load()


__all__ = [
  "DATASETS",
  "cifar10",
  "digits",
  "folders",
  "images",
  "photos",
  "splits",
  "Dataset",
  "ImageFiles",
  "Source",
  "batches",
  "load",
  "load_arrays",
]
