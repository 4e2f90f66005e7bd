"""Predictions of a stochastic classifier: majority votes over defense
draws, the undefended prediction, invariance to the defense, accuracy.

A stochastic classifier is judged by the majority of its hard labels over n
independent defense draws (ties go to the smallest class index, as
``scipy.stats.mode``); ``aggregate="soft"`` instead takes the argmax of the
mean softmax, as prediction ensembles do (Guo et al.'s 30 crops). Votes
accumulate as per-class counts on device, in chunks of draws, so memory is
set by the chunk size, not by n. Draw j of image i uses
``fold_in(fold_in(key, i), j)`` (`stochjax.prng`).

`vote_counts`, `vote`, `predict` and `invariance` are jitted functions of
arrays (usable inside a user's `jit` or `vmap`); `map_images` and
`accuracy` run them over host arrays or a dataset in batches, on a mesh.
The attack protocol built on them is `stochjax.evaluate`.
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import batching, prng, sharding, types, validation
from stochjax.attacks import attack as attack_lib
from stochjax.data import core as data_core
from stochjax.defenses import core as defense_core

AGGREGATES = ("hard", "soft")


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
  key: types.PRNGKey,
  logits_fn: types.LogitsFn,
  images: types.Batch,
  *,
  defense: types.Defense | str | None,
  num_votes: int,
  chunk_size: int = 10,
  aggregate: str = "hard",
) -> jax.Array:
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


@functools.partial(
  jax.jit, static_argnames=("defense", "num_votes", "chunk_size", "aggregate")
)
def vote_unchecked(
  key: jax.Array,
  logits_fn: jax.tree_util.Partial,
  images: jax.Array,
  *,
  defense: types.Defense | None,
  num_votes: int,
  chunk_size: int,
  aggregate: str,
) -> jax.Array:
  """`vote` without its host-side checks, for a caller that checked its
  inputs once (`stochjax.evaluate`): `logits_fn` a pytree
  (`attacks.attack.as_pytree_fn`), `defense` resolved
  (`defenses.core.resolve`), ``chunk_size <= num_votes``."""
  counts = _vote_counts(
    key, logits_fn, images, defense=defense, num_votes=num_votes,
    chunk_size=chunk_size, aggregate=aggregate,
  )  # fmt: skip
  return jnp.argmax(counts, axis=-1).astype(jnp.int32)


def map_images(
  fn: Callable[..., jax.Array],
  key: types.PRNGKey | None,
  logits_fn: types.LogitsFn,
  images: np.ndarray,
  *,
  batch_size: int,
  mesh: jax.sharding.Mesh | None = None,
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


def accuracy(
  logits_fn: types.LogitsFn,
  source: data_core.Source,
  batch_size: int = 256,
  *,
  defense: types.Defense | None = None,
  key: types.PRNGKey | None = None,
  mesh: jax.sharding.Mesh | None = None,
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
