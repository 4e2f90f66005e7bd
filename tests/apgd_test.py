"""AutoPGD: schedule, NumPy ports of both variants, behaviour and errors.

The ports follow AutoAttack's ``apgd-pt`` loop and ART 1.9.1's ``generate``
(official_code.md §2.3) step by step in float64 on a deterministic linear
softmax model, where one draw is exact and every decision can be replayed.
"""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from stochjax import attacks, defenses, prng
from stochjax.attacks import apgd, apgd_art, norms
from tests import test_utils

N, H, W, C, K = 6, 4, 4, 3, 5
EPS = 0.05


def _problem(seed=0):
  rng = np.random.default_rng(seed)
  weights = rng.normal(size=(H * W * C, K)).astype(np.float32)
  images = rng.uniform(0.2, 0.8, (N, H, W, C)).astype(np.float32)
  logits = images.reshape(N, -1) @ weights
  labels = np.argmax(logits, -1).astype(np.int32)  # all correct at first
  return weights, images, labels


def _loss_and_grad(weights, x, labels):
  """CE per example and its input gradient, float64."""
  logits = x.reshape(len(x), -1) @ weights.astype(np.float64)
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  loss = -np.log(p[np.arange(len(x)), labels])
  residual = p - np.eye(K)[labels]
  return loss, (residual @ weights.T).reshape(x.shape), logits


def _project(x, x0, eps):
  return np.clip(np.clip(x, 0, 1), x0 - eps, x0 + eps)


def _autoattack_port(weights, x0, labels, *, eps, steps):
  """AutoAttack's per-example APGD (CE, linf), without random start."""
  n = len(x0)
  first, shortest, shrink = (max(int(f * steps), 1) for f in (0.22, 0.06, 0.03))
  x = x0.astype(np.float64)
  loss, grad, logits = _loss_and_grad(weights, x, labels)
  step = np.full(n, 2 * eps)
  best = [x.copy(), (logits.argmax(-1) != labels) * 1.0, loss.copy()]
  top_x, top_grad, top = x.copy(), grad.copy(), loss.copy()
  top_at_check, halved = top.copy(), np.ones(n, bool)
  last, rises, x_prev = loss.copy(), np.zeros(n), x.copy()
  length, counter = first, 0
  for i in range(steps):
    a = 1.0 if i == 0 else 0.75
    z = _project(x + step[:, None, None, None] * np.sign(grad), x0, eps)
    x_new = _project(x + a * (z - x) + (1 - a) * (x - x_prev), x0, eps)
    x_prev = x
    loss, grad, logits = _loss_and_grad(weights, x_new, labels)
    success = (logits.argmax(-1) != labels) * 1.0
    take = (success > best[1]) | ((success == best[1]) & (loss > best[2]))
    best = [
      np.where(take[:, None, None, None], x_new, best[0]),
      np.where(take, success, best[1]),
      np.where(take, loss, best[2]),
    ]
    rose = loss > top
    top_x[rose], top_grad[rose], top[rose] = x_new[rose], grad[rose], loss[rose]
    rises += loss > last
    last = loss
    x = x_new
    counter += 1
    if counter == length:
      halve = (rises <= 0.75 * length) | (~halved & (top_at_check >= top))
      halved, top_at_check, rises = halve, top.copy(), np.zeros(n)
      step[halve] /= 2
      x[halve], grad[halve] = top_x[halve], top_grad[halve]
      length, counter = max(length - shrink, shortest), 0
  return best[0]


def _art_port(weights, x0, labels, start, *, eps, eta, steps, targeted):
  """ART 1.9.1's APGD (CE, linf, one restart) from a given random start."""
  sign = -1.0 if targeted else 1.0

  def met(logits):
    hit = logits.argmax(-1) == labels[: len(logits)]
    return hit if targeted else ~hit

  robust = ~met(_loss_and_grad(weights, x0, labels)[2])
  xr, x0r = start[robust].astype(np.float64), x0[robust].astype(np.float64)
  yr = labels[robust]

  def f(x):
    return _loss_and_grad(weights, x, yr)[0].mean()

  def g(x):
    return np.sign(sign * _loss_and_grad(weights, x, yr)[1])

  w = apgd_art.checkpoints(steps)
  x_k = xr
  x1 = _project(x_k + eta * g(x_k), x0r, eps)
  f0, f1 = f(x_k), f(x1)
  top, x_top, count = (f1, x1, 1) if f1 >= f0 else (f0, x_k, 0)
  x_top_prev, eta_at, top_at = x0r, eta, f0
  x_prev, x_k = x_k, x1
  for k in range(1, steps):
    z = _project(x_k + eta * g(x_k), x0r, eps)
    x_new = _project(x_k + 0.75 * (z - x_k) + 0.25 * (x_k - x_prev), x0r, eps)
    fk = f(x_new)
    if fk == 0.0:
      x_k = x_new
      break
    if (fk < top) if targeted else (fk > top):
      count, x_top, x_top_prev, top = count + 1, x_new, x_k, fk
    x_prev, x_k = x_k, x_new
    if w[0][k]:
      if count < 0.75 * w[1][k] or (eta_at == eta and top_at == top):
        eta, x_k, x_prev = eta / 2, x_top, x_top_prev
      count, eta_at, top_at = 0, eta, top
  out = x0.astype(np.float64).copy()
  hit = _loss_and_grad(weights, x_k, yr)[2].argmax(-1) == yr
  final = hit if targeted else ~hit
  out[robust] = np.where(final[:, None, None, None], x_k, xr)
  return out


class ScheduleTest(absltest.TestCase):
  def test_checkpoints_match_autoattack(self):
    is_check, interval = apgd.checkpoints(100)
    np.testing.assert_array_equal(
      np.flatnonzero(is_check), [21, 40, 56, 69, 79, 86, 92, 98]
    )
    np.testing.assert_array_equal(
      interval[is_check], [22, 19, 16, 13, 10, 7, 6, 6]
    )

  def test_art_checkpoints_follow_its_recursion(self):
    is_check, interval = apgd_art.checkpoints(100)
    checks = np.flatnonzero(is_check)
    self.assertEqual(checks[0], 22)  # ceil(0.22 * 100)
    # Intervals shrink by 3 points until the 6-point floor.
    steps = np.diff(np.concatenate([[0], checks]))
    np.testing.assert_array_equal(steps, interval[is_check])
    self.assertTrue(np.all(np.diff(steps) <= 0) and steps[-1] >= 6)


class PortTest(parameterized.TestCase):
  def test_reference_matches_autoattack_port(self):
    weights, images, labels = _problem()
    attack = attacks.make_apgd(eps=EPS, num_steps=25, random_init=False)
    adv = attack(
      jax.random.key(0),
      test_utils.linear_logits_fn(jnp.asarray(weights)),
      jnp.asarray(images),
      jnp.asarray(labels),
    )
    expected = _autoattack_port(weights, images, labels, eps=EPS, steps=25)
    np.testing.assert_allclose(adv, expected, atol=1e-5)

  @parameterized.parameters(False, True)
  def test_art_compat_matches_art_port(self, targeted):
    weights, images, labels = _problem(1)
    goal = (labels + 1) % K if targeted else labels
    key = jax.random.key(3)
    attack = attacks.make_apgd(
      eps=EPS,
      num_steps=20,
      step_size=0.01,
      art_compat=True,
      targeted=targeted,
    )
    adv = attack(
      key,
      test_utils.linear_logits_fn(jnp.asarray(weights)),
      jnp.asarray(images),
      jnp.asarray(goal),
    )
    # Restart 0 uses the example keys themselves; the start is split 5th.
    x0 = jnp.asarray(images)
    init_keys = prng.split_each(prng.per_example(key, len(x0)), 5)
    start = norms.project(
      "linf", EPS, x0 + norms.random_delta("linf", EPS, init_keys[4], x0), x0
    )
    expected = _art_port(
      weights,
      images,
      goal,
      np.asarray(start),
      eps=EPS,
      eta=0.01,
      steps=20,
      targeted=targeted,
    )
    np.testing.assert_allclose(adv, expected, atol=1e-5)
    moved = np.abs(np.asarray(adv) - np.asarray(start)).max((1, 2, 3))
    self.assertGreater(int(np.sum(moved > 1e-3)), 0)  # some kept the iterate


class BehaviourTest(parameterized.TestCase):
  def test_restarts_keep_the_best_of_separate_runs(self):
    weights, images, labels = _problem(2)
    fn = test_utils.linear_logits_fn(jnp.asarray(weights))
    x, y = jnp.asarray(images), jnp.asarray(labels)
    common = dict(eps=0.02, num_steps=5, loss="margin")
    merged = attacks.make_apgd(restarts=3, **common)(
      jax.random.key(0), fn, x, y
    )
    margins = []
    candidates = []
    for r in range(3):
      key = (
        jax.random.key(0)
        if r == 0
        else jax.random.fold_in(jax.random.key(0), r)
      )
      adv = attacks.make_apgd(**common)(key, fn, x, y)
      candidates.append(adv)
      margins.append(attacks.margin(fn(adv), y))
    margins = np.stack(margins)  # (3, N); success = margin > 0
    score = np.where(margins > 0, 1e6, 0.0) + margins
    best = np.stack(candidates)[np.argmax(score, 0), np.arange(N)]
    np.testing.assert_allclose(merged, best, atol=1e-6)

  def test_eot_and_cost(self):
    weights, images, labels = _problem()
    defense = defenses.lookup("gaussian_noise(sigma=0.1)")
    attack = attacks.make_apgd(
      eps=EPS,
      num_steps=4,
      eot_samples=4,
      eot_chunk_size=2,
      defense=defense,
      restarts=2,
    )
    result = attack.with_info(
      jax.random.key(0),
      test_utils.linear_logits_fn(jnp.asarray(weights)),
      jnp.asarray(images),
      jnp.asarray(labels),
    )
    self.assertEqual(result.losses.shape, (2, 4, N))
    self.assertEqual(result.cost.grad_evals, 2 * 5 * 4)
    self.assertEqual(result.cost.strength, 16)
    self.assertEqual(result.grad_evals, 2 * 5 * 4 * N)
    self.assertLessEqual(
      float(jnp.abs(result.images - images).max()), EPS + 1e-6
    )

  def test_l2_stays_in_the_ball_and_beats_the_start(self):
    weights, images, labels = _problem(3)
    fn = test_utils.linear_logits_fn(jnp.asarray(weights))
    x, y = jnp.asarray(images), jnp.asarray(labels)
    adv = attacks.make_apgd(eps=0.3, num_steps=10, norm="l2")(
      jax.random.key(0), fn, x, y
    )
    radius = jnp.sqrt(jnp.sum((adv - x) ** 2, axis=(1, 2, 3)))
    self.assertTrue(np.all(radius <= 0.3 * (1 + 1e-5)))
    self.assertTrue(np.all((adv >= 0) & (adv <= 1)))
    margin_of = lambda z: attacks.margin(fn(z), y)  # noqa: E731
    self.assertTrue(np.all(margin_of(adv) > margin_of(x)))

  def test_early_stop_spends_less_and_still_succeeds(self):
    weights, images, labels = _problem()
    fn = test_utils.linear_logits_fn(jnp.asarray(weights))
    x, y = jnp.asarray(images), jnp.asarray(labels)
    common = dict(eps=1.0, num_steps=30)
    full = attacks.make_apgd(**common).with_info(jax.random.key(0), fn, x, y)
    early = attacks.make_apgd(early_stop=True, **common).with_info(
      jax.random.key(0), fn, x, y
    )
    self.assertTrue(np.all(np.argmax(fn(early.images), -1) != labels))
    self.assertLess(early.grad_evals, full.grad_evals)

  def test_second_call_does_not_recompile(self):
    weights, images, labels = _problem()
    counter = test_utils.TraceCounter()
    attack = attacks.make_apgd(eps=EPS, num_steps=3, restarts=2)
    for scale in (1.0, 2.0):
      attack(
        jax.random.key(0),
        test_utils.linear_logits_fn(jnp.asarray(weights) * scale, counter),
        jnp.asarray(images),
        jnp.asarray(labels),
      )
      if scale == 1.0:
        traces = counter.traces
    self.assertEqual(counter.traces, traces)


class BadInputTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("restarts", dict(restarts=0)),
    ("loss", dict(loss="kl")),
    ("eot_mode", dict(eot_mode="median")),
    ("momentum", dict(momentum=1.5)),
    ("art_step", dict(art_compat=True)),
    ("art_momentum", dict(art_compat=True, step_size=0.01, momentum=0.9)),
  )
  def test_bad_parameters(self, overrides):
    with self.assertRaises(ValueError):
      attacks.make_apgd(eps=EPS, num_steps=3, **overrides)

  def test_dlr_needs_enough_classes(self):
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(0, 1, (2, H, W, C)).astype(np.float32))
    labels = jnp.zeros((2,), jnp.int32)
    for classes, targeted, ok in (
      (2, False, False),
      (3, False, True),
      (3, True, False),
      (4, True, True),
    ):
      fn = test_utils.linear_logits_fn(
        jnp.asarray(rng.normal(size=(H * W * C, classes)).astype(np.float32))
      )
      attack = attacks.make_apgd(
        eps=EPS, num_steps=2, loss="dlr", targeted=targeted
      )
      with self.subTest(classes=classes, targeted=targeted):
        if ok:
          attack(jax.random.key(0), fn, images, labels)
        else:
          with self.assertRaisesRegex(ValueError, "at least"):
            attack(jax.random.key(0), fn, images, labels)

  def test_non_finite_logits(self):
    weights, images, labels = _problem()
    bad = jnp.asarray(weights).at[0, 0].set(jnp.nan)
    attack = attacks.make_apgd(eps=EPS, num_steps=2)
    with self.assertRaisesRegex(ValueError, "NaN or infinite logits"):
      attack(
        jax.random.key(0),
        test_utils.linear_logits_fn(bad),
        jnp.asarray(images),
        jnp.asarray(labels),
      )


if __name__ == "__main__":
  absltest.main()
