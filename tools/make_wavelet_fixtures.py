"""Writes scikit-image's wavelet denoising outputs for the wavelet tests.

Needs PyWavelets (not a stochjax dependency): ``pip install PyWavelets``,
then

    python tools/make_wavelet_fixtures.py tests/fixtures/wavelet

CI never runs this; it reads the committed ``expected.npz``: two noisy
photos (an even and an odd size, float32) and, for each, BaRT's call
``cycle_spin(image, denoise_wavelet, max_shifts, func_kw=dict(
wavelet="db1", mode=mode, convert2ycbcr=ycbcr, channel_axis=-1),
channel_axis=-1)`` for every mode, colour space and shift.
"""

import itertools
import os
import sys

import numpy as np
import skimage.data
import skimage.transform
from skimage.restoration import cycle_spin, denoise_wavelet

SHAPES = {"even": (32, 32), "odd": (37, 30)}


def main(out_dir: str) -> None:
  os.makedirs(out_dir, exist_ok=True)
  rng = np.random.default_rng(0)
  arrays = {}
  for name, shape in SHAPES.items():
    photo = skimage.transform.resize(
      skimage.data.astronaut(), shape, anti_aliasing=True
    )
    noisy = np.clip(photo + rng.normal(0, 0.08, photo.shape), 0, 1)
    noisy = noisy.astype(np.float32)
    arrays[f"{name}/input"] = noisy
    for mode, ycbcr, shifts in itertools.product(
      ("soft", "hard"), (False, True), (0, 1)
    ):
      kwargs = dict(wavelet="db1", mode=mode, convert2ycbcr=ycbcr,
                    channel_axis=-1)  # fmt: skip
      out = cycle_spin(noisy, denoise_wavelet, max_shifts=shifts,
                       func_kw=kwargs, channel_axis=-1,
                       num_workers=1)  # fmt: skip
      arrays[f"{name}/{mode}/ycbcr={int(ycbcr)}/shifts={shifts}"] = out.astype(
        np.float32
      )
  np.savez_compressed(os.path.join(out_dir, "expected.npz"), **arrays)


if __name__ == "__main__":
  main(sys.argv[1])
