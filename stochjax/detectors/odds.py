"""The odds are odd (Roth, Kilcher, Hofmann, ICML 2019): a detector that
flags inputs whose logit differences shift abnormally under random noise.

For an image x predicted as class y, and every other class z, the
statistic is the mean over noise draws eta of the change in the logit
difference, ``g_z = E[f_z(x + eta) - f_y(x + eta)] - (f_z(x) - f_y(x))``
(Roth et al.'s "alignment" of the penultimate features with ``w_z - w_y``,
which equals it: the bias cancels), standardized with its mean and
standard deviation over clean images predicted as y. Adversarial examples
sit near a decision boundary towards y, where noise moves the logits
towards the true class, so some standardized ``g_z`` is large.

Followed: Roth et al.'s paper and public code as the paper's official
evaluation runs it (``icml19_public`` with ``just_detect=True``: Gaussian
noise, clean statistics from training images). Simplified, and said here:
one threshold on the largest standardized ``g_z`` (not one per class pair),
set at the (1 - fpr) quantile of clean images held out from the
statistics' fit, so the false-positive rate is the calibrated one; no
clipping of the alignments; no class correction.

The attack that evades it (Tramer et al. 2020, and the paper's official
code) matches the logits of a clean image of another class, averaged over
the detector's own noise (EOT): `logit_matching_loss`.
"""

import functools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from stochjax import batching, checkpoint, prng, types, validation
from stochjax.attacks import attack as attack_lib
from stochjax.defenses import core as defense_core


def _noise(sigma: float, clip: bool) -> types.Defense:
  return defense_core.lookup(f"gaussian_noise(sigma={sigma!r}, clip={clip})")


@functools.partial(
  jax.jit, static_argnames=("sigma", "clip", "num_noise", "chunk_size")
)
def logit_shifts(keys, logits_fn, images, *, sigma, clip, num_noise,
                 chunk_size):  # fmt: skip
  """``(predictions (N,), g (N, K))``: the clean prediction y and, per class
  z, the mean over `num_noise` draws of the change in ``f_z - f_y`` (0 at
  z = y). Draw j of image i uses ``fold_in(keys[i], j)``."""
  defended = defense_core.defended_draws(logits_fn, _noise(sigma, clip))
  clean = logits_fn(images).astype(jnp.float32)
  pred = jnp.argmax(clean, -1)

  def differences(logits):
    return logits - jnp.take_along_axis(logits, pred[:, None], axis=1)

  chunk = min(chunk_size, num_noise)
  num_chunks = -(-num_noise // chunk)
  draws = jnp.arange(num_chunks * chunk, dtype=jnp.uint32)

  def body(total, chunk_draws):
    noisy = defended(keys, chunk_draws, images).astype(jnp.float32)
    shifts = jax.vmap(differences)(noisy)  # (chunk, N, K)
    valid = (chunk_draws < num_noise)[:, None, None]
    return total + jnp.sum(jnp.where(valid, shifts, 0.0), 0), None

  total, _ = jax.lax.scan(
    body, jnp.zeros_like(clean), draws.reshape(num_chunks, -1)
  )
  return pred, total / num_noise - differences(clean)


@flax.struct.dataclass
class OddsDetector:
  """A calibrated detector: ``detector(keys (N,), logits_fn, images) ->
  (N,) bool`` flags (True: adversarial). A pytree, so it can be passed
  into the caller's jit.

  Attributes:
    mean, std: ``(K, K)`` clean statistics of ``g_z`` per predicted class
      y (rows) and class z (columns).
    threshold: flag when the largest standardized ``g_z`` exceeds it.
    class_logits: ``(K, K)`` mean clean logits of each class (for
      `logit_matching_loss`).
    sigma, clip, num_noise, chunk_size: the noise (static).
  """

  mean: jax.Array
  std: jax.Array
  threshold: jax.Array
  class_logits: jax.Array
  sigma: float = flax.struct.field(pytree_node=False)
  clip: bool = flax.struct.field(pytree_node=False)
  num_noise: int = flax.struct.field(pytree_node=False)
  chunk_size: int = flax.struct.field(pytree_node=False)

  def score(self, keys, logits_fn, images) -> jax.Array:
    """``(N,)`` the largest standardized logit shift of each image; `keys`
    are ``(N,)`` per-example keys or one key (`prng.per_example`)."""
    keys = prng.per_example(keys, images.shape[0])
    pred, g = logit_shifts(
      keys, attack_lib.as_pytree_fn(logits_fn), images, sigma=self.sigma,
      clip=self.clip, num_noise=self.num_noise, chunk_size=self.chunk_size,
    )  # fmt: skip
    z = (g - self.mean[pred]) / self.std[pred]
    others = jnp.arange(g.shape[1])[None, :] != pred[:, None]
    return jnp.max(jnp.where(others, z, -jnp.inf), axis=1)

  def __call__(self, keys, logits_fn, images) -> jax.Array:
    return self.score(keys, logits_fn, images) > self.threshold


def _batched(fn, key, images, batch_size, indices=None):
  return batching.map_batches(
    fn, key, len(images), lambda index: (images[index],),
    batch_size=batch_size, desc="odds statistics", indices=indices,
  )  # fmt: skip


def calibrate(key, logits_fn, images, labels, *, fpr: float = 0.01,
              sigma: float = 30 / 255, clip: bool = True,
              num_noise: int = 256, chunk_size: int = 32,
              batch_size: int = 128) -> OddsDetector:  # fmt: skip
  """Fits the clean statistics and the threshold on clean images.

  The correctly classified images are split in two halves (even and odd
  positions): the first fits each ``(y, z)`` mean and standard deviation
  (pooled over y for a class with fewer than two images), the second sets
  the threshold at its (1 - fpr) quantile, so on further clean images the
  false-positive rate is `fpr` (up to sampling).

  Args:
    key: the noise draws' key (image i's from ``fold_in(key, i)``).
    logits_fn: the model, ``(N, H, W, C) -> (N, K)``.
    images: ``(N, H, W, C)`` float32 in [0, 1], clean (e.g. training
      images, as Roth et al.).
    labels: ``(N,)`` their classes (only correctly classified images are
      used), or None for every image, as the model classifies it.
    fpr: the false-positive rate in (0, 1).
    sigma, clip: the Gaussian noise (std in [0, 1] pixel units; Roth et
      al.'s 30/255), clipped to [0, 1] or not.
    num_noise, chunk_size: draws per image (Roth et al.: 256), and at once.
    batch_size: images per call.

  Raises:
    ValueError: bad images or labels, `fpr` outside (0, 1), or fewer than 4
      correctly classified images.
  """
  images = np.asarray(images)
  validation.check_images(images)
  logits_fn = attack_lib.as_pytree_fn(logits_fn)
  k = validation.num_classes(logits_fn, images[:1])
  if labels is not None:
    labels = np.asarray(labels)
    validation.check_labels(labels, len(images), k)
  if not 0.0 < fpr < 1.0:
    raise ValueError(f"fpr must lie in (0, 1), got {fpr!r}.")
  settings = dict(sigma=float(sigma), clip=bool(clip),
                  num_noise=int(num_noise), chunk_size=int(chunk_size))  # fmt: skip

  def shifts(keys, x):
    pred, g = logit_shifts(keys, logits_fn, x, **settings)
    return jnp.concatenate([pred[:, None].astype(g.dtype), g], axis=1)

  out = _batched(shifts, key, images, batch_size)
  pred, g = out[:, 0].astype(int), out[:, 1:]
  if labels is None:  # Every image, as the model classifies it.
    labels = pred
  correct = np.flatnonzero(pred == labels)
  if len(correct) < 4:
    raise ValueError(
      f"Only {len(correct)} clean images are classified correctly; the "
      "detector needs at least 4 to calibrate."
    )
  fit, held_out = correct[::2], correct[1::2]
  mean, std = _class_statistics(pred[fit], g[fit], k)
  clean_logits = np.asarray(
    jax.jit(logits_fn)(images[correct]), np.float32
  )  # fmt: skip
  class_logits = np.stack([
    clean_logits[labels[correct] == c].mean(0)
    if np.any(labels[correct] == c) else np.zeros(k, np.float32)
    for c in range(k)
  ])  # fmt: skip
  detector = OddsDetector(
    jnp.asarray(mean), jnp.asarray(std), jnp.float32(np.inf),
    jnp.asarray(class_logits), **settings,
  )  # fmt: skip
  z = (g[held_out] - mean[pred[held_out]]) / std[pred[held_out]]
  z[np.arange(len(held_out)), pred[held_out]] = -np.inf
  scores = z.max(axis=1)
  threshold = np.quantile(scores, 1.0 - fpr, method="higher")
  return detector.replace(threshold=jnp.float32(threshold))


def _class_statistics(pred, g, k):
  """``(K, K)`` mean and std of ``g`` over images predicted as each class
  (the pooled ones for classes with fewer than 2 images)."""
  pooled_mean, pooled_std = g.mean(0), g.std(0)
  mean = np.tile(pooled_mean, (k, 1))
  std = np.tile(pooled_std, (k, 1))
  for y in range(k):
    rows = g[pred == y]
    if len(rows) >= 2:
      mean[y], std[y] = rows.mean(0), rows.std(0)
  return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


_ARRAYS = ("mean", "std", "threshold", "class_logits")
_SETTINGS = {"sigma": float, "clip": bool, "num_noise": int, "chunk_size": int}


def save(detector: OddsDetector, path: str) -> None:
  """Writes a calibrated detector to the folder `path` (Orbax, replaced
  atomically), so a resumed run need not calibrate again."""
  tree = {name: getattr(detector, name) for name in _ARRAYS}
  settings = {name: np.asarray(getattr(detector, name)) for name in _SETTINGS}
  checkpoint.save_tree(path, tree | {"settings": settings})


def load(path: str) -> OddsDetector:
  """The detector `save` wrote to `path`.

  Raises:
    ValueError: the folder does not hold a saved detector.
  """
  try:
    tree = checkpoint.restore_tree(path, None)
    settings = {
      name: kind(np.asarray(tree["settings"][name]).item())
      for name, kind in _SETTINGS.items()
    }
    arrays = {name: jnp.asarray(tree[name], jnp.float32) for name in _ARRAYS}
  except (FileNotFoundError, KeyError, ValueError) as error:
    raise ValueError(f"{path} does not hold a saved odds detector.") from error
  k = arrays["mean"].shape[0]
  square = all(
    arrays[n].shape == (k, k) for n in ("mean", "std", "class_logits")
  )
  if not square or arrays["threshold"].shape:
    raise ValueError(f"{path} holds a detector of inconsistent shapes.")
  return OddsDetector(**arrays, **settings)


def _logit_matching(class_logits, logits, labels):
  target = class_logits[(labels + 1) % class_logits.shape[0]]
  return -jnp.sum(jnp.square(logits.astype(jnp.float32) - target), axis=-1)


def logit_matching_loss(detector: OddsDetector):
  """The evading loss ``(logits (N, K), labels (N,)) -> (N,)``: minus the
  squared distance to the mean clean logits of class ``(label + 1) % K``,
  so an untargeted attack ascending it makes the image look like a clean
  image of another class to the detector and the model alike (Tramer et
  al. 2020; the official code matches one clean image's logits). Use it
  with EOT over the detector's noise (`noise_defense`)."""
  return jax.tree_util.Partial(_logit_matching, detector.class_logits)


def noise_defense(detector: OddsDetector) -> types.Defense:
  """The detector's noise as a defense, for EOT over it."""
  return _noise(detector.sigma, detector.clip)
