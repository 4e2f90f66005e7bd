"""Every key of a run, derived in one place.

A run starts from one key (`root`) and derives everything with `fold_in`,
never from positions in a batch. A key plays one of two roles:

* a **stream parent** (the run's root, and any key a function receives to
  run sub-runs): only `streams` / `stream` derive from it, by name
  (``fold_in(key, crc32(name))``), so a sub-run (benign votes, the attack,
  a detector, a grid's control) is a stream of its own;
* an **example parent** (a stream): example i of a dataset draws from
  ``at(key, [i])`` = ``fold_in(key, i)``, so an example's randomness does
  not depend on the batch size, the batch it lands in, or the number of
  devices; step, draw or restart t of example i from ``fold_each(keys,
  t)`` = ``fold_in(keys[i], t)`` (`per_draw`, `per_restart`).

Streams are derived before any per-example fold, and no key is folded both
by name and by example index, so a sub-run's keys never meet an example's
or a draw's (tests/prng_test.py checks it at 1,000 examples x 500 draws).

Defenses draw from the key they are given and may split it among their own
parts; nothing else splits or folds a run's key by hand.

`batch_first` shares one draw across a batch (the paper code's
attack-time BaRT order): under `batch_scope` (entered by
`stochjax.defenses.core.over_batch`, the one place a defense is vmapped over
examples) it gathers the first example's key along `types.BATCH_AXIS`.
"""

import collections
import contextlib
import contextvars
import functools
import zlib
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp

from stochjax import types

_IN_BATCH = contextvars.ContextVar("stochjax_in_batch", default=False)


def root(seed: int) -> jax.Array:
  """The run's typed key from an integer seed."""
  return jax.random.key(seed)


def typed(key: types.PRNGKey) -> jax.Array:
  """`key` as a typed key array (raw ``uint32 (..., 2)`` keys are wrapped).

  Raises:
    ValueError: `key` is neither a typed key nor raw ``uint32`` key data.
  """
  key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key
  if key.dtype == jnp.uint32 and key.ndim >= 1 and key.shape[-1] == 2:
    return jax.random.wrap_key_data(key)
  raise ValueError(
    f"Expected a JAX key (jax.random.key), got {key.dtype} {key.shape}."
  )


def stream(key: types.PRNGKey, *names: str) -> jax.Array:
  """The key of the sub-run named `names` (``stream(key, "a", "b")`` =
  ``stream(stream(key, "a"), "b")``): ``fold_in(key, crc32(name))``, the
  same in every process and Python version.

  Raises:
    ValueError: no name, an empty name, or one that is not a string.
  """
  if not names:
    raise ValueError("stream() needs at least one name.")
  key = typed(key)
  for name in names:
    if not isinstance(name, str) or not name:
      raise ValueError(f"A stream is named by a non-empty str, got {name!r}.")
    key = jax.random.fold_in(key, zlib.crc32(name.encode()))
  return key


def streams(key: types.PRNGKey, names: Sequence[str]) -> tuple:
  """A NamedTuple of the streams `names` of `key` (`stream`), e.g.
  ``streams(key, ("benign", "attack")).attack``.

  Raises:
    ValueError: repeated names or names that are not identifiers.
  """
  names = tuple(names)
  if len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
    raise ValueError(f"Stream names must be distinct identifiers: {names}.")
  return _streams_type(names)(*(stream(key, name) for name in names))


@functools.cache
def _streams_type(names: tuple[str, ...]) -> type:
  return collections.namedtuple("Streams", names)


def fold(key: types.PRNGKey, *indices: int) -> jax.Array:
  """``fold_in(fold_in(key, i0), i1)...``: the keys of indexed children
  (an example, then its draw; an epoch). Sub-runs are `stream`s."""
  key = typed(key)
  for index in indices:
    key = jax.random.fold_in(key, index)
  return key


def at(key: types.PRNGKey, indices: jax.typing.ArrayLike) -> jax.Array:
  """``(len(indices),)`` keys ``fold_in(key, indices[i])``: the keys of
  examples `indices` of a run.

  Slicing a dataset into batches (or across devices) and passing each
  batch its ``at(key, batch_indices)`` gives every example the key it would
  have in one big batch.
  """
  key = typed(key)
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(
    jnp.asarray(indices, jnp.uint32)
  )


def per_example(key: types.PRNGKey, num: int) -> jax.Array:
  """``(num,)`` per-example keys.

  One key gives ``at(key, range(num))``; ``(num,)`` keys (a slice of a
  larger batch's keys, see `at`) are returned unchanged.

  Raises:
    ValueError: keys of another shape.
  """
  key = typed(key)
  if key.shape == (num,):
    return key
  if key.shape:
    raise ValueError(
      f"Expected one key or ({num},) per-example keys, got shape {key.shape}."
    )
  return at(key, jnp.arange(num, dtype=jnp.uint32))


def fold_each(keys: jax.Array, index: jax.typing.ArrayLike) -> jax.Array:
  """``(N,)`` keys ``fold_in(keys[i], index)``: step, draw or restart
  `index` of every example."""
  return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, index)


def per_draw(keys: jax.Array, draws: jax.Array) -> jax.Array:
  """``(len(draws), N)`` keys ``fold_in(keys[i], draws[j])``."""
  return jax.vmap(fold_each, in_axes=(None, 0))(keys, draws)


def split_each(keys: jax.Array, num: int = 2) -> tuple[jax.Array, ...]:
  """`num` arrays of ``(N,)`` keys: ``split(keys[i], num)`` per example
  (independent streams of one example, e.g. its start and its steps)."""
  split = jax.vmap(lambda k: jax.random.split(k, num))(keys)
  return tuple(split[:, j] for j in range(num))


def per_restart(keys: jax.Array, restarts: int) -> jax.Array:
  """``(restarts, N)`` keys: `keys` itself, then ``fold_in(keys[i], r)``
  for r >= 1, so adding restarts never changes what the first one does."""
  later = per_draw(keys, jnp.arange(1, restarts, dtype=jnp.uint32))
  return jnp.concatenate([keys[None], later])


@contextlib.contextmanager
def batch_scope() -> Iterator[None]:
  """Marks code traced per example under a vmap named `types.BATCH_AXIS`."""
  token = _IN_BATCH.set(True)
  try:
    yield
  finally:
    _IN_BATCH.reset(token)


def batch_first(key: types.PRNGKey) -> jax.Array:
  """The key of the batch's first example inside `batch_scope`, `key` itself
  outside it (one image is a batch of one): randomness shared by a whole
  batch in one call."""
  if not _IN_BATCH.get():
    return key
  data = jax.lax.all_gather(jax.random.key_data(key), types.BATCH_AXIS)
  return jax.random.wrap_key_data(data[0], impl=jax.random.key_impl(key))
