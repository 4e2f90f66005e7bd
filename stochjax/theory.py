"""The paper's Section 5 model: closed forms (Eqs. 4-8) and a simulation.

Labels y in {-1, +1} are balanced, ``x | y ~ N(y, 1)``, and the adversary
moves x by eps toward the boundary (``x - y eps``, the worst case for every
classifier here). Four classifiers ("stages"):

* ``"undefended"``: ``F(x) = sgn(x)`` (Eq. 4);
* ``"defended"``: ``F_theta(x) = sgn(x + theta)``, ``theta ~ N(1, sigma^2)``
  (Eq. 5): the randomness shifts the decision boundary;
* ``"trained"``: ``F+_theta(x) = sgn(x + theta - 1)`` (Eq. 6), the
  classifier made invariant to the mean of the randomness by training;
* ``"voted"``: the majority vote of n draws of F+ (Eq. 7), which tends to
  the perfectly invariant ``sgn(x)`` (Eq. 8) as n grows.

Robust accuracy is ``P[correct after attack and before] / P[correct
before]``. The closed forms hold when one theta serves both evaluations of
a sample (as `simulate` does for "defended" and "trained"); the finite-n
vote draws fresh thetas for each evaluation, so `voted_accuracy` and
`simulate(..., "voted", num_votes=n)` give the vote's own numbers, which
converge to Eq. 8.

Caveat (official_code.md §9): the paper's ordering defended > trained >
undefended holds for every sigma only once eps >= ~0.31.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

STAGES = ("undefended", "defended", "trained", "voted")


def _phi(t, sigma=0.0):
  """The CDF of N(0, 1 + sigma^2) at t (Phi' in the paper for sigma > 0)."""
  return scipy.stats.norm.cdf(np.asarray(t) / math.sqrt(1.0 + sigma**2))


def _check(stage: str, eps: float, sigma: float):
  if stage not in STAGES:
    raise ValueError(f"Unknown stage {stage!r}; valid: {', '.join(STAGES)}.")
  if not (math.isfinite(eps) and eps >= 0):
    raise ValueError(f"eps must be a finite number >= 0, got {eps}.")
  if not (math.isfinite(sigma) and sigma >= 0):
    raise ValueError(f"sigma must be a finite number >= 0, got {sigma}.")


def clean_accuracy(stage: str, sigma: float) -> float:
  """P[correct] without attack: Phi(1), (1/2 + Phi'(2)) / 2, Phi'(1), and
  Phi(1) for the vote's limit."""
  _check(stage, 0.0, sigma)
  if stage in ("undefended", "voted"):
    return float(_phi(1.0))
  if stage == "defended":
    return float((_phi(0.0, sigma) + _phi(2.0, sigma)) / 2)
  return float(_phi(1.0, sigma))


def robust_accuracy(stage: str, eps: float, sigma: float) -> float:
  """The closed forms: Eq. 4 ``Phi(1 - eps) / Phi(1)``; Eq. 5
  ``[Phi'(-eps) + Phi'(2 - eps)] / [Phi'(0) + Phi'(2)]``; Eq. 6
  ``Phi'(1 - eps) / Phi'(1)``; "voted" the limit of Eq. 7, equal to Eq. 8
  ``Phi(1 - eps) / Phi(1)``.

  Args:
    stage: one of `STAGES`.
    eps: the adversary's budget, >= 0.
    sigma: the randomness' standard deviation, >= 0 (unused by
      "undefended" and "voted").
  """
  _check(stage, eps, sigma)
  if stage in ("undefended", "voted"):
    return float(_phi(1.0 - eps) / _phi(1.0))
  if stage == "defended":
    return float(
      (_phi(-eps, sigma) + _phi(2.0 - eps, sigma))
      / (_phi(0.0, sigma) + _phi(2.0, sigma))
    )
  return float(_phi(1.0 - eps, sigma) / _phi(1.0, sigma))


def voted_accuracy(eps: float, sigma: float, num_votes: int) -> float:
  """The n-vote classifier's robust accuracy with fresh draws for the clean
  and the attacked evaluation, by numerical integration over x (class +1;
  the model is symmetric). A vote is correct when more than n/2 draws of
  ``sgn(x + theta - 1)`` are +1, each with probability Phi(x / sigma).

  Args:
    eps: >= 0.
    sigma: >= 0; at 0 every draw is sgn(x), so the vote is Eq. 4.
    num_votes: odd, >= 1.
  """
  _check("voted", eps, sigma)
  if not (isinstance(num_votes, int) and num_votes >= 1 and num_votes % 2):
    raise ValueError(f"num_votes must be an odd integer, got {num_votes}.")
  if sigma == 0:
    return robust_accuracy("undefended", eps, 0.0)
  x = np.linspace(1.0 - 12.0, 1.0 + 12.0, 48001)
  density = scipy.stats.norm.pdf(x - 1.0)

  def correct(position):
    p = scipy.stats.norm.cdf(position / sigma)
    return scipy.stats.binom.sf(num_votes // 2, num_votes, p)

  clean = correct(x)
  both = clean * correct(x - eps)
  return float(
    np.trapezoid(both * density, x) / np.trapezoid(clean * density, x)
  )


@functools.partial(jax.jit, static_argnames=("stage", "num_samples",
                                             "num_votes", "chunk"))  # fmt: skip
def _simulate(key, eps, sigma, *, stage, num_samples, num_votes, chunk):
  num_chunks = num_samples // chunk

  def classify(x, theta):
    if stage == "undefended":
      return jnp.sign(x)
    if stage == "defended":
      return jnp.sign(x + theta)
    if stage == "trained":
      return jnp.sign(x + theta - 1.0)
    # "voted": theta has a trailing axis of n draws.
    return jnp.sign(jnp.mean(jnp.sign(x[:, None] + theta - 1.0), axis=-1))

  def draw_theta(key):
    shape = (chunk, num_votes) if stage == "voted" else (chunk,)
    return 1.0 + sigma * jax.random.normal(key, shape)

  def body(totals, key):
    label_key, x_key, clean_key, attack_key = jax.random.split(key, 4)
    y = jnp.where(jax.random.bernoulli(label_key, 0.5, (chunk,)), 1.0, -1.0)
    x = y + jax.random.normal(x_key, (chunk,))
    clean_theta = draw_theta(clean_key)
    # The closed forms share theta between the two evaluations; the vote
    # draws fresh ones (a new prediction is a new set of draws).
    attack_theta = draw_theta(attack_key) if stage == "voted" else clean_theta
    clean = classify(x, clean_theta) == y
    attacked = classify(x - y * eps, attack_theta) == y
    both = jnp.sum(clean & attacked)
    return totals + jnp.stack([jnp.sum(clean), both]), None

  totals, _ = jax.lax.scan(
    body, jnp.zeros(2, jnp.int32), jax.random.split(key, num_chunks)
  )
  return totals


def simulate(
  key,
  stage: str,
  eps: float,
  sigma: float,
  *,
  num_samples: int = 1_000_000,
  num_votes: int = 1,
  chunk: int = 100_000,
) -> dict:
  """Monte Carlo of one stage: ``{"clean", "robust", "stderr"}``.

  Args:
    key: a PRNG key.
    stage: one of `STAGES`; "voted" uses `num_votes` fresh draws per
      evaluation, the others one theta shared by both evaluations.
    eps, sigma: >= 0.
    num_samples: a multiple of `chunk` (rounded down to one).
    num_votes: odd, for "voted".
    chunk: samples per scan step (bounds memory at chunk x num_votes).
  """
  _check(stage, eps, sigma)
  if stage == "voted" and not (num_votes >= 1 and num_votes % 2):
    raise ValueError(f"num_votes must be odd and >= 1, got {num_votes}.")
  chunk = min(chunk, num_samples)
  if chunk < 1:
    raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
  num_samples -= num_samples % chunk
  clean, both = np.asarray(
    _simulate(key, jnp.float32(eps), jnp.float32(sigma), stage=stage,
              num_samples=num_samples, num_votes=num_votes, chunk=chunk)
  )  # fmt: skip
  robust = both / clean
  return {
    "clean": float(clean / num_samples),
    "robust": float(robust),
    "stderr": float(math.sqrt(robust * (1 - robust) / clean)),
  }
