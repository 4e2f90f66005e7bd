"""PGD-10 x EOT-m: stochjax vs torchattacks' EOTPGD vs a PyTorch loop.

    pip install torch==2.13.0 && pip install --no-deps torchattacks==3.5.1
    python -m benchmarks.pgd_eot [--model resnet18|cnn8] [--eot 1 8 32]
        [--batch 32] [--rounds 3] [--with_lax]

eps 8/255, alpha 2/255, random start, defense "add N(0, 0.25^2) noise per
image, per EOT draw", on a CIFAR ResNet-18 (32x32) or a small CNN on 8x8
inputs (where per-step and per-draw overheads, not convolutions, decide).
Every case runs in this process, interleaved; ratios are medians of
per-round paired ratios. Gradient evaluations/s = batch x 10 x m / seconds;
GFLOP/s uses XLA's flop count of one forward + input gradient, and is put
beside this machine's matmul ceiling (the best of jnp and torch on a
2048^2 float32 product, measured here) and the best model throughput any
framework reached in the same run.
"""

import argparse
import functools
import statistics
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from benchmarks import common
from stochjax import attacks, defenses, models

STEPS, EPS, ALPHA, SIGMA = 10, 8 / 255, 2 / 255, 0.25


class Cnn8(nn.Module):
  """Two 3x3 convolutions and a linear layer (benchmarks/torch_models.cnn8)."""

  conv_general_dilated: object = models.conv_general_dilated

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    conv = functools.partial(
      nn.Conv, conv_general_dilated=self.conv_general_dilated
    )
    x = nn.relu(conv(32, (3, 3))(x))
    x = nn.relu(conv(64, (3, 3), strides=2)(x))
    return nn.Dense(10)(x.reshape(x.shape[0], -1))


def _flax_model(name: str, conv):
  if name == "cnn8":
    return Cnn8(conv_general_dilated=conv), 8
  model = models.ResNet18(
    num_classes=10,
    stem="cifar",
    mean=(0.0,) * 3,
    std=(1.0,) * 3,
    conv_general_dilated=conv,
  )
  return model, 32


def _setup(name: str, batch: int, num_steps: int, m: int, conv):
  """(attack, logits_fn, images, labels)."""
  model, size = _flax_model(name, conv)
  images = jax.random.uniform(jax.random.key(0), (batch, size, size, 3))
  labels = jnp.arange(batch, dtype=jnp.int32) % 10
  variables = model.init(jax.random.key(1), images)
  logits_fn = jax.tree_util.Partial(
    lambda v, x: model.apply(v, x, train=False), variables
  )
  attack = attacks.make_pgd(
    eps=EPS,
    step_size=ALPHA,
    num_steps=num_steps,
    eot_samples=m,
    random_init=True,
    defense=defenses.lookup(f"gaussian_noise(sigma={SIGMA}, clip=False)"),
  )
  return attack, logits_fn, images, labels


def _gflop_per_eval(logits_fn, images, labels) -> float:
  """XLA's flop count of one forward + input gradient, per example."""

  def loss(x):
    logits = logits_fn(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum()

  compiled = jax.jit(jax.grad(loss)).lower(images).compile()
  return compiled.cost_analysis()["flops"] / images.shape[0] / 1e9


def _jax_case(name, batch, m, conv):
  attack, logits_fn, images, labels = _setup(name, batch, STEPS, m, conv)
  keys = iter(range(10**6))
  return lambda: attack(
    jax.random.key(next(keys)), logits_fn, images, labels
  ).block_until_ready()


def _torch_cases(name: str, batch: int, m: int) -> dict:
  import torch  # noqa: PLC0415  (optional, benchmark only)
  import torch.nn.functional as F  # noqa: PLC0415, N812

  from benchmarks import torch_models  # noqa: PLC0415

  torch.set_num_threads(2)
  net = torch_models.cnn8() if name == "cnn8" else torch_models.resnet18_cifar()
  size = 8 if name == "cnn8" else 32
  x = torch.rand(batch, 3, size, size)
  y = torch.arange(batch) % 10

  def loop():
    """Serial EOT, as torchattacks and the paper's code run it."""
    x_adv = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0, 1)
    for _ in range(STEPS):
      x_adv.requires_grad_(True)
      grad = torch.zeros_like(x)
      for _ in range(m):
        noisy = x_adv + SIGMA * torch.randn_like(x_adv)
        loss = F.cross_entropy(net(noisy), y, reduction="sum")
        grad += torch.autograd.grad(loss, x_adv)[0]
      x_adv = x_adv.detach() + ALPHA * grad.sign()
      x_adv = (x + (x_adv - x).clamp(-EPS, EPS)).clamp(0, 1)
    return x_adv

  cases = {"torch loop": loop}
  try:
    import torchattacks  # noqa: PLC0415

    class Noise(torch.nn.Module):
      def forward(self, images):
        return images + SIGMA * torch.randn_like(images)

    eotpgd = torchattacks.EOTPGD(
      torch.nn.Sequential(Noise(), net).eval(),
      eps=EPS,
      alpha=ALPHA,
      steps=STEPS,
      eot_iter=m,
      random_start=True,
    )
    cases["torchattacks EOTPGD"] = lambda: eotpgd(x, y)
  except ImportError:
    print("torchattacks missing: pip install --no-deps torchattacks==3.5.1")
  return cases


def _matmul_ceiling(size: int = 2048) -> dict[str, float]:
  """GFLOP/s of a float32 matmul, per framework (the machine's ceiling)."""
  a = jax.random.normal(jax.random.key(0), (size, size))
  dot = jax.jit(jnp.dot)
  cases = {"jnp.dot": lambda: dot(a, a).block_until_ready()}
  try:
    import torch  # noqa: PLC0415

    t = torch.randn(size, size)
    cases["torch.mm"] = lambda: torch.mm(t, t)
  except ImportError:
    pass
  times = common.interleave(cases, rounds=5)
  return {k: 2 * size**3 / statistics.median(v) / 1e9 for k, v in times.items()}


def _compile_seconds(name: str, batch: int, num_steps: int) -> float:
  attack, logits_fn, images, labels = _setup(
    name, batch, num_steps, 1, models.conv_general_dilated
  )
  start = time.perf_counter()
  attack.run.lower(jax.random.key(0), logits_fn, images, labels).compile()
  return time.perf_counter() - start


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--model", choices=("resnet18", "cnn8"), default="resnet18"
  )
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--eot", type=int, nargs="+", default=[1, 8, 32])
  parser.add_argument(
    "--with_lax",
    action="store_true",
    help="also time the plain lax.conv model (slow path on CPU)",
  )
  parser.add_argument("--compile_steps", type=int, default=1000)
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
  _, logits_fn, images, labels = _setup(
    args.model, args.batch, 1, 1, models.conv_general_dilated
  )
  gflop = _gflop_per_eval(logits_fn, images, labels)
  ceiling = _matmul_ceiling()
  print(
    f"{args.model}: {gflop:.4f} GFLOP per evaluation; matmul ceiling "
    + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in ceiling.items())
  )
  for m in args.eot:
    cases = {
      "stochjax": _jax_case(
        args.model, args.batch, m, models.conv_general_dilated
      )
    }
    if args.with_lax:
      cases["stochjax, lax.conv"] = _jax_case(
        args.model, args.batch, m, lax.conv_general_dilated
      )
    try:
      import torch  # noqa: PLC0415

      print(f"torch {torch.__version__}")
      cases |= _torch_cases(args.model, args.batch, m)
    except ImportError:
      print("torch missing: pip install torch==2.13.0 (comparison skipped)")
    times = common.interleave(cases, args.rounds)
    evals = args.batch * STEPS * m
    rates = {k: evals / statistics.median(v) for k, v in times.items()}
    best = max(rates.values())
    print(f"\nPGD-{STEPS} x EOT-{m}, batch {args.batch}, {args.rounds} rounds")
    print(
      f"{'case':24s} {'evals/s':>8s} {'GFLOP/s':>8s} {'of matmul':>9s}"
      f" {'of best':>8s} {'stochjax vs':>12s}"
    )
    for name, rate in rates.items():
      ratio = common.paired_ratio(times, "stochjax", name)
      print(
        f"{name:24s} {rate:8.1f} {rate * gflop:8.1f}"
        f" {rate * gflop / max(ceiling.values()):9.0%} {rate / best:8.0%}"
        f" {ratio:11.2f}x",
        flush=True,
      )
  seconds = _compile_seconds(args.model, args.batch, args.compile_steps)
  print(f"\ncompile, PGD-{args.compile_steps} (EOT-1): {seconds:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
