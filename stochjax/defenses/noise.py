"""Additive and impulse noise defenses (randomized smoothing, BaRT noise).

Inputs and outputs are one ``(H, W, C)`` float32 image in [0, 1]. Outputs are
clipped to [0, 1] unless a defense says otherwise (``gaussian_noise`` with
``clip=False``, which is randomized smoothing as in Cohen et al.).
"""

import functools

import jax
import jax.numpy as jnp

from stochjax import poisson, types, validation
from stochjax.defenses import core

NOISE_MODES = ("gaussian", "poisson", "salt", "pepper", "s&p", "speckle")


def _clip_straight_through(x: jax.Array) -> jax.Array:
  """Clips to [0, 1] with an identity gradient, as the paper's BPDA does."""
  return core.straight_through(x, jnp.clip(x, 0.0, 1.0))


@core.register("gaussian_noise", gradient="bpda", ranges={"sigma": (0, 1)})
def gaussian_noise(
  key: types.PRNGKey,
  image: types.Image,
  *,
  sigma: float = 0.25,
  clip: bool = True,
) -> types.Image:
  """Adds i.i.d. N(0, sigma^2) noise to every element.

  Args:
    key: the noise key.
    image: ``(H, W, C)`` float32 in [0, 1].
    sigma: the noise *standard deviation* (the paper's code calls it
      "variance"), in [0, 1] pixel units.
    clip: clip the result to [0, 1]. The clip's gradient is the identity
      (BPDA, as in the paper's code); without it the gradient is exact.
      Cohen et al.'s smoothing models were trained without the clip.

  Returns:
    ``(H, W, C)`` float32; in [0, 1] if `clip`.

  References:
    Cohen, Rosenfeld, Kolter. Certified Adversarial Robustness via Randomized
    Smoothing. ICML 2019. https://arxiv.org/abs/1902.02918
  """
  validation.positive("sigma", sigma)
  noisy = image + sigma * jax.random.normal(key, image.shape, image.dtype)
  return _clip_straight_through(noisy) if clip else noisy


def _unique_count(image: jax.Array) -> jax.Array:
  """The number of distinct values, as ``len(np.unique(image))``."""
  # Sorting the bit patterns is ~5x faster than a float sort on XLA:CPU; for
  # non-negative floats (-0.0 mapped to 0.0) their order is the same.
  image = jnp.where(image == 0, 0.0, image)
  values = jnp.sort(jax.lax.bitcast_convert_type(image.ravel(), jnp.int32))
  return 1 + jnp.sum(values[1:] != values[:-1])


def _poisson(key, image):
  # skimage.util.random_noise: scale by the unique-value count rounded up to a
  # power of two, draw Poisson counts, scale back.
  vals = jnp.exp2(jnp.ceil(jnp.log2(_unique_count(image).astype(jnp.float32))))
  return poisson.poisson(key, image * vals) / vals


def _impulse(key, image, *, salt_fraction, amount=0.05):
  flip_key, salt_key = jax.random.split(key)
  flip = jax.random.bernoulli(flip_key, amount, image.shape)
  salt = jax.random.bernoulli(salt_key, salt_fraction, image.shape)
  return jnp.where(flip, salt.astype(image.dtype), image)


_STD = 0.1  # skimage's default var=0.01.


def _gaussian(key, image):
  return image + _STD * jax.random.normal(key, image.shape, image.dtype)


def _speckle(key, image):
  return image + image * _STD * jax.random.normal(key, image.shape, image.dtype)


# The six skimage ``random_noise`` modes at their defaults, in NOISE_MODES order.
_BRANCHES = (
  _gaussian,
  _poisson,
  functools.partial(_impulse, salt_fraction=1.0),
  functools.partial(_impulse, salt_fraction=0.0),
  functools.partial(_impulse, salt_fraction=0.5),
  _speckle,
)


def inject_noise(
  key: types.PRNGKey, image: types.Image, *, mode: jax.typing.ArrayLike
) -> types.Image:
  """Applies noise mode `mode` (an index into `NOISE_MODES`), then clips.

  `mode` may be a traced integer (see `core.switch` for how a batch of
  modes runs).
  """
  noisy = core.switch(mode, _BRANCHES, key, image)
  return jnp.clip(noisy, 0.0, 1.0)


def _noise_injection(key: types.PRNGKey, image: types.Image) -> types.Image:
  mode_key, noise_key = jax.random.split(key)
  mode = jax.random.randint(mode_key, (), 0, len(NOISE_MODES))
  return inject_noise(noise_key, image, mode=mode)


_noise_injection_bpda = core.bpda(_noise_injection)


@core.register("noise_injection", gradient="bpda")
def noise_injection(key: types.PRNGKey, image: types.Image) -> types.Image:
  """BaRT noise injection: one of six skimage noise modes, uniformly per image.

  Modes (skimage ``random_noise`` defaults, as the paper's
  ``NoiseInjectionPyTorch``): gaussian (std 0.1), poisson (unique-values
  rule), salt, pepper, s&p (each element flipped with probability 0.05;
  s&p half salt, half pepper), speckle (``x + x * 0.1 * N(0, 1)``). The result
  is clipped to [0, 1]. The gradient is BPDA identity.

  Args:
    key: the key for the mode and the noise.
    image: ``(H, W, C)`` float32 in [0, 1].

  Returns:
    ``(H, W, C)`` float32 in [0, 1].

  References:
    Raff, Sylvester, Forsyth, McLean. Barrage of Random Transforms for
    Adversarially Robust Defense. CVPR 2019.
  """
  return _noise_injection_bpda(key, image)
