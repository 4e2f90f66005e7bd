"""ImageNette and ImageNet validation from the folders people have.

* ImageNette: ``imagenette2-320/{train,val}/<wnid>/*.JPEG`` (the fast.ai
  archive, extracted). Classes in sorted wnid order, files sorted, as
  torchvision's ImageFolder. The paper evaluates every 5th val image (785).
* ImageNet validation, either layout:
  - flat: ``ILSVRC2012_val_%08d.JPEG`` with labels from the
    ``validation_labels.txt`` that tensorflow-datasets ships (or a file
    given), wnids mapped to the sorted-wnid class index;
  - class folders ``val/<wnid>/*.JPEG`` (torchvision ImageFolder; Cohen et
    al.'s layout).
  The paper's subset is every 50th image of the class-folder order: the first
  image of each class (1,000).
"""

import functools
import os
import re

import numpy as np

from stochjax.data import core, images

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
_FLAT_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})\.JPEG$")


def _image_files(folder: str) -> list[str]:
  return sorted(
    name
    for name in os.listdir(folder)
    if name.lower().endswith(IMAGE_EXTENSIONS)
  )


def class_folders(root: str) -> tuple[list[str], np.ndarray, list[str]]:
  """torchvision ImageFolder order: (paths, labels, sorted class names)."""
  classes = sorted(
    d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
  )
  if not classes:
    raise ValueError(f"No class sub-folders in {root}.")
  paths, labels = [], []
  for label, name in enumerate(classes):
    for file in _image_files(os.path.join(root, name)):
      paths.append(os.path.join(root, name, file))
      labels.append(label)
  if not paths:
    raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {root}.")
  return paths, np.asarray(labels, np.int32), classes


def _tfds_file(*parts: str) -> str:
  import tensorflow_datasets as tfds  # noqa: PLC0415  (slow import)

  return os.path.join(os.path.dirname(tfds.__file__), *parts)


def imagenet_wnids() -> list[str]:
  """The 1,000 ImageNet wnids in class-index order (sorted)."""
  with open(_tfds_file("datasets", "imagenet2012", "labels.txt")) as f:
    return f.read().split()


def imagenet_validation_wnids(labels_file: str | None = None) -> list[str]:
  """The wnid of validation image i+1 at position i (50,000 lines)."""
  path = labels_file or _tfds_file(
    "datasets", "imagenet2012", "validation_labels.txt"
  )
  with open(path) as f:
    return f.read().split()


def _flat_imagenet(folder: str, labels_file: str | None):
  files = [f for f in os.listdir(folder) if _FLAT_NAME.match(f)]
  if not files:
    return None
  files.sort()
  wnids = imagenet_validation_wnids(labels_file)
  index = {w: i for i, w in enumerate(imagenet_wnids())}
  labels = []
  for name in files:
    number = int(_FLAT_NAME.match(name).group(1))
    if not 1 <= number <= len(wnids):
      raise ValueError(f"{name}: no label for image {number} in the labels.")
    labels.append(index[wnids[number - 1]])
  paths = [os.path.join(folder, f) for f in files]
  return paths, np.asarray(labels, np.int32)


def imagenet(
  data_dir: str, *, every: int = 50, labels_file: str | None = None
) -> core.ImageFiles:
  """ImageNet validation under `data_dir` (flat or class folders).

  `every` keeps images 0, every, 2 * every, ... in class order; 50 is the
  paper's 1,000-image subset (one per class).
  """
  folder = data_dir
  if os.path.isdir(os.path.join(data_dir, "val")):
    folder = os.path.join(data_dir, "val")
  if not os.path.isdir(folder):
    raise ValueError(_imagenet_help(data_dir))
  flat = _flat_imagenet(folder, labels_file)
  if flat is not None:
    paths, labels = flat
    # Class order (stable within a class) matches ImageFolder's, so `every`
    # picks the same images in both layouts.
    order = np.argsort(labels, kind="stable")
    paths, labels = [paths[i] for i in order], labels[order]
  else:
    try:
      paths, labels, classes = class_folders(folder)
    except ValueError as e:
      raise ValueError(_imagenet_help(data_dir)) from e
    known = set(imagenet_wnids())
    unknown = [c for c in classes if c not in known]
    if unknown:
      raise ValueError(f"{folder}: {unknown[:3]} are not ImageNet wnids.")
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    labels = np.asarray([index[classes[c]] for c in labels], np.int32)
  keep = slice(None, None, every)
  return core.ImageFiles(
    paths[keep], labels[keep], 1000, images.eval_transform, (224, 224, 3)
  )


def _imagenet_help(data_dir: str) -> str:
  return (
    f"No ImageNet validation images in {data_dir!r}: expected "
    "ILSVRC2012_val_%08d.JPEG files (labels from tensorflow-datasets' "
    "validation_labels.txt), or class sub-folders <wnid>/*.JPEG, directly "
    "or under val/."
  )


def imagenette(data_dir: str, split: str, *, every: int = 5):
  """ImageNette (320 px) under `data_dir` (or ``data_dir/imagenette2-320``).

  Train: RandomCrop(224) + flip, decoded per batch. Test: the val folder,
  Resize(256) + CenterCrop(224), every `every`-th image (5: the paper's 785).
  """
  root = data_dir
  if os.path.isdir(os.path.join(data_dir, "imagenette2-320")):
    root = os.path.join(data_dir, "imagenette2-320")
  folder = os.path.join(root, {"train": "train", "test": "val"}[split])
  if not os.path.isdir(folder):
    raise ValueError(
      f"No ImageNette {split} data at {folder}: expected the extracted "
      "imagenette2-320/{train,val}/<wnid>/*.JPEG tree under data_dir."
    )
  paths, labels, classes = class_folders(folder)
  if len(classes) != 10:
    raise ValueError(f"{folder}: {len(classes)} class folders, expected 10.")
  if split == "train":
    transform = functools.partial(images.train_transform, crop=224)
    return core.ImageFiles(paths, labels, 10, transform, (224, 224, 3))
  keep = slice(None, None, every)
  return core.ImageFiles(
    paths[keep], labels[keep], 10, images.eval_transform, (224, 224, 3)
  )
