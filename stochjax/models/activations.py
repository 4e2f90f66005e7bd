"""A ResNet's activation, by spec: ReLU, or a defense living in the network.

* ``"relu"``: the standard network.
* ``"sap(fraction=1.0)"``: stochastic activation pruning (Dhillon et al.,
  ICLR 2018) after each ReLU. Per example and layer, with the layer's
  activations ``a`` (n of them) and ``p_i = |a_i| / sum_j |a_j|``, draw
  ``r = ceil(fraction * n)`` indices with replacement from ``p``; keep the
  drawn activations, scaled by ``1 / (1 - (1 - p_i)^r)`` (the probability
  that i is drawn at least once), and zero the rest, so the layer is
  unbiased: ``E[out_i] = a_i``. Followed: the paper's Algorithm 1 and
  Athalye et al.'s re-implementation (obfuscated-gradients/sap); gradients
  are autodiff's through the kept activations and their scale for the drawn
  sample (the draw itself has none).
* ``"kwta(ratio=0.1)"``: k-winners-take-all (Xiao et al., ICLR 2020),
  replacing the ReLU in every residual block (the stem keeps its ReLU, as
  in the paper's released SparseResNet18): per example, the
  ``k = int(ratio * H * W * C)`` largest activations of the layer pass,
  the rest are zeroed (the "vol" variant the official code attacks).
  Deterministic; its gradient is that of the kept units.

A stochastic activation draws example i's randomness from its own key
(``activation_keys[i]``, passed by `stochjax.models.stochastic`, folded
with the layer's place in the network), so a model's randomness follows
the same per-example key discipline as a defense's; without keys, from the
Flax RNG stream `RNG_STREAM`.
"""

import functools
import math
import zlib

import flax.linen as nn
import jax
import jax.numpy as jnp

from stochjax import prng
from stochjax import registry as registry_lib

RNG_STREAM = "activation"
REGISTRY = registry_lib.Registry("activation")


@REGISTRY.register("relu", stochastic=False, in_stem=True, ranges={})
def relu(x, key):
  """The standard activation."""
  del key
  return nn.relu(x)


def _prune_one(key, a, fraction):
  """SAP on one example's activations `a` (any shape)."""
  flat = jnp.abs(a.reshape(-1)).astype(jnp.float32)
  n = flat.size
  draws = max(1, math.ceil(fraction * n))
  total = jnp.sum(flat)
  p = flat / jnp.where(total > 0, total, 1.0)
  # r draws with replacement by inverting the CDF: O(r log n), where
  # Gumbel-max (jax.random.categorical) would build an (r, n) array.
  cdf = jnp.cumsum(jax.lax.stop_gradient(p))
  u = jax.random.uniform(key, (draws,), maxval=cdf[-1])
  picked = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), n - 1)
  kept = jnp.zeros(n, bool).at[picked].set(True) & (flat > 0)
  # P(i drawn at least once) = 1 - (1 - p_i)^r, computed stably.
  keep_probability = -jnp.expm1(draws * jnp.log1p(-jnp.minimum(p, 1.0)))
  scale = 1.0 / jnp.where(kept, keep_probability, 1.0)
  out = jnp.where(kept, a.reshape(-1) * scale, 0.0)
  return out.reshape(a.shape).astype(a.dtype)


@REGISTRY.register(
  "sap", stochastic=True, in_stem=True, ranges={"fraction": (0.0, 10.0, "open")}
)
def sap(x, key, *, fraction: float = 1.0):
  """ReLU, then stochastic activation pruning of each row of `x` (N, ...)
  with `fraction` x (activations per row) draws; row i draws from
  ``key[i]`` given ``(N,)`` keys, else from ``fold_in(key, i)``."""
  x = nn.relu(x)
  keys = prng.per_example(key, x.shape[0])
  return jax.vmap(functools.partial(_prune_one, fraction=fraction))(keys, x)


@REGISTRY.register(
  "kwta", stochastic=False, in_stem=False, ranges={"ratio": (0.0, 1.0, "open")}
)
def kwta(x, key, *, ratio: float = 0.1):
  """The ``int(ratio * H * W * C)`` largest activations of each row of `x`
  (N, H, W, C) pass (at least one); the rest are zeroed."""
  del key
  flat = x.reshape(x.shape[0], -1)
  k = max(1, int(ratio * flat.shape[1]))
  keys = _ordered(jax.lax.stop_gradient(flat))
  kept = keys >= _kth_largest(keys, k)[:, None]
  return jnp.where(kept, flat, 0.0).reshape(x.shape)


def _ordered(x):
  """float32 -> uint32 keys in the same order (negatives flipped)."""
  bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
  sign = jnp.uint32(0x80000000)
  return jnp.where(bits >= sign, ~bits, bits | sign)


def _kth_largest(keys, k: int):
  """``(N,)`` the k-th largest of each row of uint32 `keys` (N, n), exactly:
  32 bisection steps on the key, each a count; on a CPU 13x faster than
  `jax.lax.top_k` at n = 16,384, k = 1,638, and equal to it."""

  def halve(_, bounds):
    low, high = bounds
    gap = high - low
    mid = low + (gap >> 1) + (gap & 1)  # ceil((low + high) / 2), no overflow
    enough = jnp.sum(keys >= mid[:, None], axis=1) >= k
    return jnp.where(enough, mid, low), jnp.where(enough, high, mid - 1)

  low, _ = jax.lax.fori_loop(
    0, 32, halve, (jnp.min(keys, axis=1), jnp.max(keys, axis=1))
  )
  return low


@functools.cache
def _resolved(spec: str):
  call = registry_lib.parse(spec)
  if len(call) != 1:
    raise ValueError(f"Expected one activation, got {spec!r}.")
  entry = REGISTRY.entry(call[0].name)
  return REGISTRY.bind(call[0]), entry.info["stochastic"], entry.info["in_stem"]


def check(spec: str) -> None:
  """Raises ValueError for an unknown activation or a bad argument."""
  _resolved(spec)


def is_stochastic(spec: str) -> bool:
  """Whether the activation draws randomness (needs the RNG stream)."""
  return _resolved(spec)[1]


def _place(module: nn.Module, site) -> int:
  """A call's place in the network: `module`'s path and `site`."""
  return zlib.crc32(f"{'/'.join(module.path)}:{site}".encode())


def noise(module: nn.Module, x, sigma: float, *, keys=None, site=0):
  """Random Self-Ensemble's noise layer (Liu et al., ECCV 2018): ``x +
  N(0, sigma^2)``, elementwise, in training and at test. Row i draws from
  ``keys[i]`` folded with this call's place (`module`'s path and `site`),
  or, without `keys`, from the module's `RNG_STREAM`; ``sigma = 0`` is the
  identity. Additive, so its gradient is exact (the identity)."""
  if not sigma:
    return x
  if keys is None:
    return x + sigma * jax.random.normal(module.make_rng(RNG_STREAM), x.shape,
                                         x.dtype)  # fmt: skip
  draw = jax.vmap(lambda k, row: jax.random.normal(k, row.shape, row.dtype))
  return x + sigma * draw(prng.fold_each(keys, _place(module, site)), x)


def apply(module: nn.Module, spec: str, x, *, keys=None, site: int = 0,
          stem: bool = False):  # fmt: skip
  """The activation `spec` on `x` (N, ...) inside `module`; in the stem,
  activations that the original networks keep out of it (k-WTA) are a ReLU.

  A stochastic activation draws row i from ``keys[i]`` folded with this
  call's place in the network (`module`'s path and `site`, its call index
  within the module), or, without `keys`, from the module's `RNG_STREAM`.
  """
  fn, stochastic, in_stem = _resolved(spec)
  if stem and not in_stem:
    return nn.relu(x)
  if not stochastic:
    return fn(x, None)
  if keys is None:
    return fn(x, module.make_rng(RNG_STREAM))
  return fn(x, prng.fold_each(keys, _place(module, site)))
