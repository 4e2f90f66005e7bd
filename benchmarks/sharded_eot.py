"""EOT on a batch split over devices: draws as one example-major batch vs
a `jax.vmap` over draws.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 \
        python -m benchmarks.sharded_eot [--model ResNet50] [--size 224]

One EOT gradient (m draws of rotation, cross-entropy) on a batch of one
image per device. "example-major" is stochjax's
(`defenses.core.defended_draws`): the model sees the N*m images with each
example's draws together, so each device keeps its own rows. "vmap over
draws" (the reference, written here) merges the draw axis into the model's
batch ahead of the examples; XLA then gathers activations and each device
computes every example. Prints the all-gathers in each compiled program,
seconds per call (interleaved rounds) and the paired ratio.
"""

import argparse
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from benchmarks import common
from stochjax import defenses, models, prng, sharding
from stochjax.attacks import losses
from stochjax.defenses import core


def vmap_over_draws(logits_fn, defense):
  """The reference: ``(keys, draws, images) -> (m, N, K)`` by a vmap."""
  defended = core.defended_logits(logits_fn, defense)
  return jax.vmap(
    lambda keys, draw, x: defended(prng.fold_each(keys, draw), x),
    in_axes=(None, 0, None),
  )


def eot_gradient(draws_fn):
  def objective(x, keys, labels, draws):
    logits = draws_fn(keys, draws, x)
    return jnp.sum(jax.vmap(losses.cross_entropy, (0, None))(logits, labels))

  return jax.jit(jax.grad(objective))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--model", default="ResNet50")
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--draws", type=int, default=2)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args(argv)
  mesh = sharding.data_mesh()
  n = mesh.size
  stem = "imagenet" if args.size > 64 else "cifar"
  model = models.get_model(args.model, num_classes=1000, stem=stem)
  shape = (n, args.size, args.size, 3)
  variables = jax.jit(model.init)(
    jax.random.key(0), jnp.zeros((1,) + shape[1:])
  )
  logits_fn = sharding.put_replicated(models.classifier(model, variables), mesh)
  rng = np.random.default_rng(0)
  x, labels = sharding.put_batch(
    (rng.random(shape, np.float32), np.zeros(n, np.int32)), mesh
  )
  keys = prng.per_example(prng.root(0), n)
  draws = jnp.arange(args.draws, dtype=jnp.uint32)
  defense = defenses.lookup("rotation(max_degrees=30)")
  grads = {
    "example-major": eot_gradient(core.defended_draws(logits_fn, defense)),
    "vmap over draws": eot_gradient(vmap_over_draws(logits_fn, defense)),
  }
  print(f"{n} devices, {args.model} at {args.size}^2, EOT-{args.draws}, "
        f"{n} images (one per device)")  # fmt: skip
  outputs = {}
  for name, grad in grads.items():
    text = grad.lower(x, keys, labels, draws).compile().as_text()
    outputs[name] = np.asarray(grad(x, keys, labels, draws))
    gathers = len(re.findall(r" all-gather\(", text))
    print(f"  {name}: {gathers} all-gathers in the compiled program")
  times = common.interleave(
    {
      name: lambda g=grad: g(x, keys, labels, draws).block_until_ready()
      for name, grad in grads.items()
    },
    rounds=args.rounds,
  )
  for name, seconds in times.items():
    print(f"  {name}: {np.median(seconds):.2f} s per gradient")
  ratio = common.paired_ratio(times, "example-major", "vmap over draws")
  scale = np.abs(outputs["vmap over draws"]).max()
  difference = np.abs(outputs["example-major"] - outputs["vmap over draws"])
  print(f"  example-major is {ratio:.1f}x faster; largest gradient "
        f"difference {difference.max() / scale:.1e} of the largest entry")  # fmt: skip
  return 0


if __name__ == "__main__":
  sys.exit(main())
