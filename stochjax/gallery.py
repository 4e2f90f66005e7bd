"""See what a defense does: a PNG grid of draws on a bundled photo.

    python -m stochjax.gallery --defense "bart()" --image astronaut \\
        --num 8 --out grid.png

Photos ship with the installed packages (no download): scikit-image's
astronaut, chelsea, coffee, rocket; matplotlib's grace_hopper; scikit-learn's
china and flower.
"""

import argparse
import sys

import jax
import numpy as np
from PIL import Image

from stochjax import defenses, figures

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "grace_hopper", "china",
          "flower")  # fmt: skip


def photo(name: str, size: int) -> np.ndarray:
  """A bundled photo, centre-cropped square, ``(size, size, 3)`` in [0, 1]."""
  if name in ("astronaut", "chelsea", "coffee", "rocket"):
    import skimage.data  # noqa: PLC0415

    pixels = getattr(skimage.data, name)()
  elif name == "grace_hopper":
    from matplotlib import cbook  # noqa: PLC0415

    with cbook.get_sample_data("grace_hopper.jpg") as f:
      pixels = np.asarray(Image.open(f).convert("RGB"))
  elif name in ("china", "flower"):
    from sklearn.datasets import load_sample_image  # noqa: PLC0415

    pixels = load_sample_image(f"{name}.jpg")
  else:
    raise ValueError(f"Unknown image {name!r}; valid: {', '.join(PHOTOS)}.")
  h, w, _ = pixels.shape
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = Image.fromarray(pixels[top : top + side, left : left + side])
  square = square.resize((size, size), Image.BILINEAR)
  return np.asarray(square, np.float32) / 255.0


def draws(spec: str, image: np.ndarray, num: int, seed: int = 0) -> np.ndarray:
  """``(num, H, W, 3)`` independent draws of defense `spec` on `image`."""
  defense = defenses.lookup(spec)
  return np.asarray(
    jax.jit(defenses.draws(defense, num))(jax.random.key(seed), image)
  )


def grid(spec: str, image: np.ndarray, samples: np.ndarray, path: str):
  """Writes the original and the draws side by side, 5 per row."""
  panels = [image, *samples]
  cols = min(5, len(panels))
  rows = -(-len(panels) // cols)
  fig, axes = figures.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows))
  for i, ax in enumerate(np.ravel(axes)):
    ax.axis("off")
    if i < len(panels):
      ax.imshow(np.clip(panels[i], 0, 1))
      ax.set_title("original" if i == 0 else f"draw {i}", fontsize=8)
  fig.suptitle(spec, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m stochjax.gallery", description=__doc__.split("\n")[0]
  )
  parser.add_argument("--defense", required=True, help='e.g. "bart()"')
  parser.add_argument("--image", default="astronaut", choices=PHOTOS)
  parser.add_argument("--num", type=int, default=8)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default="grid.png")
  args = parser.parse_args(argv)
  if args.num < 1 or args.size < 8:
    parser.error("--num must be >= 1 and --size >= 8.")
  try:
    image = photo(args.image, args.size)
    samples = draws(args.defense, image, args.num, args.seed)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  grid(args.defense, image, samples, args.out)
  print(f"wrote {args.out}: {args.num} draws of {args.defense}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
