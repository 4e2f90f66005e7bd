"""The paper code's evaluation loop, rebuilt in PyTorch, vs stochjax.

    pip install torch==2.13.0   # by hand, never part of the install
    python -m benchmarks.paper_loop [--size 32] [--batch 16] [--votes 10]
        [--steps 5] [--eot 4] [--rounds 2]

The official code (../shared/reference/official_code.md §3, §10) evaluates a
defense as: n serial predict passes, each defending the whole batch one image
at a time on the host (scikit-image / SciPy / NumPy), running the model, and
taking the argmax on the host, then `scipy.stats.mode`; PGD runs serial EOT,
each draw defending per image on the host and back-propagating through the
model with BPDA identity. This script rebuilds that shape in PyTorch with the
per-image references of benchmarks/defenses.py, and times it beside
stochjax's `voting.vote` and `make_pgd` (one jitted program each) on the
same defense (the BaRT six-member stack by default), the same architecture
(CIFAR ResNet-18) and the same sizes. Interleaved rounds; ratios are medians
of per-round paired ratios.
"""

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from benchmarks import common
from benchmarks import defenses as references
from stochjax import attacks, defenses, models, voting

EPS, ALPHA = 8 / 255, 2 / 255


def _stochjax_cases(spec, images, labels, args):
  model = models.ResNet18(num_classes=10, stem="cifar")
  logits_fn = models.classifier(model, model.init(jax.random.key(1), images))
  defense = defenses.lookup(spec)
  attack = attacks.make_pgd(
    eps=EPS,
    step_size=ALPHA,
    num_steps=args.steps,
    eot_samples=args.eot,
    defense=defense,
  )
  x, y = jnp.asarray(images), jnp.asarray(labels)

  def vote():
    return voting.vote(
      jax.random.key(0),
      logits_fn,
      x,
      defense=defense,
      num_votes=args.votes,
      chunk_size=args.votes,
    ).block_until_ready()

  def pgd():
    return attack(jax.random.key(0), logits_fn, x, y).block_until_ready()

  return vote, pgd


def _paper_cases(spec, images, labels, args):
  import torch  # noqa: PLC0415  (optional, benchmark only)
  import torch.nn.functional as F  # noqa: PLC0415, N812

  from benchmarks import torch_models  # noqa: PLC0415

  torch.set_num_threads(2)
  net = torch_models.resnet18_cifar()
  reference = references.REFERENCES[spec]
  rng = np.random.default_rng(0)

  def defend(batch: np.ndarray) -> torch.Tensor:
    """The per-image host loop, then one NCHW tensor."""
    out = np.stack([reference(image, rng) for image in batch])
    return torch.from_numpy(out.astype(np.float32)).permute(0, 3, 1, 2)

  def vote():
    predictions = []
    for _ in range(args.votes):
      with torch.no_grad():
        logits = net(defend(images))
      predictions.append(logits.argmax(1).numpy())
    return scipy.stats.mode(np.stack(predictions), axis=0).mode

  y = torch.from_numpy(labels.astype(np.int64))
  x0 = torch.from_numpy(images).permute(0, 3, 1, 2)

  def pgd():
    x_adv = x0.clone()
    for _ in range(args.steps):
      grad = torch.zeros_like(x0)
      for _ in range(args.eot):
        # BPDA identity: the gradient at the defended image is the gradient.
        defended = defend(x_adv.permute(0, 2, 3, 1).numpy()).requires_grad_()
        loss = F.cross_entropy(net(defended), y, reduction="sum")
        grad += torch.autograd.grad(loss, defended)[0]
      x_adv = x_adv + ALPHA * grad.sign()
      x_adv = (x0 + (x_adv - x0).clamp(-EPS, EPS)).clamp(0, 1)
    return x_adv

  return vote, pgd


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--defense", default="bart()")
  parser.add_argument("--size", type=int, default=32)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--votes", type=int, default=10)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--eot", type=int, default=4)
  parser.add_argument("--rounds", type=int, default=2)
  args = parser.parse_args()
  if args.defense not in references.REFERENCES:
    raise SystemExit(
      f"No per-image reference for {args.defense!r}; choose one of "
      + ", ".join(references.REFERENCES)
    )
  photos = references.photos(args.size, args.batch)
  labels = np.arange(args.batch, dtype=np.int32) % 10
  jax_vote, jax_pgd = _stochjax_cases(args.defense, photos, labels, args)
  paper_vote, paper_pgd = _paper_cases(args.defense, photos, labels, args)
  print(
    f"{args.defense} at {args.size}x{args.size}, batch {args.batch}, "
    f"CIFAR ResNet-18, jax {jax.__version__}, {args.rounds} rounds"
  )
  print(
    f"{'loop':30s} {'paper shape s':>13s} {'stochjax s':>10s} {'speed-up':>9s}"
  )
  for name, jax_case, paper_case in (
    (f"vote, n={args.votes}", jax_vote, paper_vote),
    (f"PGD-{args.steps} x EOT-{args.eot}", jax_pgd, paper_pgd),
  ):
    times = common.interleave(
      {"stochjax": jax_case, "paper": paper_case}, args.rounds
    )
    ratio = common.paired_ratio(times, "stochjax", "paper")
    print(
      f"{name:30s} {np.median(times['paper']):13.2f}"
      f" {np.median(times['stochjax']):10.2f} {ratio:8.1f}x",
      flush=True,
    )
  return 0


if __name__ == "__main__":
  sys.exit(main())
