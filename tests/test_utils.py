"""Small helpers shared by the tests."""

import jax
import jax.numpy as jnp
import numpy as np


def assert_trees_all_close(actual, desired, rtol=1e-6, atol=1e-6):
  """Asserts two pytrees have the same structure and close leaves."""
  assert jax.tree.structure(actual) == jax.tree.structure(desired)
  for a, d in zip(
    jax.tree.leaves(actual), jax.tree.leaves(desired), strict=True
  ):
    np.testing.assert_allclose(np.asarray(a), np.asarray(d), rtol, atol)


def random_images(seed: int, shape, lo: float = 0.0, hi: float = 1.0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.uniform(lo, hi, shape).astype(np.float32))


class TraceCounter:
  """A linear ``logits_fn`` whose Python body counts its traces.

  Under `jax.jit` the body runs only when the function is (re)traced, so the
  count tells how many times an attack compiled.
  """

  def __init__(self):
    self.traces = 0

  def __call__(self, weights, images):
    self.traces += 1
    return images.reshape(images.shape[0], -1) @ weights


def linear_logits_fn(weights, counter=None):
  """``images (N, H, W, C) -> images.reshape(N, -1) @ weights`` as a Partial."""
  fn = counter if counter is not None else TraceCounter()
  return jax.tree_util.Partial(fn, weights)


def traces_for_new_weights(attack, images, labels, weights) -> tuple[int, int]:
  """``(traces after the first call, after a second with new weights)``
  of `attack` on a linear model: equal when the second call reused the
  compiled attack."""
  counter = TraceCounter()
  counts = []
  for scale in (1.0, 2.0):
    attack(
      jax.random.key(0), linear_logits_fn(weights * scale, counter), images,
      labels,
    )  # fmt: skip
    counts.append(counter.traces)
  return tuple(counts)


def _mlp(params, images):
  w1, b1, w2, b2 = params
  hidden = jax.nn.relu(images.reshape(images.shape[0], -1) @ w1 + b1[None])
  return hidden @ w2 + b2[None]


def digits_mlp(num_train: int = 600):
  """``(images (1797, 8, 8, 1) in [0, 1], labels, logits_fn)``: a
  scikit-learn MLP fitted on the first `num_train` 8x8 digits, as a JAX
  `jax.tree_util.Partial` (weights traced)."""
  import warnings

  from sklearn import datasets, exceptions, neural_network

  digits = datasets.load_digits()
  images = (digits.images / 16.0).astype(np.float32)[..., None]
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
    mlp = neural_network.MLPClassifier((64,), max_iter=200, random_state=0)
    mlp.fit(
      images[:num_train].reshape(num_train, -1), digits.target[:num_train]
    )
  params = tuple(
    jnp.asarray(p, jnp.float32)
    for pair in zip(mlp.coefs_, mlp.intercepts_, strict=True)
    for p in pair
  )
  return images, digits.target, jax.tree_util.Partial(_mlp, params)


def slow_cases(*cases):
  """Marks slow some cases of an absl-parameterized test (`tests/conftest.py`):
  by name for ``named_parameters``, by index for ``parameters``.

  For cases that test a code path another case already tests in the default
  tier; put it under ``@parameterized...(...)``.
  """

  def mark(test_method):
    test_method.slow_cases = tuple(str(case) for case in cases)
    return test_method

  return mark
