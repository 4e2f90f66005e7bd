"""Progress bars for long work, quiet where nobody watches.

Bars show only when stderr is a terminal (a log file gets none, instead of
hundreds of redrawn lines) and can be silenced with ``STOCHJAX_PROGRESS=0``
or `set_enabled(False)` (the experiments' ``--noprogress`` flag).
"""

import os
import sys
from collections.abc import Iterable

import tqdm

_enabled: bool | None = None


def set_enabled(enabled: bool | None) -> None:
  """Forces bars on or off; None restores the default (terminal only)."""
  global _enabled
  _enabled = enabled


def enabled() -> bool:
  if _enabled is not None:
    return _enabled
  if os.environ.get("STOCHJAX_PROGRESS", "").strip() in ("0", "false", "no"):
    return False
  return sys.stderr.isatty()


def bar(iterable: Iterable, **kwargs) -> tqdm.tqdm:
  """`tqdm.tqdm(iterable, **kwargs)`, disabled unless `enabled()`."""
  return tqdm.tqdm(iterable, disable=not enabled(), **kwargs)
