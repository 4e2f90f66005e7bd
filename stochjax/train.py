"""Fine-tuning on defense-augmented data, with per-epoch checkpoints.

The paper's recipe: cross-entropy, AdamW (lr 1e-3, weight decay 1e-2), a
cosine schedule stepped per epoch, and the defense applied to every training
image with a fresh draw per example per step. Every epoch is checkpointed
(Orbax); re-running on the same workdir resumes from the last one, and gives
the same final parameters as an uninterrupted run.
"""

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from stochjax import (
  checkpoint,
  models,
  prng,
  progress,
  sharding,
  types,
  voting,
)
from stochjax import data as data_lib
from stochjax.attacks import losses
from stochjax.defenses import core as defense_core
from stochjax.models import stochastic


class TrainState(NamedTuple):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def epoch_cosine(learning_rate: float, epochs: int, steps_per_epoch: int):
  """Cosine annealing over epochs, constant within an epoch (Lightning's)."""

  def schedule(step):
    epoch = (step // steps_per_epoch).astype(jnp.float32)
    return learning_rate * 0.5 * (1 + jnp.cos(jnp.pi * epoch / epochs))

  return schedule


def make_optimizer(
  *,
  learning_rate: float,
  weight_decay: float,
  epochs: int,
  steps_per_epoch: int,
) -> optax.GradientTransformation:
  return optax.adamw(
    epoch_cosine(learning_rate, epochs, steps_per_epoch),
    weight_decay=weight_decay,
  )


def make_train_step(
  model: nn.Module,
  optimizer: optax.GradientTransformation,
  defense,
  adversarial=None,
) -> Callable:
  """``train_step(state, keys, images, labels, index) -> (state, metrics)``,
  jitted.

  `state` is donated. `keys` is the epoch's ``(defense, model, attack)``
  triple (`train`: ``fold_in(stream, epoch)`` of its "defense", "model"
  and "attack" streams). Example ``index[i]`` of the training set gets its own defense
  draw from ``fold_in(defense, index[i])`` and, for a model with
  randomness of its own (`models.stochastic.draws_randomness`), its own
  draw of it from ``fold_in(model, index[i])``: each depends on the
  example and the epoch, not on the batch it lands in. With `adversarial`
  (an `attacks.Attack`), each example is replaced by the attack's point
  against the current weights (BatchNorm in inference mode; keyed
  ``fold_in(attack, index[i])``, after the defense's draw) inside the same
  compiled step: Madry et al.'s adversarial training.
  """

  # A model with randomness of its own (SAP, noise layers) trains with a
  # fresh draw per example and step, keyed like the defense's.
  random = stochastic.draws_randomness(model)
  if random and adversarial is not None:
    raise ValueError(
      "Adversarial training of a model with randomness of its own (SAP, "
      "noise layers) is not supported: the attack would not draw it."
    )

  def loss_fn(params, batch_stats, images, labels, model_keys):
    logits, updates = model.apply(
      {"params": params, "batch_stats": batch_stats},
      images,
      train=True,
      mutable=["batch_stats"],
      **({"activation_keys": model_keys} if random else {}),
    )
    loss = jnp.mean(losses.cross_entropy(logits, labels))
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return loss, (updates["batch_stats"], accuracy)

  def train_step(state: TrainState, keys, images, labels, index):
    defense_key, model_key, attack_key = keys
    images = defense_core.batched(defense)(prng.at(defense_key, index), images)
    if adversarial is not None:
      variables = {"params": state.params, "batch_stats": state.batch_stats}
      images = adversarial(prng.at(attack_key, index),
                           (_inference(model), variables), images, labels)  # fmt: skip
    (loss, (batch_stats, accuracy)), grads = jax.value_and_grad(
      loss_fn, has_aux=True
    )(state.params, state.batch_stats, images, labels,
      prng.at(model_key, index))  # fmt: skip
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = TrainState(state.step + 1, params, batch_stats, opt_state)
    return new_state, {"loss": loss, "accuracy": accuracy}

  return jax.jit(train_step, donate_argnums=(0,))


def _inference(model: nn.Module) -> Callable:
  """``apply(variables, images) -> logits`` in inference mode."""
  return functools.partial(model.apply, train=False)


def init_state(model, key, image_shape, optimizer) -> TrainState:
  variables = model.init(key, jnp.zeros((1, *image_shape), jnp.float32))
  params = variables["params"]
  return TrainState(
    jnp.zeros((), jnp.int32),
    params,
    variables["batch_stats"],
    optimizer.init(params),
  )


def _start_state(model, key, train_set, optimizer, initial_variables):
  """A fresh `TrainState`, or one holding a copy of `initial_variables`."""
  state = init_state(model, key, train_set.image_shape, optimizer)
  if initial_variables is None:
    return state
  # Training donates its state: copy, so the caller's arrays stay valid.
  initial_variables = jax.tree.map(jnp.copy, initial_variables)
  return state._replace(
    params=initial_variables["params"],
    batch_stats=initial_variables["batch_stats"],
    opt_state=optimizer.init(initial_variables["params"]),
  )


def _epoch(train_step, state, keys, epoch, train_set, batch_size, mesh):
  """One pass over `train_set`; returns the state and the mean metrics."""
  shuffle_key, *per_epoch = keys
  epoch_key = tuple(prng.fold(k, epoch) for k in per_epoch)
  sums = None  # Summed on device; read back once per epoch.
  for batch in data_lib.batches(
    prng.fold(shuffle_key, epoch),
    train_set,
    batch_size,
    process=sharding.process_rows(mesh),
    with_index=True,
  ):
    images, labels, index = sharding.put_process_rows(batch, mesh)
    with sharding.using(mesh):
      state, metrics = train_step(state, epoch_key, images, labels, index)
    sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
  steps = len(train_set.labels) // batch_size
  return state, {k: float(v) / steps for k, v in sums.items()}


def _held_out(model, state, eval_set, defense, eval_key, mesh) -> dict:
  """Held-out clean accuracy and, with a defense, one-draw accuracy."""
  logits_fn = models.classifier(
    model, {"params": state.params, "batch_stats": state.batch_stats}
  )
  out = {"eval_accuracy": voting.accuracy(logits_fn, eval_set, mesh=mesh)}
  if defense is not None:
    out["eval_defended_accuracy"] = voting.accuracy(
      logits_fn, eval_set, defense=defense, key=eval_key, mesh=mesh
    )
  return out


def train(
  *,
  key: types.PRNGKey,
  model: nn.Module,
  train_set: data_lib.Source,
  defense: types.Defense | None,
  epochs: int,
  batch_size: int,
  learning_rate: float = 1e-3,
  weight_decay: float = 1e-2,
  checkpoint_dir: str,
  initial_variables: Any = None,
  eval_set: data_lib.Source | None = None,
  eval_key: types.PRNGKey | None = None,
  on_epoch: Callable[[int, dict], None] | None = None,
  mesh=None,
  adversarial=None,
) -> dict:
  """Trains (or fine-tunes) `model`, resuming from `checkpoint_dir`.

  Args:
    key: the run's key (init, shuffling, defense draws).
    model: a Flax classifier with ``__call__(x, train)``.
    train_set: training data.
    defense: the augmentation ``(key, image) -> image`` (e.g.
      ``defenses.lookup(spec)``), or None for clean training.
    epochs: number of epochs; a checkpoint is written after each.
    batch_size: examples per step (the last partial batch is dropped).
    learning_rate, weight_decay: AdamW's; the schedule is cosine per epoch.
    checkpoint_dir: where Orbax keeps one checkpoint per epoch.
    initial_variables: start from these (fine-tuning) instead of an init;
      they are copied, not consumed.
    eval_set: if given, each epoch's metrics add its clean accuracy
      (``eval_accuracy``) and, with a defense, the accuracy under one draw of
      it (``eval_defended_accuracy``).
    eval_key: the key of those draws (default: derived from `key`); the same
      every epoch, so epochs differ only by the weights.
    on_epoch: called as ``on_epoch(epoch, metrics)`` after each epoch.
    adversarial: an `attacks.Attack` (e.g. ``attacks.make_pgd(eps=...,
      step_size=..., num_steps=7, random_init=True)``): train on its points
      against the current weights, generated inside the compiled step
      (Madry et al. 2018); checkpoints and resume as without it.
    mesh: a `stochjax.sharding.data_mesh` for data-parallel training: the
      state is replicated, each step's batch split across the devices (each
      process reads only its own rows), and `jax.jit` all-reduces the
      gradients. `batch_size` must be a multiple of the mesh size.

  Returns:
    The final variables ``{"params", "batch_stats"}``.

  Raises:
    ValueError: a batch size that does not fit the data or the mesh.
    FloatingPointError: the loss became NaN/inf; the last good checkpoint is
      kept.
  """
  if batch_size % sharding.round_up(1, mesh):
    raise ValueError(
      f"batch_size {batch_size} must be a multiple of the {mesh.size} "
      "devices of the mesh."
    )
  steps_per_epoch = len(train_set.labels) // batch_size
  if steps_per_epoch < 1:
    raise ValueError(
      f"batch_size {batch_size} exceeds the {len(train_set.labels)} examples."
    )
  optimizer = make_optimizer(
    learning_rate=learning_rate,
    weight_decay=weight_decay,
    epochs=epochs,
    steps_per_epoch=steps_per_epoch,
  )
  keys = prng.streams(
    key, ("init", "shuffle", "defense", "held_out", "model", "attack")
  )
  eval_key = keys.held_out if eval_key is None else eval_key
  state = _start_state(
    model, keys.init, train_set, optimizer, initial_variables
  )
  mngr = checkpoint.manager(checkpoint_dir)
  done, restored = checkpoint.restore_latest(mngr, state._asdict())
  state = sharding.put_replicated(TrainState(**restored), mesh)
  first_epoch = 0 if done is None else done
  train_step = make_train_step(
    model, optimizer, defense_core.resolve(defense), adversarial
  )
  bar = progress.bar(
    range(first_epoch, epochs), desc="epochs", initial=first_epoch, total=epochs
  )
  for epoch in bar:
    state, totals = _epoch(
      train_step, state,
      (keys.shuffle, keys.defense, keys.model, keys.attack), epoch, train_set,
      batch_size, mesh,
    )  # fmt: skip
    if not math.isfinite(totals["loss"]):
      raise FloatingPointError(
        f"Training loss became {totals['loss']} in epoch {epoch + 1}; the last "
        f"good checkpoint (epoch {epoch}) is kept in {checkpoint_dir}."
      )
    if eval_set is not None:
      totals |= _held_out(model, state, eval_set, defense, eval_key, mesh)
    bar.set_postfix({k: f"{v:.3f}" for k, v in totals.items()})
    checkpoint.save(mngr, epoch + 1, state._asdict())
    if on_epoch is not None:
      on_epoch(epoch + 1, totals)
  mngr.close()
  return {"params": state.params, "batch_stats": state.batch_stats}
