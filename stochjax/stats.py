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

`compare` packages either as the record `docs/results.json` holds, with a
verdict that names the significantly stronger side at level `alpha`, else
"tie".
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
