"""Tiny datasets written in the real on-disk layouts, for dry runs.

`write(name, root)` writes a few seeded noise images where the real loader
(`stochjax.data.load`) expects the real data, so a dry run reads them
through the same code as a paper run: ImageNet's flat validation folder
(``ILSVRC2012_val_%08d.JPEG``, labelled by tensorflow-datasets' bundled
``validation_labels.txt``), ImageNette's ``imagenette2-320/{train,val}/
<wnid>/`` tree, and CIFAR-10's binary batches.
"""

import os

import numpy as np
from PIL import Image

from stochjax.data import cifar10

IMAGENETTE_WNIDS = (
  "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
  "n03394916", "n03417042", "n03425413", "n03445777", "n03888257",
)  # fmt: skip
NAMES = ("imagenet", "imagenette", "cifar10")


def _jpeg(path: str, rng, size=(240, 240)) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
  Image.fromarray(pixels).save(path, quality=90)


def _imagenet(root: str, rng, num: int) -> None:
  # The loader keeps every 50th image in class order: 50 * (num - 1) + 1
  # files give `num` test images.
  for n in range(1, 50 * (num - 1) + 2):
    _jpeg(os.path.join(root, f"ILSVRC2012_val_{n:08d}.JPEG"), rng, (64, 80))


def _imagenette(root: str, rng, num: int) -> None:
  # One training image per class; validation: every 5th of the class-sorted
  # tree is a test image.
  base = os.path.join(root, "imagenette2-320")
  per_class = -(-5 * num // len(IMAGENETTE_WNIDS))
  for wnid in IMAGENETTE_WNIDS:
    _jpeg(os.path.join(base, "train", wnid, "train_0.JPEG"), rng)
    for i in range(per_class):
      _jpeg(os.path.join(base, "val", wnid, f"val_{i}.JPEG"), rng)


def _cifar10(root: str, rng, num: int) -> None:
  # Every image is class 0, so a model trained on one batch of them
  # classifies the test images correctly (and a dry run attacks them).
  folder = os.path.join(root, "cifar-10-batches-bin")
  os.makedirs(folder, exist_ok=True)
  names = cifar10._CIFAR_FILES["train"] + cifar10._CIFAR_FILES["test"]
  for name in names:
    labels = np.zeros((num, 1), np.uint8)
    pixels = rng.integers(0, 256, (num, 3 * 32 * 32), dtype=np.uint8)
    with open(os.path.join(folder, name), "wb") as f:
      f.write(np.concatenate([labels, pixels], axis=1).tobytes())


def write(name: str, root: str, *, num: int = 2, seed: int = 0) -> str:
  """Writes dataset `name` ("imagenet", "imagenette", "cifar10") with `num`
  test images (CIFAR-10: `num` per batch file) under `root`; returns the
  ``data_dir`` to load it from.

  Raises:
    ValueError: an unknown name.
  """
  writers = {"imagenet": _imagenet, "imagenette": _imagenette,
             "cifar10": _cifar10}  # fmt: skip
  if name not in writers:
    raise ValueError(f"No synthetic {name!r}; valid: {', '.join(NAMES)}.")
  writers[name](root, np.random.default_rng(seed), num)
  return root
