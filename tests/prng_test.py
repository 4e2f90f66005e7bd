"""Named streams: a run's sub-runs never share a key with an example or a
draw, at the protocol's real sizes."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from stochjax import evaluate, prng

NUM_EXAMPLES, NUM_DRAWS = 1000, 500


def _words(keys: jax.Array) -> np.ndarray:
  """Each key's 64 bits as one uint64, flattened."""
  data = np.asarray(jax.random.key_data(keys), np.uint64).reshape(-1, 2)
  return (data[:, 0] << np.uint64(32)) | data[:, 1]


@jax.jit
def _example_and_draw_keys(key):
  """Every per-example and per-draw key an evaluation stream yields:
  ``fold_in(key, i)`` and ``fold_in(fold_in(key, i), j)``."""
  examples = prng.per_example(key, NUM_EXAMPLES)
  draws = prng.per_draw(examples, jnp.arange(NUM_DRAWS, dtype=jnp.uint32))
  return examples, draws


def _run_keys(streams) -> dict[str, np.ndarray]:
  """Per stream: the stream key, its examples' keys and their draws'."""
  out = {}
  for name, key in streams._asdict().items():
    examples, draws = _example_and_draw_keys(key)
    out[name] = np.concatenate(
      [_words(key[None]), _words(examples), _words(draws)]
    )
  return out


class StreamsTest(absltest.TestCase):
  def test_an_evaluations_keys_are_pairwise_disjoint(self):
    root = prng.root(0)
    streams = prng.streams(root, evaluate.STREAMS)
    keys = _run_keys(streams)
    # 8 streams x (1 + 1,000 + 500,000) keys: all distinct, none the root.
    every = np.concatenate([*keys.values(), _words(root[None])])
    self.assertLen(every, len(evaluate.STREAMS) * (1 + 1001 * 500 + 500) + 1)
    self.assertLen(np.unique(every), len(every))

  def test_the_old_detector_fold_was_a_vote_draw(self):
    # Before named streams: the detector's key for example g was
    # fold(fold(votes, 5), g), which is vote draw g of example 5. The
    # uniqueness check above would have caught it.
    votes = prng.root(0)
    detector = prng.per_example(prng.fold(votes, 5), NUM_EXAMPLES)
    _, draws = _example_and_draw_keys(votes)
    shared = np.intersect1d(_words(detector), _words(draws))
    self.assertLen(shared, NUM_DRAWS)  # Draws 0..499 of example 5.
    streams = prng.streams(votes, ("votes", "detector"))
    detector = prng.per_example(streams.detector, NUM_EXAMPLES)
    _, draws = _example_and_draw_keys(streams.votes)
    self.assertEmpty(np.intersect1d(_words(detector), _words(draws)))

  def test_detector_and_vote_draws_are_independent(self):
    streams = prng.streams(prng.root(1), evaluate.STREAMS)
    uniform = jax.jit(jax.vmap(jax.vmap(jax.random.uniform)))
    _, votes = _example_and_draw_keys(streams.attack_votes)
    _, detector = _example_and_draw_keys(streams.attack_detector)
    u = np.asarray(uniform(votes[:50])).ravel()  # 50 draws x 1,000 examples
    v = np.asarray(uniform(detector[:50])).ravel()
    # Independent uniforms: correlation ~ N(0, 1/n); 5 sigma.
    self.assertLess(abs(np.corrcoef(u, v)[0, 1]), 5 / np.sqrt(len(u)))
    self.assertLess(np.mean(u == v), 1e-4)

  def test_streams_are_named_not_numbered(self):
    key = prng.root(3)
    both = prng.streams(key, ("a", "b"))
    alone = prng.streams(key, ("b",))
    # A stream is its name's: adding or reordering streams changes none.
    np.testing.assert_array_equal(_words(both.b[None]), _words(alone.b[None]))
    np.testing.assert_array_equal(
      _words(prng.stream(key, "a", "b")[None]),
      _words(prng.stream(prng.stream(key, "a"), "b")[None]),
    )
    with self.assertRaisesRegex(ValueError, "distinct identifiers"):
      prng.streams(key, ("a", "a"))
    with self.assertRaisesRegex(ValueError, "non-empty str"):
      prng.stream(key, 3)
    with self.assertRaisesRegex(ValueError, "at least one name"):
      prng.stream(key)

  def test_streams_work_inside_jit_and_vmap(self):
    keys = jax.random.split(prng.root(4), 3)
    inside = jax.jit(jax.vmap(lambda k: prng.stream(k, "votes")))(keys)
    for i in range(3):
      np.testing.assert_array_equal(
        _words(inside[i][None]), _words(prng.stream(keys[i], "votes")[None])
      )


class PerExampleTest(absltest.TestCase):
  def test_an_examples_key_is_its_index_not_its_batch(self):
    key = prng.root(5)
    whole = prng.per_example(key, 10)
    part = prng.at(key, np.arange(4, 7))
    np.testing.assert_array_equal(_words(part), _words(whole[4:7]))
    np.testing.assert_array_equal(
      _words(prng.per_example(whole, 10)), _words(whole)
    )
    with self.assertRaisesRegex(ValueError, r"\(10,\) per-example keys"):
      prng.per_example(whole[:3], 10)

  def test_restarts_keep_the_first_ones_key(self):
    keys = prng.per_example(prng.root(6), 4)
    restarts = prng.per_restart(keys, 3)
    np.testing.assert_array_equal(_words(restarts[0]), _words(keys))
    np.testing.assert_array_equal(
      _words(restarts[2]), _words(prng.fold_each(keys, 2))
    )

  def test_raw_uint32_keys_are_wrapped_and_other_values_refused(self):
    raw = jax.random.key_data(prng.root(7))
    np.testing.assert_array_equal(
      _words(prng.typed(raw)[None]), _words(prng.root(7)[None])
    )
    with self.assertRaisesRegex(ValueError, "Expected a JAX key"):
      prng.typed(np.zeros(3, np.float32))


if __name__ == "__main__":
  absltest.main()
