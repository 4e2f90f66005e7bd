"""PGD-10 x EOT-m on a CIFAR ResNet-18: stochjax vs torchattacks vs PyTorch.

    pip install torch==2.13.0 && pip install --no-deps torchattacks==3.5.1
    python benchmarks/pgd_eot.py [--rounds 5] [--eot 1 8] [--with_lax]

Batch 32, 32x32x3, eps 8/255, alpha 2/255, random start, defense "add
N(0, 0.25^2) noise per image, per EOT draw". Every case runs in this process,
interleaved; ratios are medians of per-round paired ratios. Gradient
evaluations/s = 32 x 10 x m / seconds. One evaluation (forward + input
gradient) costs 2.222 GFLOP; this 2-core machine's FMA peak (232 GFLOP/s)
caps it at ~105/s.
"""

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from benchmarks import common
from stochjax import attacks, defenses, models

BATCH, STEPS, EPS, ALPHA, SIGMA = 32, 10, 8 / 255, 2 / 255, 0.25
GFLOP_PER_EVAL, PEAK_EVALS = 2.222, 105.0


def _setup(num_steps: int, m: int, conv=models.conv_general_dilated):
  """(attack, logits_fn, images, labels) for a CIFAR ResNet-18, batch 32."""
  model = models.ResNet18(
    num_classes=10,
    stem="cifar",
    mean=(0.0,) * 3,
    std=(1.0,) * 3,
    conv_general_dilated=conv,
  )
  images = jax.random.uniform(jax.random.key(0), (BATCH, 32, 32, 3))
  labels = jnp.arange(BATCH, dtype=jnp.int32) % 10
  logits_fn = models.classifier(model, model.init(jax.random.key(1), images))
  attack = attacks.make_pgd(
    eps=EPS,
    step_size=ALPHA,
    num_steps=num_steps,
    eot_samples=m,
    random_init=True,
    defense=defenses.lookup(f"gaussian_noise(sigma={SIGMA}, clip=False)"),
  )
  return attack, logits_fn, images, labels


def _jax_case(m: int, conv):
  attack, logits_fn, images, labels = _setup(STEPS, m, conv)
  keys = iter(range(10**6))
  return lambda: attack(
    jax.random.key(next(keys)), logits_fn, images, labels
  ).block_until_ready()


def _compile_seconds(num_steps: int) -> float:
  attack, logits_fn, images, labels = _setup(num_steps, 1)
  start = time.perf_counter()
  attack.run.lower(jax.random.key(0), logits_fn, images, labels).compile()
  return time.perf_counter() - start


def _torch_cases(m: int) -> dict:
  import torch
  import torch.nn as nn
  import torch.nn.functional as F

  torch.set_num_threads(2)

  class Block(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(cout)
      self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(cout)
      self.shortcut = nn.Sequential()
      if stride != 1 or cin != cout:
        self.shortcut = nn.Sequential(
          nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
        )

    def forward(self, x):
      out = F.relu(self.bn1(self.conv1(x)))
      return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

  class ResNet18(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(64)
      layers, cin = [], 64
      for cout, s in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [Block(cin, cout, s), Block(cout, cout, 1)]
        cin = cout
      self.layers = nn.Sequential(*layers)
      self.linear = nn.Linear(512, 10)

    def forward(self, x):
      out = self.layers(F.relu(self.bn1(self.conv1(x))))
      return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))

  class Noise(nn.Module):
    def forward(self, x):
      return x + SIGMA * torch.randn_like(x)

  torch.manual_seed(0)
  net = ResNet18().eval()
  for p in net.parameters():
    p.requires_grad_(False)
  x = torch.rand(BATCH, 3, 32, 32)
  y = torch.arange(BATCH) % 10

  def loop():
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
    import torchattacks

    eotpgd = torchattacks.EOTPGD(
      nn.Sequential(Noise(), net).eval(),
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


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--eot", type=int, nargs="+", default=[1, 8])
  parser.add_argument(
    "--with_lax",
    action="store_true",
    help="also time the plain lax.conv ResNet (slow path)",
  )
  parser.add_argument("--compile_steps", type=int, default=1000)
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
  for m in args.eot:
    cases = {"stochjax": _jax_case(m, models.conv_general_dilated)}
    if args.with_lax:
      cases["stochjax, lax.conv"] = _jax_case(m, lax.conv_general_dilated)
    try:
      import torch

      print(f"torch {torch.__version__}")
      cases |= _torch_cases(m)
    except ImportError:
      print("torch missing: pip install torch==2.13.0 (comparison skipped)")
    rounds = args.rounds if m == 1 else max(3, args.rounds // 2)
    times = common.interleave(cases, rounds)
    evals = BATCH * STEPS * m
    print(f"\nPGD-{STEPS} x EOT-{m}, batch {BATCH}, {rounds} rounds")
    print(
      f"{'case':24s} {'evals/s':>8s} {'GFLOP/s':>8s} {'of peak':>8s}"
      f" {'stochjax vs':>12s}"
    )
    for name, ts in times.items():
      rate = evals / statistics.median(ts)
      ratio = common.paired_ratio(times, "stochjax", name)
      print(
        f"{name:24s} {rate:8.1f} {rate * GFLOP_PER_EVAL:8.1f}"
        f" {rate / PEAK_EVALS:8.0%} {ratio:11.2f}x"
      )
  seconds = _compile_seconds(args.compile_steps)
  print(f"\ncompile, PGD-{args.compile_steps} (EOT-1): {seconds:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
