"""Runs the sharding test's problems on a mesh of every device it can see.

Spawned by `tests/sharding_test.py`, either as one process with 8 fake CPU
devices or as 2 processes (``JAX_NUM_PROCESSES`` and friends set, joined by
`stochjax.sharding.initialize`) with 2 devices each. It runs an attack, a
vote, the evaluation protocol and one epoch of data-parallel training on the
mesh, and process 0 writes the results to ``OUT/results.npz`` and
``OUT/protocol.json``; the test compares them with one-device runs.

    python -m tests.multidevice_worker OUT NUM_DEVICES
"""

import json
import os
import re
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

import stochjax  # noqa: E402, F401  (safe XLA flags)
from stochjax import sharding, train, voting  # noqa: E402

# Before anything creates an array: importing stochjax must not start XLA.
sharding.initialize("JAX_NUM_PROCESSES" in os.environ)

from tests import sharding_problem as problem  # noqa: E402


def main(out: str, num_devices: int) -> int:
  if jax.device_count() != num_devices:
    print(f"expected {num_devices} devices, got {jax.device_count()}")
    return 2
  mesh = sharding.data_mesh()
  model, variables, images, labels = problem.setup()
  logits_fn = sharding.put_replicated(problem.logits_fn(model, variables), mesh)
  x, y = sharding.put_batch((images, labels), mesh)
  adversarial = problem.ATTACK(problem.KEY, logits_fn, x, y)
  spread = len(adversarial.sharding.device_set)
  gradient = problem.eot_gradient(logits_fn, x, y)
  # Each device evaluates only its own examples' draws: no activations move.
  compiled = problem.eot_gradient.lower(logits_fn, x, y).compile().as_text()
  gathers = len(re.findall(r" (all-gather|all-to-all)\(", compiled))
  counts = voting.vote_counts(problem.KEY, logits_fn, x, **problem.VOTES)
  protocol = problem.protocol(logits_fn, images, labels, mesh=mesh)
  trained = train.train(
    **problem.training(model, variables, os.path.join(out, "checkpoints")),
    mesh=mesh,
  )
  switched = problem.switched(images, mesh)
  results = dict(
    switched=switched["images"],
    switch_calls=np.asarray(switched["calls"]),
    switch_collectives=np.asarray(switched["collectives"]),
    adversarial=sharding.to_host(adversarial),
    gradient=sharding.to_host(gradient),
    gathers=np.asarray(gathers),
    counts=sharding.to_host(counts),
    trained=problem.flat(trained),
    spread=np.asarray(spread),
  )
  if jax.process_index() == 0:
    np.savez(os.path.join(out, "results.npz"), **results)
    with open(os.path.join(out, "protocol.json"), "w") as f:
      json.dump(protocol, f)
  print(f"process {jax.process_index()} done")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1], int(sys.argv[2])))
