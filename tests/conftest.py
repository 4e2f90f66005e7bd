"""Strict JAX settings for every test (house style rule 15)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
from absl import flags  # noqa: E402

import stochjax  # noqa: E402, F401  (sets the safe XLA flags first)

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_default_matmul_precision", "float32")

# absltest helpers (create_tempdir) read absl flags; pytest does not parse them.
flags.FLAGS.mark_as_parsed()


def _schedule(item) -> int:
  """The `:paper` dry runs (minutes each) first, in `PAPER_RUNS` order
  (longest first); then every other test."""
  if "PaperDryRunTest" in item.nodeid:
    for index, (_, config) in enumerate(item.module.PAPER_RUNS):
      if item.name.endswith(f"_{config}"):
        return index
  return 1_000


def pytest_collection_modifyitems(items):
  """With `pytest -n 2` the short tests then fill in around the long dry
  runs instead of the run ending on one of them."""
  items.sort(key=_schedule)
