"""Images/s of each BaRT defense, stochjax (jit + vmap) vs a per-image loop.

    python benchmarks/defenses.py [--size 224] [--batch 64] [--rounds 3]

The reference is how the paper's code runs these transforms on the CPU: one
image at a time through scikit-image / SciPy / NumPy (kornia's median and
blur ran on the GPU there; SciPy's are the CPU stand-ins). Both sides draw
the paper's parameter ranges per image. Timings are interleaved per round;
the ratio is the median of per-round ratios (benchmarks/common.py).
"""

import argparse
import importlib.util
import io
import os
import random
import sys
import warnings

import numpy as np
import scipy.ndimage
import skimage.color
import skimage.data
import skimage.exposure
import skimage.filters.rank
import skimage.morphology
import skimage.restoration
import skimage.transform
import skimage.util
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

import stochjax  # noqa: E402, F401
from benchmarks import common  # noqa: E402
from stochjax import defenses  # noqa: E402

_MODES = ("gaussian", "poisson", "salt", "pepper", "s&p", "speckle")


def _odd(rng):
  return rng.integers(2, 14) | 1


def ref_noise(x, rng):
  return skimage.util.random_noise(x, mode=rng.choice(_MODES), rng=rng)


def ref_blur(x, rng):
  size, sigma = (_odd(rng), _odd(rng)), rng.uniform(0.1, 3.1, 2)
  for axis in (0, 1):
    t = np.arange(size[axis]) - size[axis] // 2
    weights = np.exp(-(t**2) / (2 * sigma[axis] ** 2))
    x = scipy.ndimage.correlate1d(
      x, weights / weights.sum(), axis, mode="mirror"
    )
  return x


def ref_median(x, rng):
  return scipy.ndimage.median_filter(
    x, size=(_odd(rng), _odd(rng), 1), mode="constant"
  )


def ref_swirl(x, rng):
  return skimage.transform.swirl(
    x, center=rng.integers(1, 201, 2), strength=rng.uniform(0.01, 2.0),
    radius=rng.integers(10, 201), order=1, mode="reflect",
  )  # fmt: skip


def ref_quantization(x, rng):
  scales = rng.integers(8, 200, 3)
  return np.round(x * scales) / scales


def ref_fft(x, rng):
  h, w, _ = x.shape
  factor = rng.uniform(0.98, 1.02, (h, w))
  out = np.empty_like(x)
  for c in range(x.shape[-1]):
    f = rng.uniform(0, 0.95)
    spectrum = np.fft.fft2(x[..., c])
    spectrum[int(h * f) : int(h * (1 - f))] = 0
    spectrum[:, int(w * f) : int(w * (1 - f))] = 0
    out[..., c] = np.clip(np.real(np.fft.ifft2(spectrum * factor)), 0, 1)
  return out


MEMBERS = {
  "noise_injection()": ref_noise,
  "gaussian_blur()": ref_blur,
  "median()": ref_median,
  "swirl()": ref_swirl,
  "quantization()": ref_quantization,
  "fft_perturbation()": ref_fft,
}


def ref_bart(x, rng):
  """The paper's six-member stack in a random order, per image."""
  members = list(MEMBERS.values())
  for fn in random.Random(int(rng.integers(1 << 30))).sample(
    members, len(members)
  ):
    x = fn(x, rng)
  return x


def ref_jpeg(x, rng):
  """The paper code's JPEG: truncate to uint8, PIL, back to [0, 1]."""
  buffer = io.BytesIO()
  pixels = Image.fromarray((x * 255).astype(np.uint8))
  pixels.save(buffer, "JPEG", quality=int(rng.integers(55, 75)))
  return np.asarray(Image.open(buffer), np.float32) / 255


def ref_resize_pad(x, rng):
  size = x.shape[0]
  out_size = -(-size * 256 // 224)
  r = int(rng.integers(size, out_size))
  top, left = rng.integers(0, out_size - r, 2)
  canvas = np.zeros((out_size, out_size, x.shape[-1]), np.float32)
  canvas[top : top + r, left : left + r] = skimage.transform.resize(
    x, (r, r), order=1, anti_aliasing=False
  )
  return canvas


def ref_tv_chambolle(x, rng):
  channel_axis = -1 if rng.integers(2) else None
  return skimage.restoration.denoise_tv_chambolle(
    x, weight=rng.uniform(0.05, 0.25), channel_axis=channel_axis
  )


def ref_lab_shift(x, rng):
  lab = skimage.color.rgb2lab(x) + rng.uniform(-1, 1, 3) * [5.0, 2.0, 2.0]
  lab[..., 0] = np.clip(lab[..., 0], 0, 100)
  return np.clip(skimage.color.lab2rgb(lab), 0, 1)


def ref_histogram_equalization(x, rng):
  return skimage.exposure.equalize_hist(x, nbins=int(rng.integers(40, 257)))


def ref_zoom(x, rng):
  lo, hi = round(x.shape[0] * 20 / 256), round(x.shape[0] * 50 / 256)
  top, bottom, left, right = rng.integers(lo, hi + 1, 4)
  h, w, _ = x.shape
  return skimage.transform.resize(
    x[top : h - bottom, left : w - right], x.shape
  )


def _rank_per_channel(x, filter_fn, **draws):
  """A scikit-image rank filter per channel on 8-bit levels, as BaRT."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "Possible precision loss".
    levels = skimage.util.img_as_ubyte(np.clip(x, 0, 1))
  return np.stack(
    [filter_fn(levels[..., c], **{k: v[c] for k, v in draws.items()})
     for c in range(x.shape[-1])], axis=-1,
  ) / 255.0  # fmt: skip


def ref_mean_filter(x, rng):
  radii = np.round(rng.uniform(2, 3, 3)).astype(int)
  if rng.integers(2):
    radii[:] = radii[0]
  return _rank_per_channel(
    x, lambda c, r: skimage.filters.rank.mean(c, skimage.morphology.disk(r)),
    r=radii,
  )  # fmt: skip


def ref_mean_bilateral(x, rng):
  def bilateral(c, r, s0, s1):
    footprint = skimage.morphology.disk(r)
    return skimage.filters.rank.mean_bilateral(c, footprint, s0=s0, s1=s1)

  r, s0, s1 = np.round(rng.uniform([[2], [5], [5]], 30, (3, 3))).astype(int)
  return _rank_per_channel(x, bilateral, r=r, s0=s0, s1=s1)


def ref_clahe(x, rng):
  side = min(x.shape[:2])
  sizes = np.round(rng.uniform(side / 10, side / 6, (3, 2))).astype(int)
  clips = rng.uniform(0.01, 0.04, 3)
  if rng.integers(2):
    return skimage.exposure.equalize_adapthist(
      x, kernel_size=tuple(sizes[0]), clip_limit=clips[0]
    )
  return np.stack(
    [skimage.exposure.equalize_adapthist(
      x[..., c], kernel_size=tuple(sizes[c]), clip_limit=clips[c]
    ) for c in range(3)], axis=-1,
  )  # fmt: skip


def ref_nl_means(x, rng):
  size, distance = int(rng.integers(5, 8)), int(rng.integers(6, 12))
  factor = rng.uniform(0.6, 1.15)
  if rng.integers(2):
    sigma = np.mean(_haar_sigma(x))
    return skimage.restoration.denoise_nl_means(
      x, patch_size=size, patch_distance=distance, h=factor * sigma,
      fast_mode=True, channel_axis=-1,
    )  # fmt: skip
  return np.stack(
    [skimage.restoration.denoise_nl_means(
      x[..., c], patch_size=size, patch_distance=distance,
      h=factor * _haar_sigma(x)[c], fast_mode=True,
    ) for c in range(x.shape[-1])], axis=-1,
  )  # fmt: skip


def _haar_sigma(x):
  """Per channel: median |finest diagonal Haar coefficient| / 0.6745."""
  d = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
  return np.median(np.abs(d).reshape(-1, x.shape[-1]), axis=0) / 0.6745


def ref_wavelet(x, rng):
  """BaRT's call (needs PyWavelets, not a stochjax dependency)."""
  kwargs = dict(wavelet="db1", mode=("soft", "hard")[rng.integers(2)],
                convert2ycbcr=bool(rng.integers(2)), channel_axis=-1)  # fmt: skip
  return skimage.restoration.cycle_spin(
    x, skimage.restoration.denoise_wavelet, max_shifts=int(rng.integers(2)),
    func_kw=kwargs, channel_axis=-1, num_workers=1,
  )  # fmt: skip


REFERENCES = MEMBERS | {
  "bart()": ref_bart,
  "jpeg()": ref_jpeg,
  "resize_pad()": ref_resize_pad,
  "tv_chambolle()": ref_tv_chambolle,
  "lab_shift()": ref_lab_shift,
  "histogram_equalization()": ref_histogram_equalization,
  "zoom()": ref_zoom,
  "mean_filter()": ref_mean_filter,
  "mean_bilateral()": ref_mean_bilateral,
  "adaptive_histogram_equalization()": ref_clahe,
  "nl_means()": ref_nl_means,
  "wavelet_denoise()": ref_wavelet,
}


def photos(size: int, batch: int) -> np.ndarray:
  """``(batch, size, size, 3)`` float32 copies of scikit-image's astronaut."""
  photo = skimage.transform.resize(skimage.data.astronaut(), (size,) * 2)
  return np.array(np.broadcast_to(photo, (batch, *photo.shape)), np.float32)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--only", default="", help="comma-separated specs")
  args = parser.parse_args()
  images = photos(args.size, args.batch)
  rng = np.random.default_rng(0)
  specs = args.only.split(",") if args.only else list(REFERENCES)
  print("| defense | stochjax img/s | per-image loop img/s | speed-up |")
  print("|---|---|---|---|")
  for spec in specs:
    if spec == "wavelet_denoise()" and not importlib.util.find_spec("pywt"):
      print(f"| `{spec}` | – | – | reference needs `pip install PyWavelets` |")
      continue
    fn = jax.jit(defenses.batched(defenses.lookup(spec)))
    x = jax.device_put(images)
    reference = REFERENCES[spec]
    times = common.interleave(
      {
        "jax": lambda fn=fn, x=x: fn(jax.random.key(0), x).block_until_ready(),
        "loop": lambda ref=reference: [ref(image, rng) for image in images],
      },
      rounds=args.rounds,
    )
    ours = args.batch / np.median(times["jax"])
    theirs = args.batch / np.median(times["loop"])
    ratio = common.paired_ratio(times, "jax", "loop")
    print(
      f"| `{spec}` | {ours:.0f} | {theirs:.0f} | {ratio:.1f}× |", flush=True
    )


if __name__ == "__main__":
  main()
