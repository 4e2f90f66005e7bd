"""FAB: its projections against SciPy's linear program and a bisection,
the minimal perturbations of linear classifiers (closed forms), failures
beyond eps, compilation and errors."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized
from scipy import optimize

from stochjax import attacks
from stochjax.attacks import fab
from tests import test_utils


def _instances(seed, n=12, d=30):
  """Rows t in [0, 1], hyperplanes w.z = b through the box's interior."""
  rng = np.random.default_rng(seed)
  t = rng.uniform(0, 1, (n, d))
  w = rng.normal(size=(n, d))
  w[:, :3] = 0.0  # coordinates the hyperplane ignores
  target = rng.uniform(0.2, 0.8, (n, d))
  b = np.sum(w * target, 1)
  return t, w, b


def _linprog_linf(t, w, b):
  """min s s.t. |d_i| <= s, w.d = b - w.t, 0 <= t + d <= 1."""
  d = len(t)
  cost = np.r_[np.zeros(d), 1.0]
  upper = np.block(
    [[np.eye(d), -np.ones((d, 1))], [-np.eye(d), -np.ones((d, 1))]]
  )
  bounds = [(-ti, 1 - ti) for ti in t] + [(0, None)]
  out = optimize.linprog(
    cost, A_ub=upper, b_ub=np.zeros(2 * d), A_eq=np.r_[w, 0.0][None],
    b_eq=[b - w @ t], bounds=bounds,
  )  # fmt: skip
  return out.fun


def _bisection_l2(t, w, b):
  """min ||d||_2 s.t. w.d = c, box: d_i = clip(lam w_i, -t_i, 1 - t_i) with
  lam found by bisection (the KKT conditions)."""
  c = b - w @ t

  def gap(lam):
    return w @ np.clip(lam * w, -t, 1 - t) - c

  lo, hi = -1e3, 1e3
  for _ in range(200):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
  return np.linalg.norm(np.clip(lo * w, -t, 1 - t))


class ProjectionTest(parameterized.TestCase):
  @parameterized.parameters(0, 1, 2)
  def test_linf_is_the_linear_programs_optimum(self, seed):
    t, w, b = _instances(seed)
    d = np.asarray(fab.project_linf(*map(jnp.asarray, (t, w, b))), np.float64)
    np.testing.assert_allclose(np.sum(w * (t + d), 1), b, atol=1e-4)
    self.assertTrue(np.all((t + d >= -1e-6) & (t + d <= 1 + 1e-6)))
    ref = [_linprog_linf(*row) for row in zip(t, w, b, strict=True)]
    np.testing.assert_allclose(np.abs(d).max(1), ref, rtol=1e-4, atol=1e-6)

  @parameterized.parameters(0, 1, 2)
  def test_l2_is_the_kkt_optimum(self, seed):
    t, w, b = _instances(seed)
    d = np.asarray(fab.project_l2(*map(jnp.asarray, (t, w, b))), np.float64)
    np.testing.assert_allclose(np.sum(w * (t + d), 1), b, atol=1e-4)
    self.assertTrue(np.all((t + d >= -1e-6) & (t + d <= 1 + 1e-6)))
    ref = [_bisection_l2(*row) for row in zip(t, w, b, strict=True)]
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), ref, rtol=1e-4)


def _linear(seed, k, n=16, shape=(4, 5, 3)):
  """A k-class linear model on images in [0.35, 0.65], all classified as
  their labels, and the closed-form minimal perturbations (the box is
  never reached)."""
  rng = np.random.default_rng(seed)
  d = int(np.prod(shape))
  w = rng.normal(size=(d, k)).astype(np.float32)
  images = rng.uniform(0.35, 0.65, (n, *shape)).astype(np.float32)
  z = images.reshape(n, -1) @ w
  labels = np.argmax(z, -1)

  def minimal(dual):  # dual norm: 1 for linf, 2 for l2
    gaps = np.full((n, k), np.inf)
    for i in range(n):
      for t in range(k):
        if t != labels[i]:
          diff = w[:, t] - w[:, labels[i]]
          gaps[i, t] = (z[i, labels[i]] - z[i, t]) / np.linalg.norm(diff, dual)
    return gaps.min(1)

  fn = test_utils.linear_logits_fn(jnp.asarray(w))
  return fn, jnp.asarray(images), jnp.asarray(labels, jnp.int32), minimal


class FabTest(parameterized.TestCase):
  @parameterized.parameters(
    ("l2", 2, 1), ("linf", 1, 1), ("l2", 2, None), ("linf", 1, None)
  )
  def test_finds_the_minimal_perturbation_of_a_linear_classifier(
    self, norm, dual, num_targets
  ):
    k = 2 if num_targets == 1 else 5
    fn, images, labels, minimal = _linear(0, k)
    best = minimal(dual)
    attack = attacks.make_fab(
      eps=1.0 if norm == "linf" else 10.0, norm=norm, num_steps=30,
      num_targets=num_targets,
    )  # fmt: skip
    adv = attack(jax.random.key(0), fn, images, labels)
    flat = np.asarray(adv - images).reshape(len(best), -1)
    found = np.linalg.norm(flat, np.inf if norm == "linf" else 2, axis=1)
    self.assertTrue(np.all(np.argmax(fn(adv), -1) != labels))
    self.assertTrue(np.all(found >= best * (1 - 1e-3)))
    self.assertLess(np.max(found / best), 1.02)

  def test_spent_evaluations_equal_the_cost(self):
    # Eps 1e-4: nothing breaks, so every target and step runs.
    fn, images, labels, _ = _linear(2, 5)
    for num_targets in (None, 3):
      attack = attacks.make_fab(eps=1e-4, num_steps=4, num_targets=num_targets)
      out = attack.with_info(jax.random.key(0), fn, images, labels)
      with self.subTest(num_targets=num_targets):
        n = len(labels)
        self.assertEqual(out.grad_evals, attack.cost.grad_evals * n)
        self.assertEqual(out.forward_evals, attack.cost.forward_evals * n)

  def test_points_beyond_eps_stay_clean(self):
    fn, images, labels, minimal = _linear(1, 2)
    best = minimal(2)
    eps = float(np.median(best))
    adv = attacks.make_fab(eps=eps, norm="l2", num_steps=30, num_targets=1)(
      jax.random.key(0), fn, images, labels
    )
    moved = np.any(np.asarray(adv != images).reshape(len(best), -1), 1)
    np.testing.assert_array_equal(moved, best <= eps * 0.98)
    flat = np.asarray(adv - images).reshape(len(best), -1)
    self.assertLessEqual(np.linalg.norm(flat, axis=1).max(), eps + 1e-5)

  def test_second_call_does_not_recompile(self):
    _, images, labels, _ = _linear(2, 3)
    attack = attacks.make_fab(eps=0.1, num_steps=3, num_targets=2)
    weights = test_utils.random_images(3, (60, 3))
    first, second = test_utils.traces_for_new_weights(
      attack, images, labels, weights
    )
    self.assertEqual(first, second)

  @parameterized.named_parameters(
    ("targets", dict(num_targets=0)),
    ("alpha", dict(alpha_max=0.0)),
    ("beta", dict(beta=1.5)),
    ("eta", dict(eta=-1.0)),
    ("norm", dict(norm="l1")),
  )
  def test_bad_parameters(self, overrides):
    with self.assertRaises(ValueError):
      attacks.make_fab(**(dict(eps=0.1) | overrides))


if __name__ == "__main__":
  absltest.main()
