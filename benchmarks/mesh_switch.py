"""BaRT on a batch split over CPU devices: per-device loops vs a select.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 \
        python -m benchmarks.mesh_switch [--size 224] [--members ...]

One batched BaRT call (`defenses.core.over_batch`) on one image per device.
"per-device loops" is `switch="auto"` inside the mesh context that
`batching.map_batches` sets (`sharding.using`): each device loops over its
own images, each image running only its k members. "select" (the
reference, `switch="select"`, what a GPU uses) evaluates every member at
every position of every image. Prints compile and call seconds
(interleaved rounds), the paired ratio and whether the outputs agree.
"""

import argparse
import sys
import time

import jax
import numpy as np

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from benchmarks import common
from stochjax import defenses, prng, sharding
from stochjax.defenses import core, ensemble


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--members", default=ensemble.PAPER_STACK)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args(argv)
  mesh = sharding.data_mesh()
  n = mesh.size
  shape = (n, args.size, args.size, 3)
  x = sharding.put_batch(
    np.random.default_rng(0).random(shape, np.float32), mesh
  )
  keys = jax.device_put(
    prng.per_example(prng.root(0), n), sharding.batch_sharding(mesh)
  )
  cases = {}
  outputs = {}
  print(f"{n} devices, BaRT({args.members}) at {args.size}^2, {n} images")
  for name, mode in (("per-device loops", "auto"), ("select", "select")):
    defense = defenses.lookup(
      f'bart(members="{args.members}", switch="{mode}")'
    )
    run = jax.jit(core.over_batch(defense))
    with sharding.using(mesh):
      start = time.perf_counter()
      compiled = run.lower(keys, x).compile()
      seconds = time.perf_counter() - start
      outputs[name] = np.asarray(compiled(keys, x))
    print(f"  {name}: compiled in {seconds:.1f} s")
    cases[name] = lambda c=compiled: c(keys, x).block_until_ready()
  times = common.interleave(cases, rounds=args.rounds)
  for name, seconds in times.items():
    print(f"  {name}: {np.median(seconds):.2f} s per call")
  ratio = common.paired_ratio(times, "per-device loops", "select")
  same = np.array_equal(outputs["per-device loops"], outputs["select"])
  print(
    f"  per-device loops are {ratio:.1f}x faster; identical outputs: {same}"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
