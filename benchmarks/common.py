"""Interleaved, paired timing: the only trustworthy kind on a noisy machine.

Each round runs every case once, in an order rotated round by round, so a
slow spell hits all cases alike; ratios are medians of per-round ratios.
"""

import statistics
import time
from collections.abc import Callable


def interleave(
  cases: dict[str, Callable[[], object]],
  rounds: int,
  warmup: int = 1,
  keep: bool = False,
) -> dict:
  """Seconds per call, one entry per round, for each blocking callable;
  with `keep`, ``(seconds, outputs)`` per case."""
  names = list(cases)
  for name in names:
    for _ in range(warmup):
      cases[name]()
  times = {name: [] for name in names}
  outputs = {name: [] for name in names}
  for r in range(rounds):
    for name in names[r % len(names) :] + names[: r % len(names)]:
      start = time.perf_counter()
      out = cases[name]()
      times[name].append(time.perf_counter() - start)
      if keep:
        outputs[name].append(out)
  if keep:
    return {name: (times[name], outputs[name]) for name in names}
  return times


def paired_ratio(times: dict[str, list[float]], fast: str, slow: str) -> float:
  """Median over rounds of t_slow / t_fast (throughput of fast vs slow)."""
  return statistics.median(
    b / a for a, b in zip(times[fast], times[slow], strict=True)
  )
