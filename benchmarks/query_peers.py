"""stochjax's Square, APGD-T, FAB-T and AutoAttack beside torchattacks' on
the same weights: success rates with the interval of their paired
difference, and speed as ratios of interleaved rounds.

Two models, each attacked by both libraries on the same test images:
``--model mlp``, the tanh MLP of `benchmarks.peer_check` (trained on
scikit-learn's 8x8 digits, ported to torch), and ``--model resnet``, a
torchvision-layout ResNet-18 (CIFAR stem; ``--width`` 8, ``--size`` 16:
the digits at 16x16, small enough for AutoAttack on 2 cores) trained
briefly in torch on the digits and converted with ``stochjax.convert``
(the issue's parity model; convolutions bound its cost). torchattacks'
AutoAttack runs its components at 10 steps; its 100-step equivalent is
built here as a ``MultiAttack`` of APGD-CE, APGD-T, FAB-T (multi-targeted)
and Square, as AutoAttack's ``standard`` (issue 35). Each library draws
its own randomness, so rates agree within intervals, not image by image.

Needs torch and torchattacks, installed by hand (not in the install):
  pip install torch==2.13.0 && pip install --no-deps torchattacks==3.5.1
Run:
  python -m benchmarks.query_peers [--model mlp|resnet] [--num_images 200]
"""

import os
import tempfile

import jax
import numpy as np
from absl import app, flags

from benchmarks import common
from stochjax import attacks, stats
from stochjax.data import digits
from stochjax.torch_io import cli
from tests import mlp

_NUM_IMAGES = flags.DEFINE_integer("num_images", 200, "Test images attacked.")
_EPS = flags.DEFINE_list("eps", ["0.05", "0.1"], "linf radii.")
_QUERIES = flags.DEFINE_integer("queries", 1000, "Square's queries.")
_STEPS = flags.DEFINE_integer("steps", 100, "APGD-T's and FAB-T's steps.")
_ROUNDS = flags.DEFINE_integer(
  "rounds",
  3,
  "Interleaved timing rounds after the parity calls (0: time "
  "the parity calls).",
)
_MODEL = flags.DEFINE_enum("model", "mlp", ["mlp", "resnet"], "Weights.")
_WIDTH = flags.DEFINE_integer("width", 8, "The ResNet's first-stage width.")
_SIZE = flags.DEFINE_integer("size", 16, "The ResNet's digits image size.")
_ATTACKS = flags.DEFINE_list("attacks", [], "Names' prefixes to run (all).")


def _pairs(eps: float, model, n_classes: int):
  """``{name: (stochjax attack, torchattacks attack)}`` at `eps`."""
  import torchattacks  # noqa: PLC0415  (optional, benchmark only)

  q, k = _QUERIES.value, _STEPS.value
  return {
    f"Square-{q}": (
      attacks.make_square(eps=eps, num_queries=q),
      torchattacks.Square(model, eps=eps, n_queries=q, seed=0),
    ),
    f"APGD-T-{k}": (
      attacks.make_apgd_t(eps=eps, num_steps=k),
      torchattacks.APGDT(model, eps=eps, steps=k, n_classes=n_classes, seed=0),
    ),
    f"FAB-T-{k}": (
      attacks.make_fab(eps=eps, num_steps=k),
      torchattacks.FAB(
        model,
        eps=eps,
        steps=k,
        multi_targeted=True,
        n_classes=n_classes,
        seed=0,
      ),
    ),  # fmt: skip
    "AutoAttack standard (100 steps)": (
      attacks.autoattack(eps=eps),
      torchattacks.MultiAttack(
        [
          torchattacks.APGD(model, eps=eps, steps=100, loss="ce", seed=0),
          torchattacks.APGDT(
            model, eps=eps, steps=100, n_classes=n_classes, seed=0
          ),
          torchattacks.FAB(
            model,
            eps=eps,
            steps=100,
            multi_targeted=True,
            n_classes=n_classes,
            seed=0,
          ),
          torchattacks.Square(
            model, eps=eps, n_queries=5000, seed=0, resc_schedule=False
          ),
        ]
      ),
    ),  # fmt: skip
  }


def _models(name: str):
  """``(logits_fn, torch model, test split)`` with the same weights."""
  import torch  # noqa: PLC0415

  from benchmarks import torch_models  # noqa: PLC0415  (needs torch)

  if name == "mlp":
    params, test = mlp.fit_digits(jax.random.key(0))
    return mlp.logits_fn(params), torch_models.digits_mlp(params), test
  train = digits.load_digits("train", size=_SIZE.value)
  model = torch_models.digits_resnet18(
    train.images, train.labels, width=_WIDTH.value
  )
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "resnet18_digits.pth")
    torch.save(model.net.state_dict(), path)
    net, variables = cli.convert_file(path, "ResNet18", "torchvision")
  test = digits.load_digits("test", size=_SIZE.value)
  with torch.no_grad():
    theirs = model(torch.tensor(test.images[:64]).permute(0, 3, 1, 2))
  gap = np.abs(
    theirs.numpy() - np.asarray(net.apply(variables, test.images[:64]))
  )
  print(
    f"converted ResNet-18: max |logits(torch) - logits(jax)| = {gap.max():.1e}"
  )
  return jax.tree_util.Partial(net.apply, variables), model, test


def main(argv):
  del argv
  import torch  # noqa: PLC0415

  torch.set_num_threads(2)
  logits_fn, model, test = _models(_MODEL.value)
  images = test.images[: _NUM_IMAGES.value]
  labels = test.labels[: _NUM_IMAGES.value]
  keep = np.argmax(np.asarray(logits_fn(images)), -1) == labels
  images, labels = images[keep], labels[keep]
  x_torch = torch.tensor(images).permute(0, 3, 1, 2).contiguous()
  y_torch = torch.tensor(labels, dtype=torch.long)
  print(f"{len(labels)} of {len(keep)} test images correctly classified; "
        f"torch {torch.__version__}, jax {jax.__version__}\n")  # fmt: skip

  def broken(adv) -> np.ndarray:
    return np.argmax(np.asarray(logits_fn(adv)), -1) != labels

  def from_torch(adv):
    return adv.detach().permute(0, 2, 3, 1).numpy()

  print("| eps | attack | stochjax | torchattacks | stochjax − torchattacks "
        "[95 %] | speed (stochjax / torchattacks) |")  # fmt: skip
  print("|---|---|---|---|---|---|")
  for eps in map(float, _EPS.value):
    for name, (ours, theirs) in _pairs(eps, model, 10).items():
      if _ATTACKS.value and not name.startswith(tuple(_ATTACKS.value)):
        continue
      key = jax.random.key(0)

      def run_ours(ours=ours, key=key):
        return np.asarray(ours(key, logits_fn, images, labels))

      def run_theirs(theirs=theirs):
        return from_torch(theirs(x_torch, y_torch))

      # The parity calls are timed too: with --rounds 0 (a model too slow
      # for repeated rounds) they are the speed, stochjax's compile
      # included.
      first = common.interleave(
        {"torchattacks": run_theirs, "stochjax": run_ours}, rounds=1,
        warmup=0, keep=True,
      )  # fmt: skip
      a = broken(first["torchattacks"][1][0])
      b = broken(first["stochjax"][1][0])
      estimate, low, high = stats.paired_difference_interval(a, b, 0.95)
      times = {name: t for name, (t, _) in first.items()}
      note = ", first calls, stochjax's compile included"
      if _ROUNDS.value:
        times = common.interleave(
          {"stochjax": run_ours, "torchattacks": run_theirs},
          rounds=_ROUNDS.value, warmup=0,
        )  # fmt: skip
        note = ""
      ratio = common.paired_ratio(times, "stochjax", "torchattacks")
      print(
        f"| {255 * eps:.3g}/255 | {name} | {stats.format_rate(b.sum(), b.size)}"
        f" | {stats.format_rate(a.sum(), a.size)} | {100 * estimate:+.1f} "
        f"[{100 * low:+.1f}, {100 * high:+.1f}] | {ratio:.2f}x "
        f"({min(times['stochjax']):.1f} s vs "
        f"{min(times['torchattacks']):.1f} s{note}) |",
        flush=True,
      )


if __name__ == "__main__":
  app.run(main)
