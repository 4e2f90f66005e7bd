"""The working radius of an experiment, picked by a rule fixed in advance.

An attack's success at one radius says little when the undefended model is
already broken there (everything saturates) or robust there (nothing
does). `working_eps` runs undefended PGD at every candidate radius as one
compiled sweep (`attacks.Attack.sweep`) and returns the smallest radius at
which it succeeds on at least `min_success` of the correctly classified
images, with every candidate's rate and exact interval, so the choice is
recorded beside the results it shapes.
"""

import itertools

import numpy as np

from stochjax import attacks, stats, voting


def working_eps(key, logits_fn, images, labels, *, candidates, min_success,
                num_steps: int = 50, step_fraction: float = 0.25) -> dict:  # fmt: skip
  """The smallest candidate linf radius where undefended PGD succeeds.

  Args:
    key: PRNG key of the PGD random starts.
    logits_fn: the undefended model, images -> logits.
    images: (N, H, W, C) float32 in [0, 1]; only those the model classifies
      correctly are attacked.
    labels: (N,) int true classes.
    candidates: increasing radii in (0, 1].
    min_success: the fraction in [0, 1] of attacked images the radius must
      break.
    num_steps: PGD steps at every radius.
    step_fraction: the step size as a fraction of the radius.

  Returns:
    ``{"candidates", "success", "ci", "n", "picked"}``: per candidate the
    success rate and its Clopper-Pearson interval over the `n` attacked
    images; `picked` is the rule's radius (the largest candidate when none
    reaches `min_success`), None when no image is classified correctly.

  Raises:
    ValueError: candidates not increasing, or out of range.
  """
  radii = [float(r) for r in candidates]
  increasing = all(a < b for a, b in itertools.pairwise(radii))
  if not (radii and increasing and 0.0 < radii[0] and radii[-1] <= 1.0):
    raise ValueError(f"candidates must increase within (0, 1], got {radii}.")
  if not 0.0 <= min_success <= 1.0:
    raise ValueError(f"min_success must lie in [0, 1], got {min_success}.")
  labels = np.asarray(labels)
  correct = np.asarray(voting.predict(logits_fn, images)) == labels
  x, y = np.asarray(images)[correct], labels[correct]
  if not len(y):  # Nothing to attack: the rule cannot apply.
    return {"candidates": radii, "success": [], "ci": [], "n": 0,
            "picked": None}  # fmt: skip
  attack = attacks.make_pgd(
    eps=radii[-1], step_size=radii[-1] * step_fraction, num_steps=num_steps
  )
  adv = attack.sweep(key, logits_fn, x, y, eps=radii)
  hits = [
    int(np.sum(np.asarray(voting.predict(logits_fn, a)) != y)) for a in adv
  ]
  success = [h / len(y) for h in hits]
  picked = next(
    (r for r, s in zip(radii, success, strict=True) if s >= min_success),
    radii[-1],
  )
  return {
    "candidates": radii,
    "success": success,
    "ci": [list(stats.rate_interval(h, len(y))) for h in hits],
    "n": int(len(y)),
    "picked": picked,
  }


def from_config(key, logits_fn, images, labels, rule) -> dict:
  """`working_eps` with a config's ``eps_rule`` block (candidates,
  min_success, num_steps, step_fraction) on its first ``num_examples``
  images."""
  n = rule.num_examples
  return working_eps(
    key, logits_fn, images[:n], labels[:n],
    candidates=rule.candidates, min_success=rule.min_success,
    num_steps=rule.num_steps, step_fraction=rule.step_fraction,
  )  # fmt: skip
