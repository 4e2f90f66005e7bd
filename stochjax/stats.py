"""Exact statistics for attack success rates: intervals and comparisons.

A success rate over n samples is a binomial proportion; with the tens to
hundreds of samples a CPU run affords, one sample moves it by several
points, so every rate is reported with its exact (Clopper-Pearson)
interval and every comparison with an exact test:

* `paired_test`: the same samples attacked two ways (EOT vs no EOT on one
  set of retained images): exact two-sided McNemar, a binomial test on the
  discordant pairs.
* `unpaired_test`: different sample sets (before vs after fine-tuning,
  where the retained samples differ): two-sided Fisher exact test.

`compare` packages either as a record with a verdict that names the
significantly stronger side at level `alpha`, else "tie" (the audit's
sanity checks; the paper's claims are decided by `stochjax.analysis`).

The analysis plan's statistics (docs/analysis_plan.md):

* `wilson_interval`; `paired_difference_interval` (Newcombe 1998's hybrid
  score interval for paired proportions, his method 10) and
  `unpaired_difference_interval` (Newcombe's method 10 for independent
  samples);
* `mcnemar_one_sided`: the exact one-sided McNemar test (superiority);
* `holm`: Holm's step-down adjustment;
* `sign_flip_test`: the exact one-sample sign-flip permutation test of an
  integer-valued per-image difference (by convolution, not enumeration),
  with `bootstrap_interval` for its mean.
"""

from typing import Any

import numpy as np
import scipy.stats

VERDICTS = ("a", "b", "tie")


def _count(successes: int, n: int) -> tuple[int, int]:
  if not (
    isinstance(successes, int | np.integer) and isinstance(n, int | np.integer)
  ):
    raise ValueError(
      f"successes and n must be integers, got {successes!r}, {n!r}."
    )
  if not 0 <= successes <= n:
    raise ValueError(f"Need 0 <= successes <= n, got {successes}, {n}.")
  return int(successes), int(n)


def rate_interval(
  successes: int, n: int, level: float = 0.95
) -> tuple[float, float]:
  """The exact (Clopper-Pearson) two-sided interval of a binomial rate.

  Args:
    successes: k, samples where the attack met its goal.
    n: samples attacked (the retained ones); 0 gives (0, 1).
    level: the confidence level, in (0, 1).

  Returns:
    ``(low, high)`` in [0, 1].

  Raises:
    ValueError: counts that are not integers with 0 <= k <= n, or a level
      outside (0, 1).
  """
  k, n = _count(successes, n)
  if not 0.0 < level < 1.0:
    raise ValueError(f"level must lie in (0, 1), got {level}.")
  if n == 0:
    return 0.0, 1.0
  tail = (1.0 - level) / 2
  low = 0.0 if k == 0 else float(scipy.stats.beta.ppf(tail, k, n - k + 1))
  high = 1.0 if k == n else float(scipy.stats.beta.ppf(1 - tail, k + 1, n - k))
  return low, high


def discordant(
  a: np.typing.ArrayLike, b: np.typing.ArrayLike
) -> tuple[int, int]:
  """``(only_a, only_b)``: pairs where only `a`, or only `b`, succeeded.

  Raises:
    ValueError: `a` and `b` are not boolean vectors of one length.
  """
  a, b = np.asarray(a), np.asarray(b)
  if a.shape != b.shape or a.ndim != 1 or a.dtype != bool or b.dtype != bool:
    raise ValueError(
      "Paired outcomes must be two boolean vectors of one length, got "
      f"{a.dtype} {a.shape} and {b.dtype} {b.shape}."
    )
  return int(np.sum(a & ~b)), int(np.sum(~a & b))


def paired_test(a: np.typing.ArrayLike, b: np.typing.ArrayLike) -> float:
  """Exact two-sided McNemar p-value for per-sample outcomes `a`, `b`.

  Under the null each discordant pair is equally likely to favour either
  side: p is the two-sided binomial test of ``only_a`` out of
  ``only_a + only_b`` at 1/2 (1 when there is no discordant pair).
  """
  only_a, only_b = discordant(a, b)
  if only_a + only_b == 0:
    return 1.0
  return float(scipy.stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def unpaired_test(
  successes_a: int, n_a: int, successes_b: int, n_b: int
) -> float:
  """Two-sided Fisher exact p-value for two rates on different samples."""
  k_a, n_a = _count(successes_a, n_a)
  k_b, n_b = _count(successes_b, n_b)
  table = [[k_a, n_a - k_a], [k_b, n_b - k_b]]
  return float(scipy.stats.fisher_exact(table, alternative="two-sided").pvalue)


def side(label: str, successes: int, n: int, level: float = 0.95) -> dict:
  """One compared rate: ``{"label", "successes", "n", "rate", "ci"}``."""
  k, n = _count(successes, n)
  return {
    "label": label,
    "successes": k,
    "n": n,
    "rate": k / n if n else float("nan"),
    "ci": list(rate_interval(k, n, level)),
  }


def verdict(p_value: float, rate_a: float, rate_b: float, alpha: float) -> str:
  """ "a" or "b" (the higher rate) when ``p_value < alpha``, else "tie"."""
  if p_value < alpha and rate_a != rate_b:
    return "a" if rate_a > rate_b else "b"
  return "tie"


def compare(
  label_a: str,
  outcomes_a: np.typing.ArrayLike,
  label_b: str,
  outcomes_b: np.typing.ArrayLike,
  *,
  paired: bool,
  alpha: float = 0.05,
  **fields: Any,
) -> dict:
  """A comparison record: both rates with intervals, the exact test, the
  discordant counts (paired only), the p-value and the verdict.

  Args:
    label_a, outcomes_a: side a's name and per-sample boolean outcomes.
    label_b, outcomes_b: side b's.
    paired: the same samples in the same order (McNemar), else Fisher.
    alpha: the test's level.
    **fields: extra fields of the record (claim, experiment, defense, goal).

  Returns:
    ``fields | {"a", "b", "test", "p_value", "verdict"}`` (and ``only_a``,
    ``only_b`` when paired).
  """
  a, b = np.asarray(outcomes_a, bool), np.asarray(outcomes_b, bool)
  record = dict(fields)
  record["a"] = side(label_a, int(a.sum()), a.size)
  record["b"] = side(label_b, int(b.sum()), b.size)
  if paired:
    record["test"] = "mcnemar"
    record["only_a"], record["only_b"] = discordant(a, b)
    record["p_value"] = paired_test(a, b)
  else:
    record["test"] = "fisher"
    record["p_value"] = unpaired_test(
      int(a.sum()), a.size, int(b.sum()), b.size
    )
  record["verdict"] = verdict(
    record["p_value"], record["a"]["rate"], record["b"]["rate"], alpha
  )
  return record


def format_rate(successes: int, n: int, level: float = 0.95) -> str:
  """``"57.1 % [41.0, 72.3] (16/28)"``: a rate, its interval and counts."""
  if n == 0:
    return "– (0 samples)"
  low, high = rate_interval(successes, n, level)
  return (
    f"{100 * successes / n:.1f} % [{100 * low:.1f}, {100 * high:.1f}] "
    f"({successes}/{n})"
  )


def _z(level: float) -> float:
  if not 0.0 < level < 1.0:
    raise ValueError(f"level must lie in (0, 1), got {level}.")
  return float(scipy.stats.norm.ppf(0.5 + level / 2))


def wilson_interval(
  successes: int, n: int, level: float = 0.95
) -> tuple[float, float]:
  """Wilson's score interval of a binomial rate ((0, 1) for n = 0)."""
  k, n = _count(successes, n)
  z = _z(level)
  if n == 0:
    return 0.0, 1.0
  p = k / n
  centre = p + z * z / (2 * n)
  half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  scale = 1 + z * z / n
  return max(0.0, (centre - half) / scale), min(1.0, (centre + half) / scale)


def paired_difference_interval(
  a: np.typing.ArrayLike, b: np.typing.ArrayLike, level: float = 0.95
) -> tuple[float, float, float]:
  """``(estimate, low, high)`` of rate(b) - rate(a) on paired outcomes:
  Newcombe's (1998) hybrid score interval, his method 10 (Wilson limits
  of both margins, combined with the phi correlation, continuity-corrected
  towards 0 when positive).

  Raises:
    ValueError: `a`, `b` not boolean vectors of one length.
  """
  only_a, only_b = discordant(a, b)
  a, b = np.asarray(a), np.asarray(b)
  n = a.size
  if n == 0:
    return float("nan"), -1.0, 1.0
  both = int(np.sum(a & b))
  neither = n - both - only_a - only_b
  p1, p2 = (both + only_b) / n, (both + only_a) / n
  l1, u1 = wilson_interval(both + only_b, n, level)
  l2, u2 = wilson_interval(both + only_a, n, level)
  margins = (
    (both + only_b) * (neither + only_a) * (both + only_a) * (neither + only_b)
  )
  cross = both * neither - only_a * only_b
  if margins == 0 or 0 <= cross <= n / 2:
    phi = 0.0
  else:
    phi = (cross - n / 2 if cross > n / 2 else cross) / np.sqrt(float(margins))
  estimate = p1 - p2
  down = (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)
  up = (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)
  return (
    float(estimate),
    float(max(-1.0, estimate - np.sqrt(max(down, 0.0)))),
    float(min(1.0, estimate + np.sqrt(max(up, 0.0)))),
  )


def unpaired_difference_interval(
  successes_b: int, n_b: int, successes_a: int, n_a: int, level: float = 0.95
) -> tuple[float, float, float]:
  """``(estimate, low, high)`` of rate_b - rate_a on independent samples:
  Newcombe's (1998) hybrid score interval, his method 10 (square and add
  of the Wilson limits)."""
  k_b, n_b = _count(successes_b, n_b)
  k_a, n_a = _count(successes_a, n_a)
  if not (n_a and n_b):
    return float("nan"), -1.0, 1.0
  p_b, p_a = k_b / n_b, k_a / n_a
  l_b, u_b = wilson_interval(k_b, n_b, level)
  l_a, u_a = wilson_interval(k_a, n_a, level)
  estimate = p_b - p_a
  low = estimate - np.sqrt((p_b - l_b) ** 2 + (u_a - p_a) ** 2)
  high = estimate + np.sqrt((u_b - p_b) ** 2 + (p_a - l_a) ** 2)
  return float(estimate), float(max(-1.0, low)), float(min(1.0, high))


def mcnemar_one_sided(a: np.typing.ArrayLike, b: np.typing.ArrayLike) -> float:
  """Exact one-sided McNemar p-value of "b succeeds more often than a": the
  binomial tail ``P(X >= only_b)``, X ~ Bin(only_a + only_b, 1/2) (1 when
  no pair is discordant)."""
  only_a, only_b = discordant(a, b)
  if only_a + only_b == 0:
    return 1.0
  return float(scipy.stats.binom.sf(only_b - 1, only_a + only_b, 0.5))


def holm(p_values: np.typing.ArrayLike) -> np.ndarray:
  """Holm's (1979) step-down adjusted p-values, in the input's order: the
  i-th smallest p times (m - i + 1), made non-decreasing, capped at 1."""
  p = np.asarray(p_values, float)
  if p.ndim != 1 or np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
    raise ValueError(f"Holm needs a vector of p-values in [0, 1], got {p}.")
  m = p.size
  order = np.argsort(p, kind="stable")
  adjusted = np.maximum.accumulate(p[order] * (m - np.arange(m)))
  out = np.empty(m)
  out[order] = np.minimum(adjusted, 1.0)
  return out


def _integers(values: np.typing.ArrayLike) -> np.ndarray:
  v = np.asarray(values)
  if v.ndim != 1 or not (np.issubdtype(v.dtype, np.integer) or v.dtype == bool):
    raise ValueError(
      f"Need a vector of integer per-image values, got {v.dtype} {v.shape}."
    )
  return v.astype(np.int64)


def sign_flip_test(values: np.typing.ArrayLike) -> float:
  """Exact one-sided p-value of "the mean of `values` exceeds 0": under
  the null each value's sign is a fair coin (a symmetric per-image
  difference), so p = P(sum of s_i |v_i| >= sum v_i) over the 2^n sign
  vectors, counted by convolving the integer magnitudes (exact for any n);
  1 for no non-zero value."""
  v = _integers(values)
  magnitudes = np.abs(v[v != 0])
  if not magnitudes.size:
    return 1.0
  total = int(magnitudes.sum())
  # dist[j]: the probability that the positive-signed magnitudes sum to j.
  dist = np.zeros(total + 1)
  dist[0] = 1.0
  for m in magnitudes:
    dist = 0.5 * dist + 0.5 * np.concatenate(
      [np.zeros(m), dist[: dist.size - m]]
    )
  # sum s_i |v_i| = 2 * (positive sum) - total.
  observed = int(v.sum())
  threshold = int(np.ceil((observed + total) / 2))
  return float(min(1.0, dist[threshold:].sum()))


def bootstrap_interval(
  values: np.typing.ArrayLike,
  level: float = 0.95,
  *,
  num_resamples: int = 10_000,
  seed: int = 0,
) -> tuple[float, float, float]:
  """``(mean, low, high)``: the percentile bootstrap interval of the mean
  of per-image `values` (resampling images), NumPy generator `seed`."""
  v = np.asarray(values, float)
  _z(level)
  if v.ndim != 1 or not v.size:
    return float("nan"), float("-inf"), float("inf")
  rng = np.random.default_rng(seed)
  means = np.empty(num_resamples)
  for start in range(0, num_resamples, 1000):
    stop = min(num_resamples, start + 1000)
    draws = rng.integers(0, v.size, size=(stop - start, v.size))
    means[start:stop] = v[draws].mean(axis=1)
  tail = (1 - level) / 2
  low, high = np.quantile(means, [tail, 1 - tail])
  return float(v.mean()), float(low), float(high)
