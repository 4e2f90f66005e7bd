"""The paper's evaluation protocol: majority votes and attack success rates.

A stochastic classifier is judged by the majority of its hard labels over n
independent defense draws (ties go to the smallest class index, as
``scipy.stats.mode``); ``aggregate="soft"`` instead takes the argmax of the
mean softmax, as prediction ensembles do (Guo et al.'s 30 crops). Votes
accumulate as per-class counts on device, in chunks of draws, so memory is
set by the chunk size, not by n.

Attack success rate (Gao et al., Section 6.1): samples whose benign vote
already meets the goal are discarded; among the rest, success means the vote
on the adversarial image differs from the label (untargeted) or equals the
target (targeted). Benign and adversarial votes use independent keys.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import batching, prng, sharding, types, validation
from stochjax.attacks import attack as attack_lib
from stochjax.attacks import results as results_lib
from stochjax.data import core as data_core
from stochjax.defenses import core as defense_core

AGGREGATES = ("hard", "soft")
# The fold of an evaluation's key that draws a detector's randomness.
_DETECTOR = 5


@functools.partial(
  jax.jit, static_argnames=("defense", "num_votes", "chunk_size", "aggregate")
)
def _vote_counts(
  key, logits_fn, images, *, defense, num_votes, chunk_size, aggregate
):
  keys = prng.per_example(key, images.shape[0])
  defended = defense_core.defended_draws(logits_fn, defense)
  num_chunks = -(-num_votes // chunk_size)
  draws = jnp.arange(num_chunks * chunk_size, dtype=jnp.uint32)
  dtype = jnp.float32 if aggregate == "soft" else jnp.int32

  def body(counts, chunk_draws):
    logits = defended(keys, chunk_draws, images)  # (chunk, N, K)
    if aggregate == "soft":
      hits = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    else:
      labels = jnp.argmax(logits, -1)
      hits = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.int32)
    valid = (chunk_draws < num_votes)[:, None, None]
    hits = jnp.where(valid, hits, jnp.zeros_like(hits))
    return counts + jnp.sum(hits, 0, dtype=dtype), None

  num_classes = jax.eval_shape(logits_fn, images).shape[-1]
  counts = jnp.zeros((images.shape[0], num_classes), dtype)
  counts, _ = jax.lax.scan(body, counts, draws.reshape(num_chunks, -1))
  return counts


def vote_counts(
  key: types.PRNGKey,
  logits_fn: types.LogitsFn,
  images: types.Batch,
  *,
  defense: types.Defense | None,
  num_votes: int,
  chunk_size: int = 10,
  aggregate: str = "hard",
) -> jax.Array:
  """Per-class counts of argmax labels over `num_votes` defense draws.

  Args:
    key: the draws' key, or ``(N,)`` per-example keys (see
      `stochjax.prng.at`); draw j of image i uses
      ``fold_in(keys[i], j)`` with ``keys[i] = fold_in(key, i)``.
    logits_fn: ``(N, H, W, C) -> (N, K)``.
    images: ``(N, H, W, C)`` float32 in [0, 1].
    defense: ``(key, image) -> image``, or None for the bare model.
    num_votes: n, the number of draws.
    chunk_size: draws evaluated at once (memory: chunk_size x N images).
    aggregate: "hard" counts argmax labels; "soft" sums softmax
      probabilities.

  Returns:
    ``(N, K)`` counts summing to `num_votes` per row: int32 for "hard",
    float32 for "soft".
  """
  validation.check_images(images)
  validation.one_of("aggregate", aggregate, AGGREGATES)
  validation.positive("num_votes", num_votes, integer=True)
  validation.positive("chunk_size", chunk_size, integer=True)
  logits_fn = attack_lib.as_pytree_fn(logits_fn)
  validation.num_classes(logits_fn, images)
  return _vote_counts(
    key,
    logits_fn,
    images,
    defense=defense_core.resolve(defense),
    num_votes=num_votes,
    chunk_size=min(chunk_size, num_votes),
    aggregate=aggregate,
  )


def vote(
  key,
  logits_fn,
  images,
  *,
  defense,
  num_votes,
  chunk_size=10,
  aggregate="hard",
):
  """Majority hard label ``(N,)`` int32 (or the argmax of the mean softmax
  with ``aggregate="soft"``); ties go to the smallest class.

  Arguments as `vote_counts`.
  """
  counts = vote_counts(
    key,
    logits_fn,
    images,
    defense=defense,
    num_votes=num_votes,
    chunk_size=chunk_size,
    aggregate=aggregate,
  )
  return jnp.argmax(counts, axis=-1).astype(jnp.int32)


def map_images(
  fn: Callable[..., jax.Array],
  key: types.PRNGKey | None,
  logits_fn: types.LogitsFn,
  images: np.ndarray,
  *,
  batch_size: int,
  mesh=None,
  desc: str = "images",
) -> np.ndarray:
  """``fn(keys (B,), logits_fn, images (B, H, W, C))`` (without `keys`
  when `key` is None) over host `images` ``(N, H, W, C)`` in batches of
  `batch_size`, split over `mesh` (`stochjax.sharding.data_mesh`),
  concatenated on the host.

  Image i gets the key ``fold_in(key, i)``, the key `vote_counts` gives it
  in one call on all N images, so the result is ``fn(key, logits_fn,
  images)``'s (up to float rounding) in memory bounded by the batch: a
  vote on all N images at once holds N x chunk_size images.
  """
  logits_fn = sharding.put_replicated(attack_lib.as_pytree_fn(logits_fn), mesh)
  return batching.map_batches(
    lambda *args: fn(*args[:-1], logits_fn, args[-1]),
    key,
    len(images),
    lambda index: [images[index]],
    batch_size=batch_size,
    mesh=mesh,
    desc=desc,
  )


def predict(logits_fn: types.LogitsFn, images: types.Batch) -> jax.Array:
  """``(N,)`` int32 argmax labels of the undefended model, one jitted call
  (compiled once per model and shape)."""
  return _predict(attack_lib.as_pytree_fn(logits_fn), images)


@jax.jit
def _predict(logits_fn, images):
  return jnp.argmax(logits_fn(images), -1).astype(jnp.int32)


def invariance(
  key: types.PRNGKey,
  logits_fn: types.LogitsFn,
  images: types.Batch,
  *,
  defense: types.Defense | str,
  num_draws: int,
  chunk_size: int = 10,
) -> jax.Array:
  """Per image, the fraction of defense draws whose prediction equals the
  model's prediction on the undefended image: 1 for a model the defense
  does not move, near 1/K for one it scrambles.

  Args:
    key: the draws' key (or ``(N,)`` per-example keys, as `vote_counts`).
    logits_fn: ``(N, H, W, C) -> (N, K)``.
    images: ``(N, H, W, C)`` float32 in [0, 1].
    defense: a defense or spec string.
    num_draws: draws per image.
    chunk_size: draws evaluated at once.

  Returns:
    ``(N,)`` float32 in [0, 1].
  """
  counts = vote_counts(
    key,
    logits_fn,
    images,
    defense=defense,
    num_votes=num_draws,
    chunk_size=chunk_size,
  )
  clean = predict(logits_fn, images)
  kept = jnp.take_along_axis(counts, clean[:, None], axis=1)[:, 0]
  return kept.astype(jnp.float32) / num_draws


def goal_met(predictions, labels, targets=None) -> np.ndarray:
  """Untargeted: prediction != label; targeted: prediction == target."""
  predictions = np.asarray(predictions)
  if targets is None:
    return predictions != np.asarray(labels)
  return predictions == np.asarray(targets)


def success_rate(benign_met, adversarial_met) -> tuple[float, int]:
  """The paper's rate over retained samples, and how many were retained.

  Args:
    benign_met: ``(N,)`` bool, the goal already met by the benign vote.
    adversarial_met: ``(N,)`` bool, the goal met by the adversarial vote.

  Returns:
    (rate in [0, 1] over samples with ``~benign_met``, or NaN if none;
    the number of such samples).
  """
  retained = ~np.asarray(benign_met, bool)
  n = int(retained.sum())
  if n == 0:
    return float("nan"), 0
  return float(np.asarray(adversarial_met, bool)[retained].mean()), n


def accuracy(
  logits_fn: types.LogitsFn,
  source: data_core.Source,
  batch_size: int = 256,
  *,
  defense: types.Defense | None = None,
  key: types.PRNGKey | None = None,
  mesh=None,
) -> float:
  """Top-1 accuracy of `logits_fn` on `source`, in [0, 1].

  With a `defense` (which then needs a `key`), image i gets one draw of
  it, keyed by ``fold_in(key, i)``, before the model: the defended, not
  the voted, accuracy. With a `mesh` (`stochjax.sharding.data_mesh`),
  batches are split across its devices.

  Raises:
    ValueError: a defense without a key.
  """
  if defense is not None and key is None:
    raise ValueError("A defended accuracy needs a key.")
  defense = None if defense is None else defense_core.resolve(defense)
  logits_fn = sharding.put_replicated(attack_lib.as_pytree_fn(logits_fn), mesh)

  def correct(*args):
    keys, (x, y) = (None, args) if defense is None else (args[0], args[1:])
    return _correct(defense, keys, logits_fn, x, y)

  correct = batching.map_batches(
    correct,
    key if defense is not None else None,
    len(source.labels),
    lambda index: (source.read(index), source.labels[index]),
    batch_size=batch_size,
    mesh=mesh,
    desc="accuracy",
  )
  return float(np.mean(correct))


@functools.partial(jax.jit, static_argnums=0)
def _correct(defense, keys, logits_fn, images, labels):
  if defense is None:
    return jnp.argmax(logits_fn(images), -1) == labels
  logits = defense_core.defended_logits(logits_fn, defense)(keys, images)
  return jnp.argmax(logits, -1) == labels


def _images_of(attack: attack_lib.Attack):
  """``(key, logits_fn, x, y, valid=...) -> images``, whatever `with_info`
  says."""

  def images_of(*args, **kwargs):
    result = attack(*args, **kwargs)
    if isinstance(result, results_lib.AttackResult):
      return result.images
    return result

  return images_of


def _voting(defense, num_votes, chunk_size, aggregate) -> dict:
  """`vote`'s keyword arguments, the defense resolved once."""
  return dict(
    defense=defense_core.resolve(defense),
    num_votes=num_votes,
    chunk_size=chunk_size,
    aggregate=aggregate,
  )


class _Protocol:
  """One `evaluate_attack` call's batching and voting settings."""

  def __init__(self, logits_fn, *, batch_size, mesh, voting, detector=None):
    self.logits_fn = logits_fn
    self.batch_size = batch_size
    self.mesh = mesh
    self.voting = voting
    self.detector = detector

  def unflagged(self, key, images, desc, indices=None) -> np.ndarray:
    """``(N,)`` bool: not flagged by the detector (all True without one)."""
    if self.detector is None:
      return np.ones(len(images), bool)
    flagged = self.batches(
      lambda keys, x: self.detector(keys, self.logits_fn, x),
      key,
      [images],
      desc,
      indices,
    )
    return ~np.asarray(flagged, bool)

  def batches(self, fn, key, arrays, desc, indices=None, with_valid=False):
    return batching.map_batches(
      fn,
      key,
      len(arrays[0]),
      lambda index: [a[index] for a in arrays],
      batch_size=self.batch_size,
      mesh=self.mesh,
      desc=desc,
      indices=indices,
      with_valid=with_valid,
    )

  def votes(self, key, images, desc, indices=None):
    return self.batches(
      lambda keys, x: vote(keys, self.logits_fn, x, **self.voting),
      key,
      [images],
      desc,
      indices,
    )

  def attack(self, attack, key, images, goal_labels, desc, indices):
    """The attack on every example, keyed by its dataset index, padded
    rows masked out of any batch-level decision."""
    return self.batches(
      lambda keys, x, y, valid: _images_of(attack)(
        keys, self.logits_fn, x, y, valid=valid
      ),
      key,
      [images, goal_labels],
      desc,
      indices,
      with_valid=True,
    )


def _attack_results(
  protocol: _Protocol, name, attack, keys, images, labels, targets, indices
) -> dict:
  """One attack on the retained samples (`indices` in the dataset), each
  snapshot judged by a vote."""
  attack_key, vote_key = keys
  goal_labels = labels if targets is None else targets
  adv = protocol.attack(attack, attack_key, images, goal_labels, name, indices)
  snapshots = attack.snapshot_steps
  # A snapshot attack returns (N, S, H, W, C): one vote per snapshot.
  candidates = (
    [adv[:, s] for s in range(len(snapshots))] if snapshots else [adv]
  )
  results, by_steps, per_sample = {}, {}, {}
  for s, images_s in enumerate(candidates):
    adv_pred = protocol.votes(vote_key, images_s, "adversarial votes", indices)
    unflagged = protocol.unflagged(
      prng.fold(vote_key, _DETECTOR), images_s, "detector", indices
    )
    adv_met = goal_met(adv_pred, labels, targets) & unflagged
    rate, retained = success_rate(np.zeros_like(adv_met), adv_met)
    if snapshots:
      by_steps[snapshots[s]] = rate
      per_sample[snapshots[s]] = adv_met.tolist()
  results[name] = rate
  results["num_retained"] = retained
  if protocol.detector is not None:
    flagged_rate = float(np.mean(~unflagged))
    results[f"{name.removesuffix('_success_rate')}_flagged_rate"] = flagged_rate
  results[f"{name}_per_sample"] = adv_met.tolist()
  if snapshots:
    results[f"{name}_by_steps"] = by_steps
    results[f"{name}_per_sample_by_steps"] = per_sample
  results[f"{name.removesuffix('_success_rate')}_cost"] = attack.cost.as_dict()
  return results


def _benign(protocol: _Protocol, keys, images, labels, targets):
  """``(keep (N,) bool, results)``: the samples whose benign vote misses
  the goal and that the detector (if any) does not flag, and the benign
  rates."""
  vote_key, detector_key = keys
  benign = protocol.votes(vote_key, images, "benign votes")
  unflagged = protocol.unflagged(detector_key, images, "detector")
  keep = ~goal_met(benign, labels, targets) & unflagged
  results = {
    "num_samples": len(images),
    "benign_accuracy": float(np.mean(benign == labels)),
    "benign_success_rate": float(np.mean(~keep)),
    "retained_indices": np.flatnonzero(keep).tolist(),
  }
  if protocol.detector is not None:
    results["benign_flagged_rate"] = float(np.mean(~unflagged))
  return keep, results


def _checked_data(logits_fn, images, labels, targets):
  """Host arrays of images, labels and targets, checked against the model.

  Raises:
    ValueError: bad images, or labels or targets outside the model's
      classes.
  """
  images, labels = np.asarray(images), np.asarray(labels)
  validation.check_images(images)
  k = validation.num_classes(attack_lib.as_pytree_fn(logits_fn), images[:1])
  validation.check_labels(labels, len(images), k)
  if targets is not None:
    targets = np.asarray(targets)
    validation.check_labels(targets, len(images), k)
  return images, labels, targets


def _named_attacks(attack, non_adaptive_attack) -> dict:
  """``{result name: Attack}``; anything but an `Attack` is refused."""
  attacks = {"attack_success_rate": attack}
  if non_adaptive_attack is not None:
    attacks["non_adaptive_success_rate"] = non_adaptive_attack
  for name, fn in attacks.items():
    if not isinstance(fn, attack_lib.Attack):
      raise ValueError(
        f"{name.removesuffix('_success_rate')} must be a stochjax.attacks."
        f"Attack (from make_pgd, make_apgd or attacks.lookup), got {fn!r}."
      )
  return attacks


def evaluate_attack(
  key: types.PRNGKey,
  logits_fn: types.LogitsFn,
  images: Any,
  labels: Any,
  *,
  attack: attack_lib.Attack,
  defense: types.Defense | None,
  num_votes: int,
  targets: Any = None,
  non_adaptive_attack: attack_lib.Attack | None = None,
  batch_size: int = 128,
  chunk_size: int = 10,
  aggregate: str = "hard",
  mesh=None,
  detector=None,
) -> dict[str, float]:
  """Benign accuracy and attack success rate under the paper's protocol.

  Args:
    key: the evaluation key (benign votes, attack, adversarial votes).
    logits_fn: the undefended model ``(N, H, W, C) -> (N, K)``.
    images: ``(N, H, W, C)`` float32 in [0, 1] (host or device array).
    labels: ``(N,)`` true labels.
    attack: an `stochjax.attacks.Attack`, built with the defense for an
      adaptive attack; its labels are `targets` if given.
    defense: the defense of every vote (a function or a spec string).
    num_votes: n draws per vote.
    targets: ``(N,)`` target classes (targeted attack), else None.
    non_adaptive_attack: also run this one (built without the defense),
      judged by the defended vote.
    batch_size, chunk_size: images per call (the last batch padded); vote
      draws evaluated at once.
    aggregate: "hard" (majority vote, the paper's) or "soft" (mean softmax).
    mesh: a `stochjax.sharding.data_mesh` to split every batch across its
      devices, or None. Example i's keys come from its index in `images`
      (`prng.at`), so its numbers depend neither on `batch_size`, the mesh,
      nor which other samples were retained.
    detector: ``(keys (N,), logits_fn, images) -> (N,) bool`` flags (e.g.
      `stochjax.detectors.OddsDetector`) or None: flagged samples are not
      retained, flagged adversarial images do not succeed; reports
      ``benign_flagged_rate`` and ``attack_flagged_rate``.

  Returns:
    A dict with ``num_samples``, ``benign_accuracy``, ``benign_success_rate``
    (fraction whose benign vote already meets the goal), ``num_retained``,
    ``attack_success_rate`` (over retained samples; NaN if none), and
    ``non_adaptive_success_rate`` when asked. Rates are in [0, 1]. For an
    attack built with ``snapshot_steps``, ``attack_success_rate_by_steps``
    maps each snapshot's step count to its rate (the same vote keys for
    every snapshot), and ``attack_success_rate`` is the last snapshot's.
    Per sample: ``retained_indices`` (positions in `images` of the retained
    samples) and ``attack_success_rate_per_sample`` (whether each met the
    goal; ``..._per_sample_by_steps`` for snapshots), for paired tests.
    ``attack_cost`` (and ``non_adaptive_cost``): the per-example budget
    (`stochjax.attacks.Cost`); ``vote_forward_evals_per_sample``.

  Raises:
    ValueError: bad images, or an attack that is not an `Attack`.
  """
  images, labels, targets = _checked_data(logits_fn, images, labels, targets)
  attacks = _named_attacks(attack, non_adaptive_attack)
  benign_key, attack_key, vote_key, non_adaptive_key = jax.random.split(key, 4)
  attack_keys = {
    "attack_success_rate": attack_key,
    "non_adaptive_success_rate": non_adaptive_key,
  }
  protocol = _Protocol(
    sharding.put_replicated(attack_lib.as_pytree_fn(logits_fn), mesh),
    batch_size=batch_size,
    mesh=mesh,
    voting=_voting(defense, num_votes, chunk_size, aggregate),
    detector=detector,
  )
  keep, results = _benign(
    protocol, (benign_key, prng.fold(key, _DETECTOR)), images, labels, targets
  )
  for i, (name, fn) in enumerate(attacks.items()):
    if not keep.any():  # Every sample already meets the goal.
      results[name], results["num_retained"] = float("nan"), 0
      continue
    results |= _attack_results(
      protocol,
      name,
      fn,
      (attack_keys[name], prng.fold(vote_key, i)),
      images[keep],
      labels[keep],
      None if targets is None else targets[keep],
      np.flatnonzero(keep),
    )
  # Forward passes per sample spent on votes: benign + one per attack image.
  adversarial_votes = sum(
    max(1, len(fn.snapshot_steps)) for fn in attacks.values()
  )
  results["vote_forward_evals_per_sample"] = num_votes * (
    1 + adversarial_votes * float(np.mean(keep))
  )
  return results
