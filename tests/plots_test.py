"""The paper's figures: what each draws, read back from the figure."""

import os
import tempfile
from unittest import mock

import numpy as np
from absl.testing import absltest
from PIL import Image

from stochjax import figures, stats
from stochjax.paper import plots


def _drawn(plot, *args, **kwargs):
  """Calls ``plot(*args, path, **kwargs)``; returns (the figure, the PNG's
  size)."""
  made = []
  subplots = figures.subplots

  def recorded(*args, **kwargs):
    made.append(subplots(*args, **kwargs))
    return made[-1]

  # A folder of its own: absl's default test folder is shared by the
  # pytest-xdist workers.
  with (
    tempfile.TemporaryDirectory() as folder,
    mock.patch.object(figures, "subplots", side_effect=recorded),
  ):
    path = os.path.join(folder, "plot.png")
    plot(*args, path, **kwargs)
    with Image.open(path) as image:
      size = image.size
  ((figure, _),) = made
  return figure, size


def _lines(axes):
  return [
    (list(line.get_xdata()), list(line.get_ydata())) for line in axes.lines
  ]


class HeatmapTest(absltest.TestCase):
  def test_cells_show_rates_and_intervals_and_nan_cells_stay_blank(self):
    rates = np.array([[0.25, 0.5], [0.75, np.nan]])
    counts = [[(1, 4), (2, 4)], [(3, 4), (0, 0)]]
    figure, size = _drawn(
      plots.heatmap, rates, [10, 20], [1, 5], "noise", counts=counts
    )
    axes = figure.axes[0]
    texts = {(t.get_position(), t.get_text()) for t in axes.texts}
    low, high = stats.rate_interval(1, 4)
    self.assertIn(((0, 0), f"25.0\n[{100 * low:.0f}, {100 * high:.0f}]"), texts)
    self.assertLen(texts, 3)  # The NaN cell has none.
    self.assertEqual(
      [t.get_text() for t in axes.get_xticklabels()], ["10", "20"]
    )
    self.assertEqual(axes.get_title(), "noise")
    self.assertEqual(size, (int(4.5 * 120), int(2.8 * 120)))


class CurvesTest(absltest.TestCase):
  def test_accuracy_by_epoch_plots_both_accuracies_in_percent(self):
    records = [
      {"epoch": 0, "eval_accuracy": 0.5, "eval_defended_accuracy": 0.25},
      {"epoch": 1, "eval_accuracy": 0.75, "eval_defended_accuracy": 0.5},
    ]
    figure, _ = _drawn(plots.accuracy_by_epoch, records, "jpeg()")
    self.assertEqual(
      _lines(figure.axes[0]), [([0, 1], [50.0, 75.0]), ([0, 1], [25.0, 50.0])]
    )

  def _invariance_results(self):
    def goal(benign, success):
      row = {"benign_accuracy": benign, "attack_success_rate": success}
      return {
        "before": row,
        "after": row | {"attack_success_rate": success / 2},
        "by_epoch": {"epoch": [0, 1], "attack_success_rate": [success, 0.1]},
      }

    return {
      "goals": ["untargeted"],
      "labels": ["k=1", "k=2"],
      "defenses": {
        "bart_k1": {"untargeted": goal(0.9, 0.8)},
        "bart_k2": {"untargeted": goal(0.7, 0.6)},
      },
    }

  def test_by_epoch_plots_each_defense_in_percent(self):
    figure, _ = _drawn(plots.plot_by_epoch, self._invariance_results())
    lines = _lines(figure.axes[0])
    np.testing.assert_allclose(lines[0][1], [80.0, 10.0])
    np.testing.assert_allclose(lines[1][1], [60.0, 10.0])

  def test_before_after_plots_accuracy_and_success_per_defense(self):
    figure, _ = _drawn(plots.plot_before_after, self._invariance_results())
    drawn = [y for axes in figure.axes for _, y in _lines(axes)]
    for expected in ([90.0, 70.0], [80.0, 60.0], [40.0, 30.0]):
      self.assertTrue(
        any(np.allclose(y, expected) for y in drawn), (expected, drawn)
      )


if __name__ == "__main__":
  absltest.main()
