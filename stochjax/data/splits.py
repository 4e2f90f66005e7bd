"""Seeded splits: which images train, which calibrate, which evaluate.

A seed re-draws the whole split, so runs at different seeds are
independent replications of the pipeline (other training, calibration and
evaluation images), not re-runs on one image set:

* `resplittable(name)`: a dataset without an official split (the embedded
  digits) re-draws its train / test partition from the seed
  (`stochjax.data.load(..., seed=)`); one with an official split (CIFAR-10,
  ImageNet) keeps it, and the seed re-draws only the next level.
* `calibration_split`: the test images an experiment runs on, split once,
  by the seed, into calibration images (the eps rule, step selection and
  every screen of the analysis plan read only these) and evaluation images
  (every verdict reads only these).
"""

import zlib

import numpy as np

# Datasets whose train / test partition a seed re-draws.
RESPLITTABLE = ("digits", "photos")


def resplittable(name: str) -> bool:
  """Whether `name`'s train / test partition is drawn from a seed."""
  return name in RESPLITTABLE


def generator(seed: int, name: str) -> np.random.Generator:
  """A NumPy generator for split `name` at `seed`: distinct names,
  distinct streams (a split never reuses another's draws).

  Raises:
    ValueError: a seed that is not a non-negative int.
  """
  if not isinstance(seed, int | np.integer) or seed < 0:
    raise ValueError(f"A split seed must be a non-negative int, got {seed!r}.")
  return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def calibration_split(num: int, seed: int, size: int):
  """``(calibration, evaluation)``: sorted, disjoint positions covering
  ``range(num)``, `size` of them calibration, drawn by `seed`.

  Raises:
    ValueError: ``size`` outside ``[1, num - 1]`` (both parts must be
      non-empty) or a bad seed.
  """
  if not (isinstance(size, int | np.integer) and 1 <= size < num):
    raise ValueError(
      f"Calibration size must lie in [1, {num - 1}] for {num} images, got "
      f"{size!r}."
    )
  order = generator(seed, "calibration").permutation(num)
  return np.sort(order[:size]), np.sort(order[size:])


def partition(num: int, seed: int, test_size: int):
  """``(train, test)`` positions of a resplittable dataset of `num` images:
  a permutation by `seed`, its last `test_size` the test set. Seed 0 is
  NumPy's ``RandomState(0)`` permutation, the split before seeds."""
  if seed == 0:
    order = np.random.RandomState(0).permutation(num)
  else:
    order = generator(seed, "partition").permutation(num)
  return order[:-test_size], order[-test_size:]
