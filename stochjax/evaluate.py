"""The paper's evaluation protocol: attack success rates under majority
votes, as typed results.

Attack success rate (Gao et al., Section 6.1): samples whose benign vote
already meets the goal are discarded; among the rest, success means the vote
on the adversarial image differs from the label (untargeted) or equals the
target (targeted). Benign and adversarial votes use independent keys. The
votes are `stochjax.voting`'s.

`evaluate_attack` returns an `Evaluation`: benign accuracy, the retained
samples, and per attack an `AttackOutcome` with per-sample outcomes (for
paired tests), the detector's flag rate and the attack's cost;
``Evaluation.to_json`` / ``from_json`` are its JSON form (what workdir
cells and results.json hold).
"""

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from stochjax import batching, prng, sharding, types, validation, voting
from stochjax.attacks import attack as attack_lib
from stochjax.attacks import results as results_lib
from stochjax.defenses import core as defense_core

# The sub-runs of one evaluation (`prng.streams` of its key); example i
# of each draws from fold_in(stream, i).
STREAMS = ("benign_votes", "benign_detector") + tuple(
  f"{role}{part}"
  for role in ("attack", "non_adaptive")
  for part in ("", "_votes", "_detector")
)


def goal_met(
  predictions: jax.typing.ArrayLike,
  labels: jax.typing.ArrayLike,
  targets: jax.typing.ArrayLike | None = None,
) -> np.ndarray:
  """Untargeted: prediction != label; targeted: prediction == target."""
  predictions = np.asarray(predictions)
  if targets is None:
    return predictions != np.asarray(labels)
  return predictions == np.asarray(targets)


def success_rate(
  benign_met: jax.typing.ArrayLike, adversarial_met: jax.typing.ArrayLike
) -> tuple[float, int]:
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


@dataclasses.dataclass(frozen=True)
class AttackOutcome:
  """One attack's adversarial images, judged by the defended vote.

  Attributes:
    success_rate: the fraction of retained samples whose adversarial vote
      meets the goal and that the detector (if any) does not flag; NaN when
      no sample was retained.
    per_sample: per retained sample (in `Evaluation.retained_indices`
      order), whether it succeeded: the paired outcomes.
    cost: the attack's per-example budget (for a snapshot, of the whole
      run it was taken from).
    num_steps: the steps these images took (the snapshot's k, or the
      attack's own number of steps).
    flagged_rate: the fraction of adversarial images the detector flags
      (None without a detector).
  """

  success_rate: float
  per_sample: tuple[bool, ...]
  cost: results_lib.Cost
  num_steps: int
  flagged_rate: float | None = None

  @property
  def successes(self) -> int:
    return int(sum(self.per_sample))

  def to_json(self) -> dict[str, Any]:
    return {
      "success_rate": self.success_rate,
      "per_sample": list(self.per_sample),
      "cost": self.cost.as_dict(),
      "num_steps": self.num_steps,
      "flagged_rate": self.flagged_rate,
    }

  @classmethod
  def from_json(cls, value: Mapping[str, Any]) -> "AttackOutcome":
    cost = dict(value["cost"])
    cost.pop("strength", None)
    return cls(
      success_rate=float(value["success_rate"]),
      per_sample=tuple(bool(v) for v in value["per_sample"]),
      cost=results_lib.Cost(**cost),
      num_steps=int(value["num_steps"]),
      flagged_rate=value.get("flagged_rate"),
    )


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """What `evaluate_attack` measured, under the paper's protocol.

  Attributes:
    num_samples: the images evaluated.
    benign_accuracy: the benign vote's accuracy on them.
    benign_success_rate: the fraction whose benign vote already meets the
      goal, or that the detector flags (not retained).
    retained_indices: positions (in the images given) of the retained
      samples, the ones attacked.
    attack: the attack's outcome (for a snapshot attack, its last
      snapshot's).
    snapshots: for an attack built with ``snapshot_steps``, each
      snapshot's outcome by step count (the same vote keys for each);
      empty otherwise.
    non_adaptive: the non-adaptive attack's outcome, if one was given.
    non_adaptive_snapshots: its snapshots, as `snapshots`.
    benign_flagged_rate: the fraction of clean images the detector flags
      (None without one).
    vote_forward_evals_per_sample: forward passes per sample the votes
      spent (benign, and one vote per adversarial image).
  """

  num_samples: int
  benign_accuracy: float
  benign_success_rate: float
  retained_indices: tuple[int, ...]
  attack: AttackOutcome
  snapshots: Mapping[int, AttackOutcome] = dataclasses.field(
    default_factory=dict
  )
  non_adaptive: AttackOutcome | None = None
  non_adaptive_snapshots: Mapping[int, AttackOutcome] = dataclasses.field(
    default_factory=dict
  )
  benign_flagged_rate: float | None = None
  vote_forward_evals_per_sample: float = 0.0

  @property
  def num_retained(self) -> int:
    return len(self.retained_indices)

  def at_steps(self, k: int) -> "Evaluation":
    """This evaluation with snapshot `k` as its attacks' outcomes (and no
    snapshots): the evaluation PGD-k would have given."""
    return dataclasses.replace(
      self,
      attack=self.snapshots[k],
      snapshots={},
      non_adaptive=self.non_adaptive_snapshots.get(k, self.non_adaptive),
      non_adaptive_snapshots={},
    )

  def to_json(self) -> dict[str, Any]:
    """The JSON form (string step counts; None as null)."""
    return {
      "num_samples": self.num_samples,
      "benign_accuracy": self.benign_accuracy,
      "benign_success_rate": self.benign_success_rate,
      "retained_indices": list(self.retained_indices),
      "num_retained": self.num_retained,
      "attack": self.attack.to_json(),
      "snapshots": {str(k): o.to_json() for k, o in self.snapshots.items()},
      "non_adaptive": (
        None if self.non_adaptive is None else self.non_adaptive.to_json()
      ),
      "non_adaptive_snapshots": {
        str(k): o.to_json() for k, o in self.non_adaptive_snapshots.items()
      },
      "benign_flagged_rate": self.benign_flagged_rate,
      "vote_forward_evals_per_sample": self.vote_forward_evals_per_sample,
    }

  @classmethod
  def from_json(cls, value: Mapping[str, Any]) -> "Evaluation":
    """The `Evaluation` of `to_json`'s output (e.g. a workdir cell).

    Raises:
      ValueError: a result in the flat format of stochjax before typed
        evaluations (a workdir of an earlier run).
    """
    if "attack" not in value and "attack_success_rate" in value:
      raise ValueError(
        "This result is in the flat format of an earlier stochjax "
        "(attack_success_rate, ...); rerun it in a new --workdir."
      )
    non_adaptive = value.get("non_adaptive")
    return cls(
      num_samples=int(value["num_samples"]),
      benign_accuracy=float(value["benign_accuracy"]),
      benign_success_rate=float(value["benign_success_rate"]),
      retained_indices=tuple(int(i) for i in value["retained_indices"]),
      attack=AttackOutcome.from_json(value["attack"]),
      snapshots={
        int(k): AttackOutcome.from_json(o)
        for k, o in value.get("snapshots", {}).items()
      },
      non_adaptive=(
        None if non_adaptive is None else AttackOutcome.from_json(non_adaptive)
      ),
      non_adaptive_snapshots={
        int(k): AttackOutcome.from_json(o)
        for k, o in value.get("non_adaptive_snapshots", {}).items()
      },
      benign_flagged_rate=value.get("benign_flagged_rate"),
      vote_forward_evals_per_sample=float(
        value["vote_forward_evals_per_sample"]
      ),
    )


def _voting(defense, num_votes, chunk_size, aggregate) -> dict:
  """`voting.vote_unchecked`'s keyword arguments, checked once."""
  validation.one_of("aggregate", aggregate, voting.AGGREGATES)
  validation.positive("num_votes", num_votes, integer=True)
  validation.positive("chunk_size", chunk_size, integer=True)
  return dict(
    defense=defense_core.resolve(defense),
    num_votes=num_votes,
    chunk_size=min(chunk_size, num_votes),
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
    flagged = self.map_rows(
      lambda keys, x: self.detector(keys, self.logits_fn, x),
      key,
      [images],
      desc,
      indices,
    )
    return ~np.asarray(flagged, bool)

  def map_rows(self, fn, key, arrays, desc, indices=None, with_valid=False):
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
    return self.map_rows(
      lambda keys, x: voting.vote_unchecked(
        keys, self.logits_fn, x, **self.voting
      ),
      key,
      [images],
      desc,
      indices,
    )

  def attack(self, attack, key, images, goal_labels, desc, indices):
    """The attack on every example, keyed by its dataset index, padded
    rows masked out of any batch-level decision."""
    return self.map_rows(
      # The bare jitted body: inputs were checked once, at the boundary.
      lambda keys, x, y, valid: (
        attack.run(keys, self.logits_fn, x, y, valid=valid).images
      ),
      key,
      [images, goal_labels],
      desc,
      indices,
      with_valid=True,
    )


def _outcomes(
  protocol: _Protocol, attack, keys, images, labels, targets, indices
) -> tuple[AttackOutcome, dict[int, AttackOutcome]]:
  """One attack on the retained samples (`indices` in the dataset), each
  snapshot judged by a vote: ``(outcome, {k: snapshot outcome})``."""
  attack_key, vote_key, detector_key = keys
  goal_labels = (labels if targets is None else targets).astype(np.int32)
  adv = protocol.attack(
    attack, attack_key, images, goal_labels, "attack", indices
  )
  # On the host already: checked once per attack, as a vote would check it.
  validation.check_images(
    adv.reshape(-1, *adv.shape[-3:]), name="the attack's images"
  )
  steps = attack.snapshot_steps or (attack.cost.num_steps,)
  # A snapshot attack returns (N, S, H, W, C): one vote per snapshot.
  candidates = (
    [adv[:, s] for s in range(len(steps))] if attack.snapshot_steps else [adv]
  )
  outcomes = {}
  for k, images_k in zip(steps, candidates, strict=True):
    adv_pred = protocol.votes(vote_key, images_k, "adversarial votes", indices)
    unflagged = protocol.unflagged(detector_key, images_k, "detector", indices)
    adv_met = goal_met(adv_pred, labels, targets) & unflagged
    rate, _ = success_rate(np.zeros_like(adv_met), adv_met)
    outcomes[k] = AttackOutcome(
      success_rate=rate,
      per_sample=tuple(bool(v) for v in adv_met),
      cost=attack.cost,
      num_steps=int(k),
      flagged_rate=(
        None if protocol.detector is None else float(np.mean(~unflagged))
      ),
    )
  last = outcomes[steps[-1]]
  return last, outcomes if attack.snapshot_steps else {}


def _unattacked(attack) -> tuple[AttackOutcome, dict[int, AttackOutcome]]:
  """``_outcomes``' values when every sample already meets the goal: no
  attack ran, each snapshot's rate is NaN."""
  steps = attack.snapshot_steps or (attack.cost.num_steps,)
  outcomes = {
    k: AttackOutcome(
      success_rate=math.nan, per_sample=(), cost=attack.cost, num_steps=int(k)
    )
    for k in steps
  }
  return outcomes[steps[-1]], outcomes if attack.snapshot_steps else {}


def _benign(protocol: _Protocol, keys, images, labels, targets):
  """``(keep (N,) bool, benign fields of the Evaluation)``: the samples
  whose benign vote misses the goal and that the detector (if any) does not
  flag."""
  vote_key, detector_key = keys
  benign = protocol.votes(vote_key, images, "benign votes")
  unflagged = protocol.unflagged(detector_key, images, "detector")
  keep = ~goal_met(benign, labels, targets) & unflagged
  return keep, dict(
    num_samples=len(images),
    benign_accuracy=float(np.mean(benign == labels)),
    benign_success_rate=float(np.mean(~keep)),
    retained_indices=tuple(int(i) for i in np.flatnonzero(keep)),
    benign_flagged_rate=(
      None if protocol.detector is None else float(np.mean(~unflagged))
    ),
  )


def _checked_data(logits_fn, images, labels, targets):
  """Host arrays of images, labels and targets, checked against the
  (wrapped) model.

  Raises:
    ValueError: bad images, or labels or targets outside the model's
      classes.
  """
  images, labels = np.asarray(images), np.asarray(labels)
  validation.check_images(images)
  k = validation.num_classes(logits_fn, images[:1])
  validation.check_labels(labels, len(images), k)
  if targets is not None:
    targets = np.asarray(targets)
    validation.check_labels(targets, len(images), k)
  return images, labels, targets


def _checked_attack(role: str, attack, logits_fn, images, goal, targeted):
  """`attack`, checked once on the first batch (``images``, ``goal``) as
  its calls would check every batch.

  Raises:
    ValueError: not an `Attack`, a goal that is not the attack's, or what
      `attacks.attack.check_inputs` refuses.
  """
  if not isinstance(attack, attack_lib.Attack):
    raise ValueError(
      f"{role} must be a stochjax.attacks.Attack (from make_pgd, make_apgd "
      f"or attacks.lookup), got {attack!r}."
    )
  if attack.targeted != targeted:
    raise ValueError(
      f"{role} is {'' if attack.targeted else 'un'}targeted, but targets "
      f"were {'' if targeted else 'not '}given."
    )
  attack_lib.check_inputs(
    logits_fn, images, goal, loss=attack.loss, targeted=attack.targeted
  )
  return attack


def _checked_attacks(attacks, logits_fn, images, labels, targets, batch_size):
  """``{role: Attack}`` of the given (not None) attacks, each checked on
  the first batch (`_checked_attack`)."""
  first = slice(min(batch_size, len(images)))
  goal = (labels if targets is None else targets)[first].astype(np.int32)
  check = (logits_fn, images[first], goal, targets is not None)
  names = {"attack": "attack", "non_adaptive": "non_adaptive_attack"}
  return {
    role: _checked_attack(names[role], fn, *check)
    for role, fn in attacks.items()
    if fn is not None
  }


def evaluate_attack(
  key: types.PRNGKey,
  logits_fn: types.LogitsFn,
  images: Any,
  labels: Any,
  *,
  attack: attack_lib.Attack,
  defense: types.Defense | str | None,
  num_votes: int,
  targets: Any = None,
  non_adaptive_attack: attack_lib.Attack | None = None,
  batch_size: int = 128,
  chunk_size: int = 10,
  aggregate: str = "hard",
  mesh: jax.sharding.Mesh | None = None,
  detector: Any = None,
) -> Evaluation:
  """Benign accuracy and attack success rate under the paper's protocol.

  Args:
    key: the evaluation's key; its sub-runs are its named `STREAMS`
      (`prng.streams`), so none shares keys with another.
    logits_fn: the undefended model ``(N, H, W, C) -> (N, K)``.
    images: ``(N, H, W, C)`` float32 in [0, 1] (host or device array).
    labels: ``(N,)`` true labels.
    attack: an `stochjax.attacks.Attack` (built with the defense: adaptive).
    defense: the defense of every vote (a function or a spec string).
    num_votes: n draws per vote.
    targets: ``(N,)`` target classes (targeted attack), else None.
    non_adaptive_attack: also run this one (built without the defense),
      judged by the defended vote.
    batch_size, chunk_size: images per call (the last batch padded); vote
      draws evaluated at once.
    aggregate: "hard" (majority vote, the paper's) or "soft" (mean softmax).
    mesh: a `stochjax.sharding.data_mesh` to split batches over, or None.
      Example i's keys come from its index in `images` (`prng.at`), so its
      numbers depend neither on `batch_size`, the mesh, nor which other
      samples were retained.
    detector: ``(keys (N,), logits_fn, images) -> (N,) bool`` flags (e.g.
      `stochjax.detectors.OddsDetector`) or None: flagged samples are not
      retained, flagged adversarial images do not succeed.

  Returns:
    An `Evaluation` (rates in [0, 1]).

  Raises:
    ValueError: bad inputs, an attack that is not an `Attack` or whose
      goal (targeted or not) is not the call's.
  """
  logits_fn = attack_lib.as_pytree_fn(logits_fn)  # Wrapped once, here.
  images, labels, targets = _checked_data(logits_fn, images, labels, targets)
  attacks = _checked_attacks(
    {"attack": attack, "non_adaptive": non_adaptive_attack},
    logits_fn, images, labels, targets, batch_size,
  )  # fmt: skip
  streams = prng.streams(key, STREAMS)
  protocol = _Protocol(
    sharding.put_replicated(logits_fn, mesh),
    batch_size=batch_size,
    mesh=mesh,
    voting=_voting(defense, num_votes, chunk_size, aggregate),
    detector=detector,
  )
  keep, benign = _benign(
    protocol,
    (streams.benign_votes, streams.benign_detector),
    images,
    labels,
    targets,
  )
  outcomes, snapshots = {}, {}
  for role, fn in attacks.items():
    if not keep.any():  # Every sample already meets the goal.
      outcomes[role], snapshots[role] = _unattacked(fn)
      continue
    outcomes[role], snapshots[role] = _outcomes(
      protocol,
      fn,
      tuple(
        getattr(streams, f"{role}{part}")
        for part in ("", "_votes", "_detector")
      ),
      images[keep],
      labels[keep],
      None if targets is None else targets[keep],
      np.flatnonzero(keep),
    )
  # Forward passes per sample spent on votes: benign + one per attack image.
  adversarial_votes = sum(
    max(1, len(fn.snapshot_steps)) for fn in attacks.values()
  )
  return Evaluation(
    **benign,
    attack=outcomes["attack"],
    snapshots=snapshots["attack"],
    non_adaptive=outcomes.get("non_adaptive"),
    non_adaptive_snapshots=snapshots.get("non_adaptive", {}),
    vote_forward_evals_per_sample=num_votes
    * (1 + adversarial_votes * float(np.mean(keep))),
  )
