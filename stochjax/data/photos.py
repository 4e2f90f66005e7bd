"""Ten colour photographs that ship in wheels: a second embedded dataset.

The digits are grey, 17 levels, 64 pixels of content. This set is natural
colour at 256 levels per channel: each class is one photograph bundled
with scikit-image or scikit-learn (`PHOTOS`; loaded offline, no download),
and an example is a 32x32 patch of it. It is a texture and colour
recognition task (which photograph does this patch come from?), not
object recognition, and every inference from it covers these ten
photographs only.

Each photograph is downscaled (PIL's Lanczos, antialiased, back to uint8)
so its shorter side is `SHORT_SIDE` pixels (those smaller keep their
size), then cut into `STRIPS` vertical strips of equal width. The seed
picks one strip as the test part (seed mod 3) and the rest as the training
part, with a gutter of `GUTTER` pixels on each side of the test strip that
no patch uses (the resize filter's reach), so no pixel of a test patch
lies in, or was resampled from pixels of, a training patch:

* test: the non-overlapping 32x32 tiles of the test strip, in raster
  order per photograph, then interleaved across classes (so a prefix of
  the test set is balanced);
* train: `TRAIN_PER_CLASS` random 32x32 crops of the training strips, each
  flipped left-right with probability 1/2, drawn by the seed.

Sizes at the defaults: 492 test tiles (36-60 per class; the first 360 are
36 per class), 2,000 training crops; tested in tests/data_test.py.
"""

import functools

import numpy as np
from PIL import Image

from stochjax.data import splits
from stochjax.data.core import Dataset

SIZE = 32
SHORT_SIDE = 384
STRIPS = 3
GUTTER = 8
TRAIN_PER_CLASS = 200

# Class name -> (package, loader). scikit-image's data ship in its wheel;
# scikit-learn's two sample images in its own.
PHOTOS = (
  "astronaut",
  "chelsea",
  "coffee",
  "rocket",
  "hubble_deep_field",
  "immunohistochemistry",
  "retina",
  "motorcycle",
  "china",
  "flower",
)


def _raw(name: str) -> np.ndarray:
  """Photograph `name` as ``(H, W, 3)`` uint8."""
  if name in ("china", "flower"):
    from sklearn.datasets import load_sample_image  # noqa: PLC0415

    return load_sample_image(f"{name}.jpg")
  from skimage import data  # noqa: PLC0415  (slow import)

  if name == "motorcycle":
    return data.stereo_motorcycle()[0]
  return getattr(data, name)()


@functools.cache
def photograph(name: str) -> np.ndarray:
  """Photograph `name` at the dataset's scale: ``(H, W, 3)`` uint8, shorter
  side `SHORT_SIDE` (or its own, if smaller)."""
  image = np.asarray(_raw(name))[..., :3]
  h, w = image.shape[:2]
  scale = min(1.0, SHORT_SIDE / min(h, w))
  if scale < 1.0:
    size = (round(w * scale), round(h * scale))
    image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
  return image


def strips(width: int, test_strip: int) -> tuple[tuple, list[tuple]]:
  """``(test, train)`` column ranges ``[start, stop)``: strip `test_strip`
  of `STRIPS`, less `GUTTER` on each side, and the columns beyond the
  gutters on either side of it."""
  edges = np.linspace(0, width, STRIPS + 1).round().astype(int)
  start, stop = int(edges[test_strip]), int(edges[test_strip + 1])
  test = (start + GUTTER * (start > 0), stop - GUTTER * (stop < width))
  train = [(0, start - GUTTER), (stop + GUTTER, width)]
  return test, [(a, b) for a, b in train if b - a >= SIZE]


def tiles(image: np.ndarray, columns: tuple) -> list[tuple[int, int]]:
  """Top-left corners of the non-overlapping tiles inside `columns`."""
  start, stop = columns
  return [
    (y, x)
    for y in range(0, image.shape[0] - SIZE + 1, SIZE)
    for x in range(start, stop - SIZE + 1, SIZE)
  ]


def crops(image: np.ndarray, columns: list[tuple], count: int,
          rng: np.random.Generator) -> list[tuple[int, int]]:  # fmt: skip
  """`count` random top-left corners of crops inside the `columns` ranges
  (each range chosen in proportion to its possible positions)."""
  widths = np.array([b - a - SIZE + 1 for a, b in columns])
  which = rng.choice(len(columns), size=count, p=widths / widths.sum())
  xs = [columns[i][0] + rng.integers(widths[i]) for i in which]
  ys = rng.integers(0, image.shape[0] - SIZE + 1, size=count)
  return [(int(y), int(x)) for y, x in zip(ys, xs, strict=True)]


def _patch(image, y, x, flip=False) -> np.ndarray:
  patch = image[y : y + SIZE, x : x + SIZE]
  return patch[:, ::-1] if flip else patch


def load_photos(split: str, seed: int = 0) -> Dataset:
  """Split "train" or "test" at `seed` (see the module docstring)."""
  rng = splits.generator(seed, "photos")
  test_strip = seed % STRIPS
  images, labels, per_class = [], [], []
  for name in PHOTOS:
    image = photograph(name)
    test, train = strips(image.shape[1], test_strip)
    if split == "test":
      patches = [_patch(image, y, x) for y, x in tiles(image, test)]
    else:
      corners = crops(image, train, TRAIN_PER_CLASS, rng)
      flips = rng.random(len(corners)) < 0.5
      patches = [_patch(image, y, x, f)
                 for (y, x), f in zip(corners, flips, strict=True)]  # fmt: skip
    per_class.append(patches)
  # Interleaved across classes: a prefix of any length is nearly balanced.
  for i in range(max(len(p) for p in per_class)):
    for label, patches in enumerate(per_class):
      if i < len(patches):
        images.append(patches[i])
        labels.append(label)
  pixels = np.stack(images).astype(np.float32) / 255.0
  return Dataset(pixels, np.asarray(labels, np.int32), len(PHOTOS))
