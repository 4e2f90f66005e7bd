"""Per-example losses ``(logits (N, K), labels (N,)) -> (N,)``.

Each loss is one the attacker *increases* to move away from `labels`; a
targeted attack decreases its targeted form with `labels` set to the targets.
`get_loss(name, targeted)` returns the right form: cross-entropy and the CW
margin are their own targeted forms, DLR has a separate one.
"""

import jax
import jax.numpy as jnp

from stochjax import types

_TINY = 1e-12


def _label_logit(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]


def _best_other(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """``max_{j != label} z_j``, ``(N,)``."""
  is_label = jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
  return jnp.max(jnp.where(is_label, -jnp.inf, logits), axis=-1)


def cross_entropy(logits: types.Logits, labels: types.Labels) -> jax.Array:
  """Softmax cross-entropy of the label class, ``(N,)``."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -_label_logit(log_probs, labels)


def margin(logits: types.Logits, labels: types.Labels) -> jax.Array:
  """Carlini-Wagner margin ``max_{j != y} z_j - z_y``, ``(N,)``.

  Positive once the example is misclassified. This is the paper code's
  ``LinearLoss`` per example (no clamp, no kappa).

  References:
    Carlini, Wagner. Towards Evaluating the Robustness of Neural Networks.
    IEEE S&P 2017. https://arxiv.org/abs/1608.04644
  """
  logits = logits.astype(jnp.float32)
  return _best_other(logits, labels) - _label_logit(logits, labels)


def dlr(logits: types.Logits, labels: types.Labels) -> jax.Array:
  """Difference of Logits Ratio ``-(z_y - max_{j!=y} z_j) / (z_1 - z_3)``.

  `z_1 >= z_2 >= ...` are the sorted logits; the loss is invariant to
  shifting and scaling the logits. Needs at least 3 classes.

  References:
    Croce, Hein. Reliable evaluation of adversarial robustness with an
    ensemble of diverse parameter-free attacks. ICML 2020.
    https://arxiv.org/abs/2003.01690
  """
  logits = logits.astype(jnp.float32)
  top = jax.lax.top_k(logits, 3)[0]
  return margin(logits, labels) / (top[:, 0] - top[:, 2] + _TINY)


def dlr_targeted(logits: types.Logits, targets: types.Labels) -> jax.Array:
  """Targeted DLR ``(max_{j!=t} z_j - z_t) / (z_1 - (z_3 + z_4) / 2)``.

  Decreasing it raises the target logit over every other class. Croce and
  Hein write the true label's logit where this takes the strongest
  non-target class; the two agree while the true class is the runner-up,
  and this form needs only the targets. Needs at least 4 classes.
  """
  logits = logits.astype(jnp.float32)
  top = jax.lax.top_k(logits, 4)[0]
  scale = top[:, 0] - 0.5 * (top[:, 2] + top[:, 3])
  return margin(logits, targets) / (scale + _TINY)


def dlr_pair(logits: types.Logits, pairs: jax.Array) -> jax.Array:
  """AutoAttack's targeted DLR as APGD-T ascends it, ``(z_t - z_y) / (z_1 -
  (z_3 + z_4) / 2)``, ``(N,)``, for ``pairs (N, 2)`` of true labels y and
  targets t: raising the target over the *true* class (Croce & Hein's
  form; `dlr_targeted` takes the strongest non-target class instead). The
  attack's goal stays untargeted: any misclassification. Needs at least 4
  classes.
  """
  logits = logits.astype(jnp.float32)
  top = jax.lax.top_k(logits, 4)[0]
  scale = top[:, 0] - 0.5 * (top[:, 2] + top[:, 3])
  gap = _label_logit(logits, pairs[:, 1]) - _label_logit(logits, pairs[:, 0])
  return gap / (scale + _TINY)


# name -> (untargeted form, targeted form, fewest classes it needs).
LOSSES = {
  "ce": (cross_entropy, cross_entropy, 2),
  "margin": (margin, margin, 2),
  "dlr": (dlr, dlr_targeted, 3),
}


def get_loss(name: str | types.LossFn, targeted: bool = False) -> types.LossFn:
  """The loss called `name`, in its targeted form if asked; a callable
  ``(logits (N, K), labels (N,)) -> (N,)`` is used as given (ascended, or
  descended when targeted; hashable, as it keys the compiled attack).

  Raises:
    ValueError: an unknown name.
  """
  if callable(name):  # A loss of the caller's, used as given.
    return name
  if name not in LOSSES:
    raise ValueError(
      f"Unknown loss {name!r}; valid: {', '.join(sorted(LOSSES))}."
    )
  untargeted, targeted_form, _ = LOSSES[name]
  return targeted_form if targeted else untargeted


def check_num_classes(name: str, targeted: bool, num_classes: int) -> None:
  """Raises ValueError when `name` needs more than `num_classes` classes."""
  if callable(name):
    return
  fewest = LOSSES[name][2] + (1 if targeted and name == "dlr" else 0)
  if num_classes < fewest:
    kind = "targeted " if targeted else ""
    raise ValueError(
      f"The {kind}{name} loss needs at least {fewest} classes; the model "
      f"has {num_classes}."
    )
