"""JPEG at 224x224: stochjax's libjpeg-exact JAX codec vs PIL per image.

    python -m benchmarks.jpeg [--batch 32] [--rounds 3] [--size 224]

"stochjax" is ``jax.jit(jax.vmap(jpeg_compress))`` on a batch (one quality
per image, as the defense draws); "PIL" encodes and decodes the same images
one by one (libjpeg-turbo, what the paper's code and BaRT call). Both
produce identical pixels (checked here on the batch). Reports images/s and
the paired ratio, interleaved round by round (benchmarks/common.py).
"""

import argparse
import io

import jax
import jax.numpy as jnp
import numpy as np
import skimage.data
import skimage.transform
from PIL import Image

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from benchmarks import common
from stochjax.defenses import jpeg


def pil_codec(pixels: np.ndarray, quality: int) -> np.ndarray:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
  return np.asarray(Image.open(buffer))


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--size", type=int, default=224)
  args = parser.parse_args(argv)
  photo = skimage.transform.resize(
    skimage.data.astronaut(), (args.size, args.size), anti_aliasing=True
  )
  rng = np.random.default_rng(0)
  noise = rng.normal(0, 0.02, (args.batch, *photo.shape))
  images = np.clip(photo[None] + noise, 0, 1).astype(np.float32)
  qualities = rng.integers(55, 75, args.batch).astype(np.int32)
  pixels = np.floor(images * 255).astype(np.uint8)
  codec = jax.jit(jax.vmap(jpeg.jpeg_compress))
  x, q = jnp.asarray(images), jnp.asarray(qualities)

  ours = np.asarray(codec(x, q))
  theirs = np.stack(
    [pil_codec(p, int(k)) for p, k in zip(pixels, qualities, strict=True)]
  )
  equal = np.mean(np.round(ours * 255).astype(np.uint8) == theirs)
  times = common.interleave(
    {
      "stochjax": lambda: codec(x, q).block_until_ready(),
      "PIL": lambda: [
        pil_codec(p, int(k)) for p, k in zip(pixels, qualities, strict=True)
      ],
    },
    rounds=args.rounds,
  )
  for name, seconds in times.items():
    rate = args.batch / float(np.median(seconds))
    print(f"{name:9s} {rate:8.1f} images/s at {args.size}x{args.size}")
  ratio = common.paired_ratio(times, "stochjax", "PIL")
  print(f"stochjax / PIL throughput: {ratio:.2f}x; equal values: {equal:.4%}")


if __name__ == "__main__":
  main()
