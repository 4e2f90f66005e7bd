"""Figures without pyplot: no backend is chosen and no global figure state
is touched, so plotting works in any process (a notebook's backend stays
the user's) and threads."""

from typing import Any

from matplotlib.figure import Figure


def subplots(*args: Any, figsize: tuple[float, float], **kwargs: Any):
  """``(figure, axes)`` as ``pyplot.subplots``, on a bare `Figure`
  (``figure.savefig`` renders it; nothing to close)."""
  figure = Figure(figsize=figsize)
  return figure, figure.subplots(*args, **kwargs)
