"""Attacks inside research code, through the public API only.

A user's own Flax CNN on 16x16 images, attacked inside the user's `jax.jit`,
`jax.vmap`, `lax.scan` and `jax.grad`, with data closed over or passed in;
no silent recompiles; bad input refused at the earliest point; padding and
retention never change an example's attack.
"""

import argparse
import os
import sys
from unittest import mock

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import absltest

from stochjax import (
  attacks,
  batching,
  defenses,
  evaluate,
  models,
  prng,
  progress,
)
from stochjax.torch_io import cli

N = 8


class SmallCNN(nn.Module):
  """A user's model: no `train` argument, no normalization conventions."""

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(4, (3, 3))(x))
    return nn.Dense(10)(x.reshape(x.shape[0], -1))


def _data(seed=0):
  rng = np.random.default_rng(seed)
  images = rng.uniform(0.1, 0.9, (N, 16, 16, 3)).astype(np.float32)
  labels = rng.integers(0, 10, N).astype(np.int32)
  return images, labels


def _ce(logits, labels):
  return jnp.mean(
    optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  )


class ResearchCodeTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.model = SmallCNN()
    self.x, self.y = _data()
    self.xj, self.yj = jnp.asarray(self.x), jnp.asarray(self.y)
    self.params = self.model.init(jax.random.key(0), self.xj)
    self.key = jax.random.key(1)
    self.attack = attacks.make_pgd(
      eps=8 / 255,
      step_size=2 / 255,
      num_steps=3,
      eot_samples=2,
      defense="gaussian_noise(sigma=0.05)",
    )
    self.reference = np.asarray(
      self.attack(self.key, (self.model.apply, self.params), self.x, self.y)
    )

  def assert_close(self, actual, desired=None):
    desired = self.reference if desired is None else desired
    np.testing.assert_allclose(np.asarray(actual), desired, atol=1e-5)

  def test_jit_with_closed_over_numpy_data_and_a_closure(self):
    model, x, y = self.model, self.x, self.y

    @jax.jit
    def step(key, params):
      return self.attack(key, lambda z: model.apply(params, z), x, y)

    self.assert_close(step(self.key, self.params))

  def test_jit_with_closed_over_device_arrays(self):
    step = jax.jit(
      lambda key, params: self.attack(
        key, (self.model.apply, params), self.xj, self.yj
      )
    )
    self.assert_close(step(self.key, self.params))

  def test_jit_with_labels_closed_over(self):
    step = jax.jit(
      lambda p, x: self.attack(
        self.key, jax.tree_util.Partial(self.model.apply, p), x, self.yj
      )
    )
    self.assert_close(step(self.params, self.xj))

  def test_jit_of_vmap_over_keys(self):
    keys = jax.random.split(self.key, 3)
    out = jax.jit(
      jax.vmap(
        lambda k: self.attack(
          k, (self.model.apply, self.params), self.xj, self.yj
        )
      )
    )(keys)
    self.assertEqual(out.shape, (3, *self.x.shape))
    for i in range(3):
      expected = self.attack(
        keys[i], (self.model.apply, self.params), self.x, self.y
      )
      self.assert_close(out[i], np.asarray(expected))

  def test_scan_adversarial_training_equals_a_python_loop(self):
    model, attack = self.model, self.attack

    def train_step(params, key):
      adv = attack(key, (model.apply, params), self.xj, self.yj)
      loss, grads = jax.value_and_grad(
        lambda p: _ce(model.apply(p, adv), self.yj)
      )(params)
      return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads), loss

    keys = jax.random.split(self.key, 3)
    scanned, losses = jax.jit(lambda p: jax.lax.scan(train_step, p, keys))(
      self.params
    )
    params = self.params
    for i in range(3):
      params, loss = train_step(params, keys[i])
      self.assertAlmostEqual(float(loss), float(losses[i]), places=4)
    jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
      scanned,
      params,
    )

  def test_grad_of_an_outer_loss_treats_the_attack_as_a_point(self):
    def outer(params):
      adv = self.attack(self.key, (self.model.apply, params), self.xj, self.yj)
      return _ce(self.model.apply(params, adv), self.yj)

    fixed = jnp.asarray(self.reference)
    expected = jax.grad(lambda p: _ce(self.model.apply(p, fixed), self.yj))(
      self.params
    )
    jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
      jax.grad(outer)(self.params),
      expected,
    )
    # The output is stop-gradiented: no gradient flows to the clean images.
    through = jax.grad(
      lambda x: jnp.sum(
        self.attack(self.key, (self.model.apply, self.params), x, self.yj)
      )
    )(self.xj)
    self.assertEqual(float(jnp.abs(through).max()), 0.0)

  def test_classifier_for_any_flax_module_and_apply_fn(self):
    expected = self.model.apply(self.params, self.xj)
    for logits_fn in (
      models.classifier(self.model, self.params),
      models.classifier(self.model.apply, self.params),
    ):
      np.testing.assert_allclose(logits_fn(self.xj), expected, rtol=1e-6)
    with self.assertRaisesRegex(ValueError, "Flax module"):
      models.classifier(3, self.params)


class RecompileTest(absltest.TestCase):
  def test_fresh_closures_warn_and_weight_pairs_reuse_the_compile(self):
    model = SmallCNN()
    x, y = _data()
    traces = []

    def apply(params, images):
      traces.append(1)  # Runs only when JAX traces (compiles) it.
      return model.apply(params, images)

    params = [model.init(jax.random.key(s), jnp.asarray(x)) for s in (0, 1, 2)]
    attack = attacks.make_pgd(eps=0.03, step_size=0.01, num_steps=2)
    key = jax.random.key(0)
    with self.assertWarnsRegex(attacks.RecompileWarning, "apply_fn, params"):
      for p in params[:2]:
        attack(key, lambda z, p=p: apply(p, z), x, y)
    attack(key, (apply, params[0]), x, y)
    compiled = len(traces)
    for p in params[1:]:
      attack(key, (apply, p), x, y)  # New weights, same shapes.
    self.assertLen(traces, compiled)


class BadInputTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.x, self.y = _data()
    model = SmallCNN()
    self.logits_fn = models.classifier(
      model, model.init(jax.random.key(0), self.x)
    )

  def test_labels_out_of_the_models_range(self):
    attack = attacks.make_pgd(eps=0.03, step_size=0.01, num_steps=1)
    with self.assertRaisesRegex(ValueError, r"labels must lie in \[0, 10\)"):
      evaluate.evaluate_attack(
        jax.random.key(0), self.logits_fn, self.x, self.y + 10,
        attack=attack, defense=None, num_votes=1,
      )  # fmt: skip

  def test_a_spec_string_is_a_defense(self):
    key = jax.random.key(0)
    spec = "gaussian_noise(sigma=0.1)"
    by_spec = attacks.make_pgd(
      eps=0.03, step_size=0.01, num_steps=2, defense=spec
    )
    by_fn = attacks.make_pgd(
      eps=0.03, step_size=0.01, num_steps=2, defense=defenses.lookup(spec)
    )
    np.testing.assert_array_equal(
      by_spec(key, self.logits_fn, self.x, self.y),
      by_fn(key, self.logits_fn, self.x, self.y),
    )
    with self.assertRaisesRegex(ValueError, "defense must be"):
      attacks.make_pgd(eps=0.03, step_size=0.01, num_steps=1, defense=3)

  def test_eps_in_levels_instead_of_pixel_units(self):
    with self.assertRaisesRegex(ValueError, "did you mean 8/255"):
      attacks.make_pgd(eps=8, step_size=2 / 255, num_steps=1)

  def test_labels_as_a_python_list(self):
    attack = attacks.make_pgd(eps=0.03, step_size=0.01, num_steps=1)
    key = jax.random.key(0)
    np.testing.assert_array_equal(
      attack(key, self.logits_fn, self.x, self.y.tolist()),
      attack(key, self.logits_fn, self.x, self.y),
    )

  def test_impossible_defense_parameters_fail_at_lookup(self):
    for spec, message in (
      ("gaussian_noise(sigma=-0.1)", r"sigma must lie in \[0, 1\]"),
      ("gaussian_noise(sigma=2.0)", r"sigma must lie in \[0, 1\]"),
      ("rotation(max_degrees=-5)", r"max_degrees must lie in \(0, 180\]"),
      ("rotation(max_degrees=0)", r"max_degrees must lie in \(0, 180\]"),
    ):
      with self.subTest(spec), self.assertRaisesRegex(ValueError, message):
        defenses.lookup(spec)

  def test_converter_accepts_torchvision_architecture_names(self):
    for name in ("resnet50", "ResNet50", "RESNET-50", "resnet_50"):
      self.assertEqual(cli.architecture(name), "ResNet50")
    with self.assertRaisesRegex(
      argparse.ArgumentTypeError, "unknown architecture"
    ):
      cli.architecture("vgg16")


class ProgressTest(absltest.TestCase):
  def test_bars_only_on_a_terminal_or_when_forced(self):
    self.addCleanup(progress.set_enabled, None)
    for terminal in (False, True):
      with mock.patch.object(sys.stderr, "isatty", return_value=terminal):
        self.assertEqual(progress.enabled(), terminal)
        self.assertEqual(progress.bar(range(3)).disable, not terminal)
        with mock.patch.dict(os.environ, {"STOCHJAX_PROGRESS": "0"}):
          self.assertFalse(progress.enabled())
    progress.set_enabled(True)
    self.assertFalse(progress.bar(range(3)).disable)
    progress.set_enabled(False)
    self.assertTrue(progress.bar(range(3)).disable)


def _coin(key, image):
  """Flips the image (1 - x) with probability 1/2: a key-driven outcome."""
  return jnp.where(jax.random.bernoulli(key), 1.0 - image, image)


def _mean_classifier(weights, images):
  """Class 0 above mean 0.5, class 1 below; class 2 is never predicted."""
  m = jnp.mean(images, axis=(1, 2, 3)) * weights
  return jnp.stack([m - 0.5, 0.5 - m, jnp.full_like(m, -10.0)], axis=-1)


class PerExampleKeysTest(absltest.TestCase):
  @pytest.mark.slow
  def test_art_compat_ignores_padding_rows(self):
    x, y = _data(3)
    model = SmallCNN()
    logits_fn = models.classifier(model, model.init(jax.random.key(0), x))
    attack = attacks.make_apgd(
      eps=8 / 255,
      num_steps=6,
      step_size=2 / 255,
      art_compat=True,
      defense="gaussian_noise(sigma=0.1)",
    )
    key = jax.random.key(5)
    alone = attack(prng.at(key, np.arange(6)), logits_fn, x[:6], y[:6])
    # As batching pads a last batch: copies of its first example.
    rows = np.array([0, 1, 2, 3, 4, 5, 0, 0])
    padded = attack(
      prng.at(key, rows), logits_fn, x[rows], y[rows],
      valid=jnp.arange(8) < 6,
    )  # fmt: skip
    np.testing.assert_allclose(padded[:6], alone, atol=1e-6)

  def test_evaluation_results_do_not_depend_on_padding(self):
    x, y = _data(4)
    model = SmallCNN()
    logits_fn = models.classifier(model, model.init(jax.random.key(0), x))
    attack = attacks.make_apgd(
      eps=8 / 255, num_steps=4, step_size=2 / 255, art_compat=True,
      defense="gaussian_noise(sigma=0.1)",
    )  # fmt: skip
    runs = [
      evaluate.evaluate_attack(
        jax.random.key(2),
        logits_fn,
        x[:6],
        y[:6],
        attack=attack,
        defense="gaussian_noise(sigma=0.1)",
        num_votes=3,
        batch_size=size,
      )  # fmt: skip
      for size in (6, 8, 4)  # none, 2 and 2 padding rows
    ]
    for other in runs[1:]:
      self.assertEqual(other.attack.per_sample, runs[0].attack.per_sample)

  def test_attacked_examples_are_keyed_by_dataset_index(self):
    values = np.where(np.arange(48) % 2, 0.3, 0.7).astype(np.float32)
    images = np.broadcast_to(values[:, None, None, None], (48, 4, 4, 1)).copy()
    labels = np.where(values > 0.5, 0, 1).astype(np.int32)
    logits_fn = jax.tree_util.Partial(_mean_classifier, jnp.float32(1.0))
    attack = attacks.make_pgd(
      eps=0.01, step_size=0.01, num_steps=1, defense=_coin
    )
    settings = dict(attack=attack, defense=_coin, num_votes=1, batch_size=16)
    key = jax.random.key(7)
    first = evaluate.evaluate_attack(key, logits_fn, images, labels, **settings)
    dropped = first.retained_indices[0]
    relabelled = labels.copy()
    relabelled[dropped] = 2  # Never predicted: its goal is met, not retained.
    second = evaluate.evaluate_attack(
      key, logits_fn, images, relabelled, **settings
    )

    def outcome(result):
      return dict(
        zip(
          result.retained_indices,
          result.attack.per_sample,
          strict=True,
        )
      )

    a, b = outcome(first), outcome(second)
    self.assertEqual(set(a) - set(b), {dropped})
    self.assertGreater(len(b), 10)  # Enough examples shifted in position.
    self.assertEqual({i: a[i] for i in b}, b)

  def test_map_batches_keys_come_from_the_given_indices(self):
    key = jax.random.key(3)
    indices = np.array([7, 2, 9, 4, 11])
    data = jax.random.key_data(
      prng.at(key, indices)
    )  # What each row's key must be.
    out = batching.map_batches(
      lambda keys, x: jax.random.key_data(keys),
      key,
      5,
      lambda index: [np.zeros((len(index), 1), np.float32)],
      batch_size=2,
      indices=indices,
    )
    np.testing.assert_array_equal(out, data)


if __name__ == "__main__":
  absltest.main()
