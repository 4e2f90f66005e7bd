"""Randomized smoothing: `predict` with abstention and `certify` (Cohen et al.).

The smoothed classifier g(x) = argmax_c P(f(x + d) = c), d ~ N(0, sigma^2 I)
(noise in [0, 1] pixel units, not clipped, as Cohen et al. trained it).
Class counts accumulate on device, batched over images and chunked over
draws (`stochjax.voting.vote_counts`); the statistics run on the host.
Cohen et al.'s reference code handles one image at a time.

Theorem (Cohen et al., Thm. 1): if P(f(x + d) = c_A) >= p_A > 1/2, then g
predicts c_A within the L2 ball of radius sigma * Phi^-1(p_A) around x.

References:
  Cohen, Rosenfeld, Kolter. Certified Adversarial Robustness via Randomized
  Smoothing. ICML 2019. https://arxiv.org/abs/1902.02918
"""

import functools
from typing import NamedTuple

import jax
import numpy as np
from scipy import stats

from stochjax import types, validation
from stochjax.defenses import noise
from stochjax.voting import vote_counts

ABSTAIN = -1


class Certificate(NamedTuple):
  """Per-image certification results."""

  labels: np.ndarray  # (N,) int, ABSTAIN where p_A's lower bound < 1/2.
  radius: np.ndarray  # (N,) float L2 radius, 0 where abstaining.
  p_lower: np.ndarray  # (N,) one-sided Clopper-Pearson lower bound on p_A.


def _check(sigma: float, alpha: float, **counts: int) -> None:
  validation.positive("sigma", sigma)
  if not (isinstance(alpha, float) and 0.0 < alpha < 1.0):
    raise ValueError(f"alpha must be a float in (0, 1), got {alpha!r}.")
  for name, value in counts.items():
    validation.positive(name, value, integer=True)


def _counts(key, logits_fn, images, *, sigma, num, chunk_size) -> np.ndarray:
  defense = functools.partial(noise.gaussian_noise, sigma=sigma, clip=False)
  return np.asarray(
    vote_counts(
      key,
      logits_fn,
      images,
      defense=defense,
      num_votes=num,
      chunk_size=chunk_size,
    )
  )


def binomial_p_value(successes: np.ndarray, trials: np.ndarray) -> np.ndarray:
  """Two-sided exact binomial test of p = 1/2, vectorized (scipy's binomtest).

  With p = 1/2 the distribution is symmetric, so the p-value is twice the
  smaller tail, capped at 1.
  """
  successes, trials = np.asarray(successes), np.asarray(trials)
  tail = stats.binom.cdf(np.minimum(successes, trials - successes), trials, 0.5)
  return np.minimum(1.0, 2.0 * tail)


def lower_confidence_bound(successes, trials, alpha: float) -> np.ndarray:
  """One-sided (1 - alpha) Clopper-Pearson lower bound on a proportion."""
  successes = np.asarray(successes, np.float64)
  bound = stats.beta.ppf(alpha, successes, trials - successes + 1)
  return np.where(successes > 0, bound, 0.0)


def predict(
  key: types.PRNGKey,
  logits_fn: types.LogitsFn,
  images: types.Batch,
  *,
  sigma: float,
  num_samples: int,
  alpha: float = 0.001,
  chunk_size: int = 100,
) -> np.ndarray:
  """Cohen et al.'s PREDICT: the top class, or ABSTAIN when unsure.

  Args:
    key: the noise key.
    logits_fn: the base classifier ``(N, H, W, C) -> (N, K)``.
    images: ``(N, H, W, C)`` float32 in [0, 1].
    sigma: noise standard deviation, in [0, 1] pixel units.
    num_samples: n, noise draws per image.
    alpha: the test's level; a wrong non-abstaining answer has probability
      at most alpha.
    chunk_size: draws evaluated at once.

  Returns:
    ``(N,)`` int labels, ABSTAIN (-1) where the two top counts do not differ
    significantly (two-sided binomial test, p-value > alpha).
  """
  _check(sigma, alpha, num_samples=num_samples, chunk_size=chunk_size)
  counts = _counts(
    key, logits_fn, images, sigma=sigma, num=num_samples, chunk_size=chunk_size
  )
  order = np.argsort(-counts, axis=-1, kind="stable")
  top, runner_up = order[:, 0], order[:, 1]
  n_top = np.take_along_axis(counts, top[:, None], -1)[:, 0]
  n_runner = np.take_along_axis(counts, runner_up[:, None], -1)[:, 0]
  p_value = binomial_p_value(n_top, n_top + n_runner)
  return np.where(p_value > alpha, ABSTAIN, top).astype(np.int64)


def certify(
  key: types.PRNGKey,
  logits_fn: types.LogitsFn,
  images: types.Batch,
  *,
  sigma: float,
  num_select: int = 100,
  num_estimate: int = 100_000,
  alpha: float = 0.001,
  chunk_size: int = 1000,
) -> Certificate:
  """Cohen et al.'s CERTIFY: a class and an L2 radius where g is constant.

  Args:
    key: split into the selection and the estimation noise.
    logits_fn: the base classifier ``(N, H, W, C) -> (N, K)``.
    images: ``(N, H, W, C)`` float32 in [0, 1].
    sigma: noise standard deviation, in [0, 1] pixel units.
    num_select: n0, draws that choose the candidate class.
    num_estimate: n, independent draws that bound its probability.
    alpha: the certificate fails with probability at most alpha.
    chunk_size: draws evaluated at once.

  Returns:
    A `Certificate`: radius ``sigma * Phi^-1(p_lower)`` where the lower
    bound is at least 1/2, else ABSTAIN and radius 0.
  """
  _check(
    sigma,
    alpha,
    num_select=num_select,
    num_estimate=num_estimate,
    chunk_size=chunk_size,
  )
  select_key, estimate_key = jax.random.split(key)
  common = dict(sigma=sigma, chunk_size=chunk_size)
  candidate = np.argmax(
    _counts(select_key, logits_fn, images, num=num_select, **common), -1
  )
  counts = _counts(estimate_key, logits_fn, images, num=num_estimate, **common)
  n_candidate = np.take_along_axis(counts, candidate[:, None], -1)[:, 0]
  p_lower = lower_confidence_bound(n_candidate, num_estimate, alpha)
  certified = p_lower >= 0.5
  radius = np.where(
    certified, sigma * stats.norm.ppf(np.clip(p_lower, 0.5, 1.0)), 0.0
  )
  labels = np.where(certified, candidate, ABSTAIN).astype(np.int64)
  return Certificate(labels, radius, p_lower)
