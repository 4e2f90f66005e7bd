"""Total-variation denoisers: BaRT's Chambolle denoising and Guo et al.'s TV
minimization with random pixel dropout.

Both are iterative (`lax.while_loop`/`fori_loop`), one compiled program for
every draw; both are BPDA identity, as their NumPy originals have no
gradient.

References:
  Chambolle. An Algorithm for Total Variation Minimization and
  Applications. J. Math. Imaging Vis. 2004.
  Chambolle, Pock. A First-Order Primal-Dual Algorithm for Convex Problems
  with Applications to Imaging. J. Math. Imaging Vis. 2011.
  Guo, Rana, Cisse, van der Maaten. Countering Adversarial Images using
  Input Transformations. ICLR 2018. https://arxiv.org/abs/1711.00117
"""

import functools
import math

import jax
import jax.numpy as jnp

from stochjax import types, validation
from stochjax.defenses import core


def _gradient(u: jax.Array) -> jax.Array:
  """Forward differences along every axis, 0 at the far edge: ``(ndim,
  *u.shape)``."""
  return jnp.stack(
    [
      jnp.diff(
        u, axis=axis, append=jax.lax.slice_in_dim(u, -1, None, axis=axis)
      )
      for axis in range(u.ndim)
    ]
  )


def _divergence(p: jax.Array) -> jax.Array:
  """Minus the adjoint of `_gradient`: ``(div p)_i = p_i - p_{i-1}`` per axis,
  with ``p_{-1} = 0`` and the far-edge component ignored."""
  total = jnp.zeros(p.shape[1:], p.dtype)
  for axis in range(p.ndim - 1):
    component = p[axis]
    n = component.shape[axis]
    inner = jax.lax.slice_in_dim(component, 0, n - 1, axis=axis)
    zero = jnp.zeros_like(jax.lax.slice_in_dim(component, 0, 1, axis=axis))
    total += jnp.concatenate([inner, zero], axis) - jnp.concatenate(
      [zero, inner], axis
    )
  return total


def denoise_tv_chambolle(
  image: jax.Array,
  *,
  weight: jax.typing.ArrayLike,
  eps: jax.typing.ArrayLike = 2e-4,
  max_num_iter: int = 200,
) -> jax.Array:
  """Chambolle's projection algorithm for ``min_u 0.5 |u - f|^2 + weight *
  TV(u)`` on an n-d array: `skimage.restoration.denoise_tv_chambolle` with
  ``channel_axis=None`` (the TV couples every axis), including its stopping
  rule (the energy changes by less than ``eps`` times the first energy) and
  iteration cap. ``eps=0`` runs exactly `max_num_iter` iterations.

  Args:
    image: an n-d float32 array (an (H, W) plane, or (H, W, C) as a volume).
    weight: > 0 (may be traced).
    eps: the relative energy tolerance, >= 0 (may be traced).
    max_num_iter: >= 1.

  Returns:
    The denoised array, same shape.
  """
  tau = 1.0 / (2.0 * image.ndim)

  def body(state):
    i, p, energy_init, energy_prev, _, _ = state
    d = -_divergence(p)
    out = image + d
    g = _gradient(out)
    norm = jnp.sqrt(jnp.sum(g**2, axis=0, keepdims=True))
    energy = (jnp.sum(d**2) + weight * jnp.sum(norm)) / image.size
    energy_init = jnp.where(i == 0, energy, energy_init)
    converged = (i > 0) & (jnp.abs(energy_prev - energy) < eps * energy_init)
    p = (p - tau * g) / (1.0 + tau / weight * norm)
    return i + 1, p, energy_init, energy, converged, out

  def cond(state):
    i, *_, converged, _ = state
    return (i < max_num_iter) & ~converged

  zero = jnp.zeros((), image.dtype)
  p = jnp.zeros((image.ndim, *image.shape), image.dtype)
  state = (jnp.zeros((), jnp.int32), p, zero, zero, jnp.array(False), image)
  return jax.lax.while_loop(cond, body, state)[-1]


def masked_tv(
  image: types.Image,
  mask: jax.Array,
  *,
  weight: jax.typing.ArrayLike,
  num_iters: int,
) -> jax.Array:
  """``argmin_u 0.5 |mask * (u - f)|^2 + weight * TV(u)`` per channel
  (isotropic TV), by Chambolle-Pock primal-dual iterations.

  Pixels where `mask` is 0 are dropped from the data term and filled in by
  the TV prior (Guo et al.'s reconstruction). With an all-ones mask this is
  the ROF problem `denoise_tv_chambolle` solves.

  Args:
    image: ``(H, W, C)`` float32.
    mask: ``(H, W)`` in {0, 1}.
    weight: > 0 (may be traced).
    num_iters: >= 1.

  Returns:
    ``(H, W, C)`` float32.
  """
  mask = mask.astype(image.dtype)[..., None]
  step = 0.99 / math.sqrt(8.0)  # tau * sigma * |grad|^2 < 1 in 2-d.
  planes = jnp.moveaxis(image, -1, 0)  # TV per channel, over (H, W).

  def spatial_gradient(u):
    return jax.vmap(_gradient)(u)

  def spatial_divergence(y):
    return jax.vmap(_divergence)(y)

  def body(_, state):
    u, u_bar, y = state
    y = y + step * spatial_gradient(u_bar)
    y = y / jnp.maximum(1.0, jnp.sqrt(jnp.sum(y**2, axis=1, keepdims=True))
                        / weight)  # fmt: skip
    m = jnp.moveaxis(mask, -1, 0)
    u_next = (u + step * spatial_divergence(y) + step * m * planes) / (
      1.0 + step * m
    )
    return u_next, 2.0 * u_next - u, y

  y = jnp.zeros((planes.shape[0], 2, *planes.shape[1:]), image.dtype)
  u, _, _ = jax.lax.fori_loop(0, num_iters, body, (planes, planes, y))
  return jnp.moveaxis(u, 0, -1)


@core.register("tv_minimization", gradient="bpda", ranges={"keep_prob": (0, 1)})
def tv_minimization(
  key: types.PRNGKey,
  image: types.Image,
  *,
  keep_prob: float = 0.5,
  weight: float = 0.03,
  num_iters: int = 100,
) -> types.Image:
  """Guo et al.: drop each pixel with probability 1 - keep_prob, then
  reconstruct the image by TV minimization (`masked_tv`). BPDA identity.

  Args:
    key: the dropout key.
    image: ``(H, W, C)`` float32 in [0, 1].
    keep_prob: in (0, 1].
    weight: the TV weight (Guo et al.'s lambda_TV), > 0.
    num_iters: primal-dual iterations, >= 1.
  """
  if not 0.0 < keep_prob <= 1.0:
    raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}.")
  validation.positive("weight", weight)
  validation.positive("num_iters", num_iters, integer=True)

  def fn(key, image):
    mask = jax.random.bernoulli(key, keep_prob, image.shape[:2])
    out = masked_tv(image, mask, weight=weight, num_iters=num_iters)
    return jnp.clip(out, 0.0, 1.0)

  return core.bpda(fn)(key, image)


@core.register("tv_chambolle", gradient="bpda")
def tv_chambolle(
  key: types.PRNGKey,
  image: types.Image,
  *,
  weight_low: float = 0.05,
  weight_high: float = 0.25,
  max_num_iter: int = 200,
) -> types.Image:
  """BaRT's Chambolle denoising: weight uniform in [weight_low,
  weight_high); with probability 1/2 per channel, otherwise the image as one
  (H, W, C) volume (BaRT's random ``multichannel``). BPDA identity.

  Args:
    key: the parameter key.
    image: ``(H, W, C)`` float32 in [0, 1].
    weight_low, weight_high: 0 < low < high.
    max_num_iter: the iteration cap, >= 1 (skimage's 200); iterations
      stop earlier at skimage's default tolerance.
  """
  validation.positive("weight_low", weight_low)
  if not weight_low < weight_high:
    raise ValueError(f"Need weight_low < weight_high, got {weight_low}, "
                     f"{weight_high}.")  # fmt: skip
  validation.positive("max_num_iter", max_num_iter, integer=True)
  denoise = functools.partial(denoise_tv_chambolle, max_num_iter=max_num_iter)

  def fn(key, image):
    weight_key, joint_key = jax.random.split(key)
    weight = jax.random.uniform(weight_key, (), image.dtype, weight_low,
                                weight_high)  # fmt: skip
    per_channel = jax.vmap(
      lambda plane: denoise(plane, weight=weight), in_axes=-1, out_axes=-1
    )(image)
    joint = denoise(image, weight=weight)
    out = jnp.where(jax.random.bernoulli(joint_key), joint, per_channel)
    return jnp.clip(out, 0.0, 1.0)

  return core.bpda(fn)(key, image)
