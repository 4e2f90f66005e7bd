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
