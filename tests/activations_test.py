"""SAP, k-WTA and RSE's noise layers: the defenses inside a network."""

import os
import subprocess
import sys
import tempfile
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import absltest
from scipy import stats as scipy_stats

from stochjax import attacks, data, models, prng, train, voting
from stochjax.defenses import core as defense_core
from stochjax.models import activations, stochastic


class SapTest(absltest.TestCase):
  def test_unbiased_in_expectation(self):
    # Skewed positive activations: a few large, many small.
    a = jnp.asarray(np.random.default_rng(0).exponential(size=(1, 40)) ** 3)
    num = 20_000
    keys = jax.random.split(jax.random.key(1), num)
    draws = jax.vmap(lambda k: activations.sap(a, k, fraction=0.5))(keys)
    draws = np.asarray(draws[:, 0], np.float64)
    # The closed-form spread: a unit kept with probability q is a / q, so
    # Var = a^2 (1 / q - 1), with q = 1 - (1 - p)^r, r = 20 draws.
    values = np.asarray(a[0], np.float64)
    q = 1.0 - (1.0 - values / values.sum()) ** 20
    stderr = np.sqrt(values**2 * (1.0 / q - 1.0) / num)
    error = np.abs(draws.mean(0) - values)
    np.testing.assert_array_less(error, 3 * stderr + 1e-5 * values)
    # ... and the draws' spread is that closed form (for units both kept
    # and pruned in enough of the draws to measure it).
    spread = np.sqrt(values**2 * (1.0 / q - 1.0))
    varies = (np.minimum(q, 1.0 - q) * num) > 100
    self.assertGreater(np.sum(varies), 10)
    np.testing.assert_allclose(draws.std(0)[varies], spread[varies], rtol=0.1)
    # Pruning happens: some units are zeroed in most draws.
    self.assertGreater(np.mean(draws == 0), 0.2)

  def test_kept_units_are_scaled_by_their_keep_probability(self):
    a = jnp.asarray([[1.0, 2.0, 3.0, 4.0]])
    out = np.asarray(activations.sap(a, jax.random.key(0), fraction=1.0))[0]
    p = np.asarray(a[0]) / 10.0
    scale = 1.0 / (1.0 - (1.0 - p) ** 4)
    kept = out != 0
    self.assertTrue(kept.any())
    np.testing.assert_allclose(out[kept], (a[0] * scale)[kept], rtol=1e-5)

  def test_same_key_same_mask_other_key_other_mask(self):
    a = jax.random.uniform(jax.random.key(3), (2, 4, 4, 8))
    one = activations.sap(a, jax.random.key(7), fraction=0.3)
    again = activations.sap(a, jax.random.key(7), fraction=0.3)
    other = activations.sap(a, jax.random.key(8), fraction=0.3)
    np.testing.assert_array_equal(one, again)
    self.assertFalse(np.array_equal(one != 0, other != 0))

  def test_negative_inputs_are_zero_after_the_relu(self):
    a = -jnp.ones((1, 5))
    out = activations.sap(a, jax.random.key(0), fraction=1.0)
    np.testing.assert_array_equal(out, np.zeros((1, 5)))


class KwtaTest(absltest.TestCase):
  def test_exactly_k_units_pass_per_example(self):
    x = jax.random.normal(jax.random.key(0), (3, 4, 4, 5))
    out = np.asarray(activations.kwta(x, None, ratio=0.1))
    k = int(0.1 * 4 * 4 * 5)
    flat_in = np.asarray(x).reshape(3, -1)
    for row_in, row_out in zip(flat_in, out.reshape(3, -1), strict=True):
      self.assertEqual(np.count_nonzero(row_out), k)
      top = np.sort(row_in)[-k:]
      np.testing.assert_array_equal(np.sort(row_out[row_out != 0]), top)

  def test_threshold_equals_top_k_with_ties_and_signs(self):
    x = jax.random.normal(jax.random.key(1), (4, 300))
    x = x.at[:, :40].set(0.0).at[:, 40:60].set(-2.5)  # Ties, negatives.
    for k in (1, 7, 50, 280, 300):
      keys = activations._ordered(x)
      expected = jax.lax.top_k(x, k)[0][:, -1]
      np.testing.assert_array_equal(
        activations._kth_largest(keys, k), activations._ordered(expected)
      )

  def test_in_a_resnet_every_block_activation_keeps_k(self):
    model = models.get_model(
      "ResNetTiny", num_classes=3, stem="cifar", activation="kwta(ratio=0.25)"
    )
    x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3))
    variables = model.init(jax.random.key(1), x)
    _, state = model.apply(
      variables, x, capture_intermediates=True, mutable=["intermediates"]
    )
    blocks = [v for k, v in state["intermediates"].items() if "Block" in k]
    self.assertLen(blocks, 2)
    for block in blocks:
      (out,) = block["__call__"]
      per_example = out.reshape(out.shape[0], -1)
      k = int(0.25 * per_example.shape[1])
      np.testing.assert_array_equal(
        np.count_nonzero(np.asarray(per_example), axis=1), [k, k]
      )

  def test_unknown_activation_and_bad_ratio_are_refused(self):
    x = jnp.zeros((1, 8, 8, 3))
    for spec, message in (("swish", "Unknown activation"),
                          ("kwta(ratio=0)", "ratio must lie")):  # fmt: skip
      model = models.get_model("ResNetTiny", num_classes=3, activation=spec)
      with self.assertRaisesRegex(ValueError, message):
        model.init(jax.random.key(0), x)


class StochasticClassifierTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    model = models.get_model(
      "ResNetTiny", num_classes=4, stem="cifar", activation="sap(fraction=1.0)"
    )
    self.x = jax.random.uniform(jax.random.key(0), (3, 8, 8, 3))
    key = jax.random.key(1)
    variables = model.init({"params": key, "activation": key}, self.x)
    self.model = stochastic.stochastic_classifier(model, variables)
    self.base = models.classifier(self.model.base, variables)

  def test_plain_call_is_the_base_network(self):
    np.testing.assert_allclose(self.model(self.x), self.base(self.x))

  def test_draws_follow_per_example_keys(self):
    keys = prng.per_example(jax.random.key(2), 3)
    full = self.model.draw(keys, self.x)
    # Example 1 alone with its key gives its row of the batch.
    alone = self.model.draw(keys[1:2], self.x[1:2])
    np.testing.assert_allclose(full[1:2], alone, rtol=1e-5, atol=1e-6)
    other = self.model.draw(prng.per_example(jax.random.key(3), 3), self.x)
    self.assertFalse(np.allclose(full, other))

  def test_votes_and_eot_go_through_the_models_draws(self):
    defended = defense_core.defended_logits(self.model, defense_core.identity)
    keys = prng.per_example(jax.random.key(4), 3)
    np.testing.assert_allclose(
      defended(keys, self.x),
      self.model.draw(prng.fold_each(keys, defense_core._MODEL_DRAW), self.x),
    )
    counts = voting.vote_counts(
      jax.random.key(5), self.model, self.x, defense=None, num_votes=6
    )
    np.testing.assert_array_equal(np.sum(counts, 1), [6, 6, 6])
    attack = attacks.make_pgd(
      eps=8 / 255, step_size=2 / 255, num_steps=2, eot_samples=2
    )
    adv = jax.jit(attack)(jax.random.key(6), self.model, self.x, [0, 1, 2])
    self.assertLessEqual(float(jnp.max(jnp.abs(adv - self.x))), 8 / 255 + 1e-6)

  def test_a_deterministic_activation_is_refused(self):
    with self.assertRaisesRegex(ValueError, "deterministic"):
      stochastic.stochastic_classifier(self.model.base, self.model.variables)


class _Noise(nn.Module):
  sigma: float

  @nn.compact
  def __call__(self, x, keys=None):
    return activations.noise(self, x, self.sigma, keys=keys)


class RseTest(absltest.TestCase):
  """Random Self-Ensemble (Liu et al. 2018): Gaussian noise layers."""

  def test_noise_is_gaussian_with_its_sigma_per_example_key(self):
    layer = _Noise(0.3)
    x = jnp.zeros((4, 64, 64, 3))
    keys = prng.per_example(jax.random.key(0), 4)
    out = np.asarray(layer.apply({}, x, keys))
    # Against the normal law: Kolmogorov-Smirnov on 49,152 draws.
    p = scipy_stats.kstest(out.ravel(), "norm", args=(0.0, 0.3)).pvalue
    self.assertGreater(p, 1e-3)
    # Row 2 alone, with its key, is row 2 of the batch; rows differ.
    alone = layer.apply({}, x[2:3], keys[2:3])
    np.testing.assert_array_equal(out[2:3], alone)
    self.assertFalse(np.allclose(out[0], out[1]))
    # Additive: the gradient is the identity.
    g = jax.grad(lambda v: jnp.sum(layer.apply({}, v, keys) * 2.0))(x)
    np.testing.assert_array_equal(g, np.full(x.shape, 2.0))
    self.assertIs(_Noise(0.0).apply({}, x, keys), x)

  def test_resnet_noise_is_off_at_zero_and_a_stochastic_classifier(self):
    x = jax.random.uniform(jax.random.key(1), (3, 8, 8, 3))
    plain = models.get_model("ResNetTiny", num_classes=4, stem="cifar")
    variables = plain.init(jax.random.key(2), x)
    rse = plain.clone(noise=(0.4, 0.1))
    keys = prng.per_example(jax.random.key(3), 3)
    np.testing.assert_array_equal(
      plain.clone(noise=(0.0, 0.0)).apply(variables, x, activation_keys=keys),
      plain.apply(variables, x),
    )
    model = stochastic.stochastic_classifier(rse, variables)
    np.testing.assert_array_equal(model(x), plain.apply(variables, x))
    full = model.draw(keys, x)
    np.testing.assert_allclose(full[1:2], model.draw(keys[1:2], x[1:2]),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    self.assertFalse(np.allclose(full, plain.apply(variables, x)))
    # Under a user's vmap (one example at a time) and jit: the same rows.
    one = jax.jit(
      jax.vmap(lambda k, image: model.draw(k[None], image[None])[0])
    )
    np.testing.assert_allclose(one(keys, x), full, rtol=1e-5, atol=1e-6)
    # Inner noise alone changes the logits too (every block has it).
    inner = stochastic.stochastic_classifier(plain.clone(noise=(0.0, 0.1)),
                                             variables)  # fmt: skip
    self.assertFalse(np.allclose(inner.draw(keys, x), model(x)))
    self.assertTrue(stochastic.draws_randomness(rse))
    self.assertFalse(stochastic.draws_randomness(plain))
    # The ensemble prediction: the mean softmax over R draws.
    counts = voting.vote_counts(jax.random.key(4), model, x, defense=None,
                                num_votes=8, aggregate="soft")  # fmt: skip
    np.testing.assert_allclose(np.sum(counts, 1), np.full(3, 8.0), rtol=1e-5)
    with self.assertRaisesRegex(ValueError, "sigmas"):
      plain.clone(noise=(-0.1, 0.0)).apply(variables, x)

  @pytest.mark.slow
  def test_draws_and_gradients_on_8_devices_equal_one_devices(self):
    # Each device draws its own examples' noise from their keys: the
    # sharded batch gives one device's logits and input gradients.
    code = textwrap.dedent("""
      import os
      os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
      import jax, numpy as np
      from stochjax import models, prng, sharding
      from stochjax.models import stochastic
      x = jax.random.uniform(jax.random.key(1), (16, 8, 8, 3))
      plain = models.get_model("ResNetTiny", num_classes=4, stem="cifar")
      model = stochastic.stochastic_classifier(
        plain.clone(noise=(0.4, 0.1)), plain.init(jax.random.key(2), x))
      keys = prng.per_example(jax.random.key(3), 16)

      @jax.jit
      def both(model, keys, x):
        loss = lambda v: jax.numpy.sum(model.draw(keys, v) ** 2)
        return model.draw(keys, x), jax.grad(loss)(x)

      single = [np.asarray(a) for a in both(model, keys, x)]
      mesh = sharding.data_mesh()
      spread = sharding.batch_sharding(mesh)
      xs, ks = jax.device_put(x, spread), jax.device_put(keys, spread)
      with sharding.using(mesh):
        out = both(sharding.put_replicated(model, mesh), ks, xs)
      assert len(out[0].sharding.device_set) == 8, out[0].sharding
      for a, b in zip(out, single):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=1e-5)
      print("ok", jax.device_count())
    """)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", code], env=env | {
      "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True, timeout=600)  # fmt: skip
    self.assertEqual(done.returncode, 0, done.stderr[-3000:])
    self.assertIn("ok 8", done.stdout)

  @pytest.mark.slow
  def test_training_draws_the_models_noise_per_example_and_step(self):
    # optax's Adam bias correction promotes int32 step counts to float.
    self.enter_context(jax.numpy_dtype_promotion("standard"))
    train_set = data.load("digits", "train").subset(np.arange(128))
    model = models.get_model("ResNetTiny", num_classes=10, stem="cifar",
                             noise=(0.4, 0.1))  # fmt: skip

    def fit(m):
      return train.train(key=prng.root(0), model=m, train_set=train_set,
                         defense=None, epochs=1, batch_size=64,
                         checkpoint_dir=tempfile.mkdtemp())  # fmt: skip

    first, again = fit(model), fit(model)
    clean = fit(model.clone(noise=(0.0, 0.0)))
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), first, again)
    self.assertTrue(all(jax.tree.leaves(same)))  # Keyed: reproducible.
    moved = jax.tree.map(lambda a, b: not np.allclose(a, b), first, clean)
    self.assertTrue(any(jax.tree.leaves(moved)))  # The noise was drawn.


if __name__ == "__main__":
  absltest.main()
