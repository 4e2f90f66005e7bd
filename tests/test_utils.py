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
