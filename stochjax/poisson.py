"""A Poisson sampler that stays fast under `vmap` and `jit`.

`jax.random.poisson` runs two `while_loop`s over the whole array (Knuth for
rates below 10, Hörmann's transformed rejection above) until the slowest
element finishes; under `vmap` every image pays for the slowest one. Here:

* rates below 10 use the inverse CDF with a fixed number of terms (the
  probability mass beyond it is below float32's uniform resolution), one
  uniform per element and no loop;
* rates of 10 and above use the same transformed rejection (PTRS), but after
  a first full round only the rejected elements (about 11 %) are drawn
  again, gathered into a buffer of a quarter of the elements, until every
  element is accepted; the result is exact.

Measured at 32x32x3 under `vmap` on 300 images of rates up to 256: 888 vs
303 images/s for `jax.random.poisson` (2.9x). At 224x224 the sampler is still
the main cost of `noise_injection` (README, "Defenses at 224²").
"""

import math

import jax
import jax.numpy as jnp

_SMALL_RATE = 10.0
# P(Poisson(10) > 48) ~ 4e-17, far below float32's uniform resolution 2^-24.
_INVERSE_CDF_TERMS = 48
# A round rejects <= ~11%: later rounds redraw only rejections, gathered into
# a buffer of a quarter of the elements (more rejections take more rounds).
_BUFFER_FRACTION = 1 / 4
_MIN_BUFFER = 16


def _inverse_cdf(key, rate):
  """Poisson(rate) for rate < 10 by sequential search of the CDF."""
  u = jax.random.uniform(key, rate.shape, rate.dtype)

  def step(j, carry):
    term, cdf, count = carry
    count = count + (u > cdf).astype(jnp.int32)
    term = term * rate / j
    return term, cdf + term, count

  term = jnp.exp(-rate)
  count = jnp.zeros(rate.shape, jnp.int32)
  return jax.lax.fori_loop(
    1, _INVERSE_CDF_TERMS, step, (term, term, count), unroll=True
  )[2]


def _ptrs_round(u, v, rate):
  """One round of Hörmann's PTRS for rate >= 10: (sample, accepted).

  `u`, `v` are uniform in [0, 1), of `rate`'s shape.
  """
  u = u - 0.5
  b = 0.931 + 2.53 * jnp.sqrt(rate)
  a = -0.059 + 0.02483 * b
  inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
  v_r = 0.9277 - 3.6224 / (b - 2)
  us = 0.5 - jnp.abs(u)
  k = jnp.floor((2 * a / us + b) * u + rate + 0.43)
  quick = (us >= 0.07) & (v <= v_r)
  reject = (k < 0) | ((us < 0.013) & (v > us))
  log_accept = jnp.log(v * inv_alpha / (a / (us * us) + b))
  log_target = -rate + k * jnp.log(rate) - jax.lax.lgamma(k + 1)
  return k, quick | (~reject & (log_accept <= log_target))


def _uniforms(key, index):
  """Two uniforms per element, a function of (key, element index) only."""
  draw = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i), 2))
  return draw(index).T


def _ptrs(key, rate, skip):
  """Poisson(rate) for a flat `rate` >= 10 where not `skip` (0 there).

  Only rejections are drawn again. Round r's uniforms for element i depend
  only on (key, r, i), so which elements share a buffer never changes a draw.
  """
  n = rate.shape[0]
  rate = jnp.where(skip, _SMALL_RATE, rate)
  u, v = jax.random.uniform(jax.random.fold_in(key, 0), (2, n))
  sample, accepted = _ptrs_round(u, v, rate)
  sample, accepted = jnp.where(skip, 0.0, sample), accepted | skip
  size = min(n, max(_MIN_BUFFER, math.ceil(n * _BUFFER_FRACTION)))

  def redraw_rejected(carry):
    r, sample, accepted = carry
    (index,) = jnp.nonzero(~accepted, size=size, fill_value=n)
    u, v = _uniforms(jax.random.fold_in(key, r), index)
    redraw, ok = _ptrs_round(
      u, v, rate.at[index].get(mode="fill", fill_value=1e5)
    )
    target = jnp.where(ok, index, n)  # Index n: dropped.
    sample = sample.at[target].set(redraw, mode="drop")
    return r + 1, sample, accepted.at[target].set(True, mode="drop")

  _, sample, _ = jax.lax.while_loop(
    lambda carry: ~jnp.all(carry[2]), redraw_rejected, (1, sample, accepted)
  )
  return sample


def poisson(key: jax.Array, rate: jax.Array) -> jax.Array:
  """Exact Poisson(rate) draws, float32 counts of `rate`'s shape.

  Args:
    key: a PRNG key.
    rate: float32 rates >= 0, any shape.
  """
  flat = rate.ravel()
  small_key, large_key = jax.random.split(key)
  small = flat < _SMALL_RATE
  from_cdf = _inverse_cdf(small_key, jnp.where(small, flat, 0.0))
  from_ptrs = _ptrs(large_key, flat, small)
  counts = jnp.where(small, from_cdf.astype(flat.dtype), from_ptrs)
  return counts.reshape(rate.shape)
