"""Decoding image files and the torchvision-equivalent preprocessing.

`resize_shorter` + `center_crop` are bit-identical to torchvision's
``Resize(256)`` + ``CenterCrop(224)`` + ``ToTensor`` on a PIL image (both call
PIL's bilinear resize; torchvision sizes the long side with ``int()`` and
offsets the crop with ``round()``), so no torchvision is needed.

A file PIL cannot decode raises a `ValueError` naming it: skipping it would
silently shift index-based subsets such as ImageNet's every-50th image.
"""

import numpy as np
from PIL import Image, UnidentifiedImageError


def open_rgb(path: str) -> Image.Image:
  """The image at `path` as RGB.

  Raises:
    ValueError: the file is missing, truncated or not an image.
  """
  try:
    with Image.open(path) as image:
      image.load()
      return image.convert("RGB")
  except (OSError, UnidentifiedImageError, SyntaxError) as e:
    raise ValueError(f"Cannot decode image {path}: {e}") from e


def resize_shorter(image: Image.Image, size: int) -> Image.Image:
  """Bilinear resize so the shorter side is `size` (torchvision Resize)."""
  w, h = image.size
  short, long = min(w, h), max(w, h)
  if short == size:
    return image
  new_long = int(size * long / short)
  new_w, new_h = (size, new_long) if w <= h else (new_long, size)
  return image.resize((new_w, new_h), Image.BILINEAR)


def center_crop(image: Image.Image, size: int) -> Image.Image:
  """The central ``size x size`` crop (torchvision CenterCrop)."""
  w, h = image.size
  if w < size or h < size:
    raise ValueError(f"Image {w}x{h} is smaller than the {size} crop.")
  top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
  return image.crop((left, top, left + size, top + size))


def to_float(image: Image.Image) -> np.ndarray:
  """``(H, W, 3)`` float32 in [0, 1] (torchvision ToTensor, channels last)."""
  return np.asarray(image, np.float32) / 255.0


def eval_transform(path: str, rng=None, *, resize=256, crop=224) -> np.ndarray:
  """The standard evaluation transform: Resize(256), CenterCrop(224)."""
  del rng
  return to_float(center_crop(resize_shorter(open_rgb(path), resize), crop))


def train_transform(path: str, rng: np.random.Generator, *, crop=224):
  """RandomCrop(crop) from the stored image (no resize), random h-flip.

  As the paper's ImageNette training: 224 crops straight from the 320 px
  images.
  """
  image = open_rgb(path)
  w, h = image.size
  if w < crop or h < crop:
    raise ValueError(f"{path}: {w}x{h} is smaller than the {crop} crop.")
  top = int(rng.integers(0, h - crop + 1))
  left = int(rng.integers(0, w - crop + 1))
  pixels = to_float(image.crop((left, top, left + crop, top + crop)))
  return pixels[:, ::-1] if rng.random() < 0.5 else pixels
