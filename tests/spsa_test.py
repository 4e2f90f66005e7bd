"""SPSA: the gradient estimate against closed forms, the attack against the
linf closed form of a linear model, costs, composability and errors."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from stochjax import attacks
from stochjax.attacks import spsa
from tests import test_utils
from tests.square_test import _binary_linear


class EstimateTest(parameterized.TestCase):
  @parameterized.parameters(0.01, 0.5)
  def test_unbiased_for_a_quadratic(self, delta):
    # f(x) = x'Ax / 2 + b'x: the antithetic difference is exactly 2 delta
    # v'g, so pair j estimates v_j (v_j'g), whose k-th coordinate has mean
    # g_k and variance ||g||^2 - g_k^2 (Rademacher v).
    rng = np.random.default_rng(0)
    n, d, samples = 3, 24, 4096
    a = rng.normal(size=(d, d))
    a = jnp.asarray(a @ a.T / d, jnp.float32)
    b = jnp.asarray(rng.normal(size=(d, 1)), jnp.float32)
    x = jnp.asarray(rng.uniform(size=(n, 2, 3, 4)), jnp.float32)

    def value_fn(points, j):
      flat = points.reshape(n, -1)
      return 0.5 * jnp.sum((flat @ a) * flat, -1) + (flat @ b)[:, 0]

    keys = jax.random.split(jax.random.key(1), n)
    estimate = spsa.estimate_gradient(
      value_fn, x, keys, delta=delta, num_samples=samples, chunk_size=512
    ).reshape(n, -1)
    g = np.asarray(x.reshape(n, -1) @ a + b[:, 0][None])
    sigma = np.sqrt((np.sum(g**2, -1, keepdims=True) - g**2) / samples)
    self.assertLess(np.max(np.abs(estimate - g) / sigma), 4.0)

  def test_a_pair_shares_its_draws(self):
    # On a linear objective, noise that both points of a pair share cancels.
    rng = np.random.default_rng(2)
    w = jnp.asarray(rng.normal(size=(48,)), jnp.float32)
    x = jnp.asarray(rng.uniform(size=(4, 4, 4, 3)), jnp.float32)
    keys = jax.random.split(jax.random.key(0), 4)

    def clean(points, j):
      return points.reshape(4, -1) @ w

    def noisy(points, j):
      noise = jax.random.normal(jax.random.fold_in(jax.random.key(9), j), (4,))
      return clean(points, j) + 10.0 * noise

    common = dict(delta=0.01, num_samples=64)
    np.testing.assert_allclose(
      spsa.estimate_gradient(noisy, x, keys, **common),
      spsa.estimate_gradient(clean, x, keys, **common),
      rtol=2e-3,
      atol=2e-3,
    )


class AdamTest(absltest.TestCase):
  def test_steps_follow_torchs_adam(self):
    # torch.optim.Adam's documented update with its defaults, in float64.
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(6, 5))
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    m = v = np.zeros(5)
    zeros = jnp.zeros((5,), jnp.float32)
    state = spsa.Adam(jnp.zeros((), jnp.float32), zeros, zeros)
    for t, g in enumerate(grads, start=1):
      m = b1 * m + (1 - b1) * g
      v = b2 * v + (1 - b2) * g**2
      ref = -lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
      step, state = spsa.adam_update(jnp.asarray(g, jnp.float32), state, lr)
      np.testing.assert_allclose(step, ref, rtol=1e-5, atol=1e-9)


class SpsaTest(parameterized.TestCase):
  def test_linf_success_matches_the_closed_form_of_a_linear_model(self):
    logits_fn, images, labels, margin, w = _binary_linear()
    eps = 0.05
    needed = margin / np.abs(w).sum()
    attack = attacks.make_spsa(eps=eps, num_steps=40, num_samples=32)
    out = attack.with_info(jax.random.key(0), logits_fn, images, labels)
    fooled = np.asarray(jnp.argmax(logits_fn(out.images), -1) != labels)
    self.assertLessEqual(
      float(jnp.max(jnp.abs(out.images - images))), eps + 1e-6
    )
    np.testing.assert_array_equal(fooled[needed > eps], False)
    self.assertGreater((needed < 0.9 * eps).sum(), 10)
    np.testing.assert_array_equal(fooled[needed < 0.9 * eps], True)
    # Some images cannot be fooled: the batch ran every step.
    self.assertEqual(out.forward_evals, len(labels) * attack.cost.forward_evals)
    self.assertEqual(attack.cost.forward_evals, 40 * 65 + 1)

  def test_eot_costs_m_forwards_per_point(self):
    attack = attacks.make_spsa(
      eps=0.03, num_steps=5, num_samples=8, eot_samples=3, restarts=2
    )
    self.assertEqual(attack.cost.forward_evals, 2 * (5 * 17 + 1) * 3)
    self.assertEqual(attack.cost.grad_evals, 0)

  def test_composes_with_jit_and_does_not_recompile(self):
    _, images, labels, _, _ = _binary_linear(5, n=8)
    attack = attacks.make_spsa(eps=0.03, num_steps=3, num_samples=4)
    weights = jnp.asarray(
      np.random.default_rng(0).normal(size=(64, 2)), jnp.float32
    )
    first, second = test_utils.traces_for_new_weights(
      attack, images, labels, weights
    )
    self.assertEqual(first, second)
    direct = attack(
      jax.random.key(0), test_utils.linear_logits_fn(weights), images, labels
    )
    inside = jax.jit(
      lambda w: attack(
        jax.random.key(0),
        lambda x: x.reshape(x.shape[0], -1) @ w,
        images,
        labels,
      )
    )(weights)
    np.testing.assert_allclose(inside, direct, atol=1e-6)

  @parameterized.named_parameters(
    ("samples", dict(num_samples=0)),
    ("delta", dict(delta=0.0)),
    ("learning_rate", dict(learning_rate=-1.0)),
    ("chunk", dict(num_samples=8, sample_chunk_size=3)),
    ("norm", dict(norm="l1")),
  )
  def test_bad_parameters(self, overrides):
    with self.assertRaises(ValueError):
      attacks.make_spsa(**(dict(eps=0.03, num_steps=2) | overrides))


if __name__ == "__main__":
  absltest.main()
