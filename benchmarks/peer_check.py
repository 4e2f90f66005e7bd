"""stochjax's PGD and AutoPGD beside torchattacks' on the same weights.

A tanh MLP is trained on scikit-learn's 8x8 digits (tests/mlp.py),
ported to a torch ``nn.Sequential`` and attacked by both libraries on the
same test images. Reported: success rates per attack and ε, and for PGD
without random init (identical algorithms) the largest difference between
the two libraries' iterates.

Needs torch and torchattacks, installed by hand (not in the install):
  pip install torch==2.13.0 torchattacks --no-deps
Run:
  python -m benchmarks.peer_check [--num_images 200] [--steps 20]
"""

import jax
import numpy as np
from absl import app, flags

from stochjax import attacks
from tests import mlp

_NUM_IMAGES = flags.DEFINE_integer("num_images", 200, "Test images attacked.")
_STEPS = flags.DEFINE_integer("steps", 20, "Attack steps (gradients).")
_EPS = flags.DEFINE_list("eps", ["0.03", "0.06", "0.1"], "linf radii.")


def main(argv):
  del argv
  import torch  # noqa: PLC0415
  import torchattacks  # noqa: PLC0415

  params, test = mlp.fit_digits(jax.random.key(0))
  logits_fn = mlp.logits_fn(params)
  from benchmarks import torch_models  # noqa: PLC0415  (needs torch)

  model = torch_models.digits_mlp(params)
  images = test.images[: _NUM_IMAGES.value]
  labels = test.labels[: _NUM_IMAGES.value]
  x_torch = torch.tensor(images).permute(0, 3, 1, 2).contiguous()
  y_torch = torch.tensor(labels, dtype=torch.long)
  with torch.no_grad():
    torch_logits = model(x_torch).numpy()
  print(
    "max |logits(torch) - logits(jax)|:",
    float(np.abs(torch_logits - np.asarray(logits_fn(images))).max()),
  )
  clean = np.argmax(torch_logits, -1) == labels
  print(f"clean accuracy: {clean.mean():.3f} on {len(labels)} test images")

  def rate(adv):
    return float((np.argmax(np.asarray(logits_fn(adv)), -1) != labels).mean())

  def from_torch(adv):
    return adv.detach().permute(0, 2, 3, 1).numpy()

  k = _STEPS.value
  print(f"\n{'eps':>6} {'attack':<24} {'stochjax':>9} {'torchattacks':>13}")
  for eps in map(float, _EPS.value):
    alpha = eps / 4
    ours = attacks.make_pgd(eps=eps, step_size=alpha, num_steps=k)(
      jax.random.key(0), logits_fn, images, labels
    )
    theirs = torchattacks.PGD(
      model, eps=eps, alpha=alpha, steps=k, random_start=False
    )(x_torch, y_torch)
    gap = float(np.abs(np.asarray(ours) - from_torch(theirs)).max())
    print(
      f"{eps:6.3f} {f'PGD-{k} (no init)':<24} {rate(ours):9.3f} "
      f"{rate(from_torch(theirs)):13.3f}   max |x_jax - x_torch| = {gap:.2e}"
    )
    for loss in ("ce", "dlr"):
      ours = attacks.make_apgd(eps=eps, num_steps=k - 1, loss=loss)(
        jax.random.key(0), logits_fn, images, labels
      )
      theirs = torchattacks.APGD(
        model, eps=eps, steps=k - 1, loss=loss, n_restarts=1, seed=0
      )(x_torch, y_torch)
      print(
        f"{eps:6.3f} {f'APGD-{loss.upper()}-{k - 1}':<24} {rate(ours):9.3f} "
        f"{rate(from_torch(theirs)):13.3f}"
      )


if __name__ == "__main__":
  app.run(main)
