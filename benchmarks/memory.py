"""Peak memory of EOT attacks and votes: all draws at once vs chunked.

    python -m benchmarks.memory [--batch 32] [--chunk 10]

For m (EOT draws per gradient) and n (vote draws) in {1, 10, 100, 500}, on a
CIFAR ResNet-18 at batch 32 against Gaussian noise, prints the peak
temporary memory XLA allocates for one PGD step x EOT-m and for an n-draw
vote, when every draw runs at once and when the draws run in chunks (a
`lax.scan` over chunks). The numbers come from the compiled programs' buffer
assignment (`Compiled.memory_analysis`), so nothing of that size is
allocated: the unchunked m = 500 program would need more than this machine
has.
"""

import argparse
import sys

import jax
import jax.numpy as jnp

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import attacks, defenses, models, voting

DRAWS = (1, 10, 100, 500)
MIB = 2**20
DEFENSE = defenses.lookup("gaussian_noise(sigma=0.25, clip=False)")


def _problem(batch: int):
  model = models.ResNet18(num_classes=10, stem="cifar")
  images = jax.random.uniform(jax.random.key(0), (batch, 32, 32, 3))
  labels = jnp.arange(batch, dtype=jnp.int32) % 10
  logits_fn = models.classifier(model, model.init(jax.random.key(1), images))
  return attacks.as_pytree_fn(logits_fn), images, labels


def _attack_program(m: int, chunk: int, problem):
  attack = attacks.make_pgd(
    eps=8 / 255,
    step_size=2 / 255,
    num_steps=1,
    eot_samples=m,
    eot_chunk_size=chunk,
    defense=DEFENSE,
  )
  return attack.run.lower(jax.random.key(0), *problem).compile()


def _vote_program(n: int, chunk: int, problem):
  logits_fn, images, _ = problem
  # The jitted body of `voting.vote_counts` (which checks inputs first).
  fn = voting._vote_counts  # noqa: SLF001
  settings = dict(
    defense=DEFENSE, num_votes=n, chunk_size=chunk, aggregate="hard"
  )
  return fn.lower(jax.random.key(0), logits_fn, images, **settings).compile()


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--chunk", type=int, default=10)
  args = parser.parse_args()
  problem = _problem(args.batch)
  print(
    f"jax {jax.__version__} on {jax.devices()[0].device_kind}; ResNet-18, "
    f"batch {args.batch}, chunks of {args.chunk} draws; temp MiB"
  )
  print(f"{'':14s} {'draws':>6s} {'all at once':>12s} {'chunked':>9s}")
  for label, program in (
    ("PGD step EOT", _attack_program),
    ("vote", _vote_program),
  ):
    for m in DRAWS:
      chunk = min(args.chunk, m)
      whole = program(m, m, problem).memory_analysis()
      chunked = program(m, chunk, problem).memory_analysis()
      print(
        f"{label:14s} {m:6d} {whole.temp_size_in_bytes / MIB:12.0f}"
        f" {chunked.temp_size_in_bytes / MIB:9.0f}"
      )
  return 0


if __name__ == "__main__":
  sys.exit(main())
