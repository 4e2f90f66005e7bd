"""A small fully-connected classifier for fast checks on 8x8 digits.

Plain parameters (a dict of arrays) and a pure ``logits(params, images)``,
so the same weights port to any framework in a few lines; the attack
checklist tests and ``benchmarks/peer_check.py`` train one in seconds.
"""

import jax
import jax.numpy as jnp
import optax

from stochjax import types
from stochjax.data.core import Dataset


def init(key: types.PRNGKey, in_dim: int, hidden: int, classes: int) -> dict:
  """``{"w1" (in, hidden), "b1", "w2" (hidden, classes), "b2"}`` float32."""
  k1, k2 = jax.random.split(key)
  return {
    "w1": jax.random.normal(k1, (in_dim, hidden)) / jnp.sqrt(in_dim),
    "b1": jnp.zeros((hidden,)),
    "w2": jax.random.normal(k2, (hidden, classes)) / jnp.sqrt(hidden),
    "b2": jnp.zeros((classes,)),
  }


def logits(params: dict, images: types.Batch) -> types.Logits:
  """``(N, H, W, C)`` in [0, 1] -> ``(N, K)``: tanh hidden layer."""
  x = images.reshape(images.shape[0], -1)
  hidden = jnp.tanh(x @ params["w1"] + params["b1"][None])
  return hidden @ params["w2"] + params["b2"][None]


def fit(
  key: types.PRNGKey,
  images: types.Batch,
  labels: types.Labels,
  *,
  classes: int,
  hidden: int = 64,
  steps: int = 300,
  learning_rate: float = 1e-2,
) -> dict:
  """Full-batch Adam on cross-entropy; returns the parameters."""
  params = init(key, images[0].size, hidden, classes)
  optimizer = optax.adam(learning_rate)

  def loss(params):
    return optax.softmax_cross_entropy_with_integer_labels(
      logits(params, images), labels
    ).mean()

  @jax.jit
  def train(params):
    def step(carry, _):
      params, state = carry
      grads = jax.grad(loss)(params)
      updates, state = optimizer.update(grads, state)
      return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(
      step, (params, optimizer.init(params)), None, length=steps
    )
    return params

  # Optax's bias correction mixes Python floats with int32 counts.
  with jax.numpy_dtype_promotion("standard"):
    return train(params)


def fit_digits(key: types.PRNGKey) -> tuple[dict, Dataset]:
  """An MLP fitted on the 8x8 digits' train split; returns it and the test
  split (``(360, 8, 8, 3)`` in [0, 1])."""
  from stochjax.data import digits  # noqa: PLC0415  (sklearn import)

  train = digits.load_digits("train", size=8)
  params = fit(
    key, jnp.asarray(train.images), jnp.asarray(train.labels), classes=10
  )
  return params, digits.load_digits("test", size=8)


def logits_fn(params: dict) -> jax.tree_util.Partial:
  """The model as a ``logits_fn`` pytree (weights traced under jit)."""
  return jax.tree_util.Partial(logits, params)
