"""Square Attack: its schedule and window pattern against ports of
AutoAttack's ``square.py``, the linf closed form on a linear model, EOT,
snapshots, stopping, composability and errors."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from stochjax import attacks
from stochjax.attacks import square
from tests import test_utils


def _p_selection(it, num_queries, p_init, rescale):
  """AutoAttack's ``SquareAttack.p_selection``, transcribed."""
  if rescale:
    it = int(it / num_queries * 10000)
  if 10 < it <= 50:
    return p_init / 2
  if 50 < it <= 200:
    return p_init / 4
  if 200 < it <= 500:
    return p_init / 8
  if 500 < it <= 1000:
    return p_init / 16
  if 1000 < it <= 2000:
    return p_init / 32
  if 2000 < it <= 4000:
    return p_init / 64
  if 4000 < it <= 6000:
    return p_init / 128
  if 6000 < it <= 8000:
    return p_init / 256
  if 8000 < it:
    return p_init / 512
  return p_init


def _eta_rectangles(x, y):
  """AutoAttack's ``eta_rectangles`` (l2), transcribed to NumPy."""
  delta = np.zeros([x, y])
  x_c, y_c = x // 2 + 1, y // 2 + 1
  corner = [x_c - 1, y_c - 1]
  for counter in range(max(x_c, y_c)):
    delta[
      max(corner[0], 0) : min(corner[0] + 2 * counter + 1, x),
      max(0, corner[1]) : min(corner[1] + 2 * counter + 1, y),
    ] += 1.0 / (counter + 1) ** 2
    corner[0] -= 1
    corner[1] -= 1
  return delta / np.sqrt((delta**2).sum())


def _eta(s):
  delta = np.zeros([s, s])
  delta[: s // 2] = _eta_rectangles(s // 2, s)
  delta[s // 2 :] = -1.0 * _eta_rectangles(s - s // 2, s)
  return delta / np.sqrt((delta**2).sum())


def _l2_step_port(x, x_best, eps, s, vh, vw, vh2, vw2, turned, signs):
  """AutoAttack's l2 query (one example, channels first), transcribed."""
  c = x.shape[0]
  delta = x_best - x
  norm_window_1 = np.sqrt(
    (delta[:, vh : vh + s, vw : vw + s] ** 2).sum((-2, -1))
  )
  mask = np.zeros_like(x)
  mask[:, vh : vh + s, vw : vw + s] = 1.0
  mask[:, vh2 : vh2 + s, vw2 : vw2 + s] = 1.0
  norm_image = np.sqrt((delta**2).sum())
  norm_windows = np.sqrt(((delta * mask) ** 2).sum((-2, -1)))
  eta = _eta(s).T if turned else _eta(s)
  new = eta[None] * signs[:, None, None]
  new = new + delta[:, vh : vh + s, vw : vw + s] / (
    1e-12 + norm_window_1[:, None, None]
  )
  new = new / (1e-12 + np.sqrt((new**2).sum((-2, -1), keepdims=True)))
  new = (
    new
    * np.sqrt(np.maximum(eps**2 - norm_image**2, 0) / c + norm_windows**2)[
      :, None, None
    ]
  )
  delta = delta.copy()
  delta[:, vh2 : vh2 + s, vw2 : vw2 + s] = 0.0
  delta[:, vh : vh + s, vw : vw + s] = new
  delta = delta / (np.sqrt((delta**2).sum()) + 1e-12)
  return np.clip(x + delta * eps, 0.0, 1.0)


def _linf_step_port(x, x_best, eps, s, vh, vw, signs):
  """AutoAttack's linf query (one example, channels first), transcribed."""
  new = np.zeros_like(x)
  new[:, vh : vh + s, vw : vw + s] = 2.0 * eps * signs[:, None, None]
  return np.clip(np.clip(x_best + new, x - eps, x + eps), 0.0, 1.0)


class ScheduleTest(parameterized.TestCase):
  @parameterized.parameters(
    (100, True), (5000, True), (10000, True), (300, False), (12000, False)
  )
  def test_p_and_sides_follow_autoattack(self, num_queries, rescale):
    p = square.p_schedule(num_queries, 0.8, rescale)
    ref = [
      _p_selection(i, num_queries, 0.8, rescale) for i in range(num_queries)
    ]
    np.testing.assert_allclose(p, ref)
    for h, w, c in ((32, 32, 3), (8, 8, 1), (224, 224, 3)):
      n_features = h * w * c
      linf = [
        min(max(int(round(np.sqrt(q * n_features / c))), 1), h, w) for q in ref
      ]
      l2 = []
      for q in ref:
        s = max(int(round(np.sqrt(q * n_features / c))), 3)
        l2.append(min(s + 1 if s % 2 == 0 else s, h, w))
      np.testing.assert_array_equal(
        square.side_schedule("linf", num_queries, 0.8, h, w, c, rescale), linf
      )
      np.testing.assert_array_equal(
        square.side_schedule("l2", num_queries, 0.8, h, w, c, rescale), l2
      )

  def test_the_l2_window_pattern_is_autoattacks(self):
    for s in range(1, 16):
      for turned in (False, True):
        grid = np.asarray(square.eta_grid(20, 18, 2, 1, s, turned))
        ref = _eta(s).T if turned else _eta(s)
        np.testing.assert_allclose(grid[2 : 2 + s, 1 : 1 + s], ref, atol=1e-6)
        outside = np.abs(grid).sum() - np.abs(grid[2 : 2 + s, 1 : 1 + s]).sum()
        self.assertLess(outside, 1e-6)


class StepTest(parameterized.TestCase):
  @parameterized.parameters((3, False), (5, True), (7, False), (9, True))
  @test_utils.slow_cases(2, 3)  # Turned and not: sides 3 and 5 stay.
  def test_one_query_equals_autoattacks(self, side, turned):
    rng = np.random.default_rng(side)
    h, w, c = 12, 11, 3
    x = rng.uniform(0, 1, (h, w, c)).astype(np.float32)
    eps = 0.7
    delta = rng.normal(size=(h, w, c))
    best = np.clip(x + eps * delta / np.linalg.norm(delta), 0, 1)
    best = best.astype(np.float32)
    vh, vw, vh2, vw2 = (int(v) for v in rng.integers(0, h - side, 4))
    signs = rng.choice([-1.0, 1.0], c).astype(np.float32)
    proposal = square.Proposal(
      *map(jnp.asarray, (vh, vw, vh2, vw2, turned)),
      jnp.asarray(signs)[None, None],
    )
    chw = lambda a: np.moveaxis(np.asarray(a, np.float64), -1, 0)  # noqa: E731
    ours = square.l2_step(x, best, eps, side, proposal)
    ref = _l2_step_port(
      chw(x), chw(best), eps, side, vh, vw, vh2, vw2, turned, signs
    )
    np.testing.assert_allclose(chw(ours), ref, atol=2e-6)
    ours = square.linf_step(x, best, 0.05, side, proposal)
    ref = _linf_step_port(chw(x), chw(best), 0.05, side, vh, vw, signs)
    np.testing.assert_allclose(chw(ours), ref, atol=1e-6)


def _binary_linear(seed=0, n=48, shape=(8, 8, 1)):
  """Logits ``[0, w.x + b]`` on images in [0.3, 0.7]: the smallest linf
  perturbation that flips an image is ``|f(x)| / ||w||_1`` (the box is not
  reached for radii below 0.3)."""
  rng = np.random.default_rng(seed)
  w = rng.normal(size=int(np.prod(shape))).astype(np.float32)
  images = rng.uniform(0.3, 0.7, (n, *shape)).astype(np.float32)
  f = images.reshape(n, -1) @ w
  b = -np.median(f)
  weights = jnp.asarray(np.stack([np.zeros_like(w), w], 1))
  bias = jnp.asarray([0.0, b], jnp.float32)

  def logits_fn(x):
    return x.reshape(x.shape[0], -1) @ weights + bias[None]

  labels = ((f + b) > 0).astype(np.int32)
  return logits_fn, jnp.asarray(images), jnp.asarray(labels), np.abs(f + b), w


class SquareTest(parameterized.TestCase):
  def test_linf_success_matches_the_closed_form_of_a_linear_model(self):
    logits_fn, images, labels, margin, w = _binary_linear()
    eps = 0.05
    needed = margin / np.abs(w).sum()  # smallest linf radius that flips
    attack = attacks.make_square(eps=eps, num_queries=2000)
    adv = attack(jax.random.key(0), logits_fn, images, labels)
    fooled = np.asarray(jnp.argmax(logits_fn(adv), -1) != labels)
    self.assertLessEqual(float(jnp.max(jnp.abs(adv - images))), eps + 1e-6)
    np.testing.assert_array_equal(fooled[needed > eps], False)
    self.assertGreater((needed < 0.9 * eps).sum(), 10)
    np.testing.assert_array_equal(fooled[needed < 0.9 * eps], True)

  def test_l2_stays_on_the_sphere_and_in_the_box(self):
    logits_fn, images, labels, margin, w = _binary_linear(1, shape=(10, 10, 3))
    eps = 0.5
    adv = attacks.make_square(eps=eps, norm="l2", num_queries=1000)(
      jax.random.key(0), logits_fn, images, labels
    )
    norms = np.linalg.norm(
      np.asarray(adv - images).reshape(len(adv), -1), axis=1
    )
    self.assertLessEqual(norms.max(), eps * (1 + 1e-5))
    self.assertTrue(np.all((adv >= 0) & (adv <= 1)))
    fooled = np.asarray(jnp.argmax(logits_fn(adv), -1) != labels)
    needed = margin / np.linalg.norm(w)  # smallest l2 radius that flips
    np.testing.assert_array_equal(fooled[needed > eps], False)
    self.assertGreater(fooled[needed < 0.5 * eps].mean(), 0.9)

  @parameterized.parameters("linf", "l2")
  def test_eot_on_a_deterministic_defense_is_plain_square(self, norm):
    logits_fn, images, labels, _, _ = _binary_linear(2, shape=(10, 10, 3))
    common = dict(
      eps=0.03 if norm == "linf" else 0.3, norm=norm, num_queries=200
    )
    plain = attacks.make_square(**common).with_info(
      jax.random.key(3), logits_fn, images, labels
    )
    # A deterministic defense (a mirror) before a model that mirrors back:
    # every draw is the plain model.
    defense = lambda key, image: image[:, ::-1]  # noqa: E731
    eot = attacks.make_square(eot_samples=4, defense=defense, **common)
    mirrored = eot.with_info(
      jax.random.key(3),
      lambda x: logits_fn(x[:, :, ::-1]),
      images,
      labels,
    )
    np.testing.assert_array_equal(plain.images, mirrored.images)
    np.testing.assert_array_equal(plain.goal_rates, mirrored.goal_rates)
    self.assertEqual(mirrored.forward_evals, 4 * plain.forward_evals)

  def test_points_that_meet_the_goal_stop_and_the_batch_with_them(self):
    logits_fn, images, labels, _, _ = _binary_linear(3)
    attack = attacks.make_square(eps=0.001, num_queries=300, eot_samples=2)
    out = attack.with_info(jax.random.key(0), logits_fn, images, 1 - labels)
    # Every image is already misclassified against the wrong labels: only
    # the start point is evaluated.
    self.assertEqual(out.forward_evals, 2 * len(labels))
    self.assertEqual(attack.cost.forward_evals, 301 * 2)
    self.assertEqual(attack.cost.grad_evals, 0)

  def test_snapshots_equal_shorter_runs(self):
    logits_fn, images, labels, _, _ = _binary_linear(4)
    common = dict(eps=0.03, rescale_schedule=False)
    kept = attacks.make_square(
      num_queries=60, snapshot_queries=(5, 30), **common
    )(jax.random.key(1), logits_fn, images, labels)
    self.assertEqual(kept.shape, (len(labels), 2, *images.shape[1:]))
    for slot, q in enumerate((5, 30)):
      alone = attacks.make_square(num_queries=q, **common)(
        jax.random.key(1), logits_fn, images, labels
      )
      np.testing.assert_array_equal(kept[:, slot], alone)

  def test_composes_with_jit_vmap_and_does_not_recompile(self):
    _, images, labels, _, _ = _binary_linear(5, n=8)
    attack = attacks.make_square(eps=0.03, num_queries=20)
    weights = jnp.asarray(np.random.default_rng(0).normal(size=(64, 2)))
    weights = weights.astype(jnp.float32)
    first, second = test_utils.traces_for_new_weights(
      attack, images, labels, weights
    )
    self.assertEqual(first, second)

    @jax.jit
    def mean_change(w):
      fn = lambda x: x.reshape(x.shape[0], -1) @ w  # noqa: E731
      return jnp.mean(
        jnp.abs(attack(jax.random.key(0), fn, images, labels) - images)
      )

    direct = attack(
      jax.random.key(0), test_utils.linear_logits_fn(weights), images, labels
    )
    self.assertAlmostEqual(
      float(mean_change(weights)), float(jnp.mean(jnp.abs(direct - images))), 6
    )
    batched = jax.vmap(mean_change)(jnp.stack([weights, weights]))
    self.assertEqual(batched.shape, (2,))

  @parameterized.named_parameters(
    ("p_init", dict(p_init=0.0)),
    ("p_init_big", dict(p_init=1.5)),
    ("snapshot", dict(snapshot_queries=(0,))),
    ("snapshot_restarts", dict(snapshot_queries=(3,), restarts=2)),
    ("norm", dict(norm="l1")),
    ("queries", dict(num_queries=0)),
  )
  def test_bad_parameters(self, overrides):
    with self.assertRaises(ValueError):
      attacks.make_square(**(dict(eps=0.03, num_queries=10) | overrides))


if __name__ == "__main__":
  absltest.main()
