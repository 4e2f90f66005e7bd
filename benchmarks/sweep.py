"""An eps sweep: one attack per value vs `attack.sweep` (one program).

    python -m benchmarks.sweep [--values 5] [--batch 8] [--steps 10]

PGD-k x EOT-2 on a CIFAR ResNet-18 against Gaussian noise at eps = 2, 4, ...
/255. "Per value" builds one attack per eps: attacks that differ only in
eps and step size share one compiled program (`attacks.loops.programs`),
so they compile once and run one call per value; "sweep" runs
``attack.sweep(..., eps=[...])``, a `lax.map` over the values inside one
program (``chunk_size=1``: the same work, one value at a time).
Prints backend compiles (counted from JAX's compile events), compile
seconds, total seconds, and the largest difference between the two results.
"""

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import attacks, defenses, models

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileLog:
  """Counts backend compiles and their seconds (JAX monitoring events)."""

  def __init__(self):
    self.count, self.seconds = 0, 0.0
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, event: str, seconds: float, **_):
    if event == COMPILE_EVENT:
      self.count += 1
      self.seconds += seconds

  def reset(self):
    self.count, self.seconds = 0, 0.0


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--values", type=int, default=5)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--steps", type=int, default=10)
  args = parser.parse_args()
  model = models.ResNet18(num_classes=10, stem="cifar")
  images = jax.random.uniform(jax.random.key(0), (args.batch, 32, 32, 3))
  labels = jnp.arange(args.batch, dtype=jnp.int32) % 10
  logits_fn = models.classifier(model, model.init(jax.random.key(1), images))
  defense = defenses.lookup("gaussian_noise(sigma=0.25, clip=False)")
  radii = [2 * (i + 1) / 255 for i in range(args.values)]

  def make(eps):
    return attacks.make_pgd(
      eps=eps,
      step_size=eps / 4,
      num_steps=args.steps,
      eot_samples=2,
      defense=defense,
    )

  key = jax.random.key(2)
  log = CompileLog()
  # Warm the shared pieces (input checks, the model's forward) first.
  make(radii[0]).run.lower(key, attacks.as_pytree_fn(logits_fn), images, labels)
  log.reset()
  start = time.perf_counter()
  separate = [
    np.asarray(make(eps)(key, logits_fn, images, labels)) for eps in radii
  ]
  per_value = (log.count, log.seconds, time.perf_counter() - start)
  log.reset()
  start = time.perf_counter()
  swept = np.asarray(
    make(radii[-1]).sweep(
      key, logits_fn, images, labels, eps=radii, chunk_size=1
    )
  )
  sweep = (log.count, log.seconds, time.perf_counter() - start)
  print(
    f"jax {jax.__version__} on {jax.devices()[0].platform}; PGD-{args.steps}"
    f" x EOT-2, ResNet-18, batch {args.batch}, {args.values} eps values"
  )
  print(f"{'':10s} {'compiles':>8s} {'compile s':>9s} {'total s':>8s}")
  for name, (count, compile_s, total) in (
    ("per value", per_value),
    ("sweep", sweep),
  ):
    print(f"{name:10s} {count:8d} {compile_s:9.1f} {total:8.1f}")
  diff = max(
    float(np.abs(s - a).max()) for s, a in zip(swept, separate, strict=True)
  )
  print(f"largest |sweep - per value| = {diff:.1e}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
