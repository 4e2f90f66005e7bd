"""Threat-model geometry: step direction, projection and random start.

Everything acts on batches ``(N, H, W, C)`` in [0, 1], per example. Each
update first clips to [0, 1], then projects the perturbation onto the
eps-ball (ART's order); since the ball is centred on a point of the box, the
result lies in both.
"""

import jax
import jax.numpy as jnp

NORMS = ("linf", "l2")
_TINY = 1e-12


def _per_example_l2(x: jax.Array) -> jax.Array:
  return jnp.sqrt(jnp.sum(jnp.square(x), axis=(1, 2, 3), keepdims=True))


def direction(norm: str, grad: jax.Array) -> jax.Array:
  """The steepest-ascent unit step: ``sign(g)`` (linf) or ``g / ||g||_2``."""
  if norm == "linf":
    return jnp.sign(grad)
  return grad / jnp.maximum(_per_example_l2(grad), _TINY)


def project(
  norm: str, eps: jax.typing.ArrayLike, x: jax.Array, x0: jax.Array
) -> jax.Array:
  """Clips `x` to [0, 1], then projects ``x - x0`` onto the eps-ball."""
  delta = jnp.clip(x, 0.0, 1.0) - x0
  if norm == "linf":
    delta = jnp.clip(delta, -eps, eps)
  else:
    scale = jnp.minimum(1.0, eps / jnp.maximum(_per_example_l2(delta), _TINY))
    delta = delta * scale
  return x0 + delta


def random_delta(
  norm: str, eps: jax.typing.ArrayLike, keys: jax.Array, like: jax.Array
) -> jax.Array:
  """A perturbation uniform in the eps-ball, shaped like `like`.

  Example i draws from ``keys[i]`` alone (`keys` is ``(N,)``), so it does not
  depend on the rest of the batch.
  """

  def one(key, x):
    if norm == "linf":
      return jax.random.uniform(key, x.shape, x.dtype, -eps, eps)
    direction_key, radius_key = jax.random.split(key)
    g = jax.random.normal(direction_key, x.shape, x.dtype)
    radius = eps * jax.random.uniform(radius_key, (), x.dtype) ** (1.0 / x.size)
    return radius * g / jnp.maximum(jnp.sqrt(jnp.sum(jnp.square(g))), _TINY)

  return jax.vmap(one)(keys, like)


def random_start(
  norm: str, eps: jax.typing.ArrayLike, keys: jax.Array, x0: jax.Array
) -> jax.Array:
  """A uniform point of the eps-ball around `x0`, clipped to [0, 1]."""
  return project(norm, eps, x0 + random_delta(norm, eps, keys, x0), x0)
