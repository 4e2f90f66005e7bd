"""PGD with EOT: closed-form cases on linear models, keys, compiles, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from stochjax import attacks, defenses, prng
from stochjax.attacks import eot, norms
from tests import test_utils

N, H, W, C, K = 4, 6, 6, 3, 5


def _linear_problem(seed=0, lo=0.3, hi=0.7):
  rng = np.random.default_rng(seed)
  weights = jnp.asarray(rng.normal(size=(H * W * C, K)).astype(np.float32))
  images = test_utils.random_images(seed, (N, H, W, C), lo, hi)
  labels = jnp.asarray(rng.integers(0, K, N), jnp.int32)
  return weights, images, labels


def _ce_input_grad(weights, images, labels):
  """Closed form: d CE / dx = W (softmax - onehot), per example."""
  logits = images.reshape(N, -1) @ weights
  residual = jax.nn.softmax(logits) - jax.nn.one_hot(labels, K)
  return (residual @ weights.T).reshape(images.shape)


class ClosedFormTest(parameterized.TestCase):
  @parameterized.parameters(False, True)
  def test_one_linf_step(self, targeted):
    weights, images, labels = _linear_problem()
    alpha = 0.01
    attack = attacks.make_pgd(
      eps=1.0, step_size=alpha, num_steps=1, targeted=targeted
    )
    adv = attack(
      jax.random.key(0), test_utils.linear_logits_fn(weights), images, labels
    )
    grad = _ce_input_grad(weights, images, labels)
    sign = -1.0 if targeted else 1.0
    expected = jnp.clip(images + sign * alpha * jnp.sign(grad), 0.0, 1.0)
    np.testing.assert_allclose(adv, expected, atol=1e-6)

  def test_l2_step_length_is_alpha(self):
    weights, images, labels = _linear_problem()
    attack = attacks.make_pgd(eps=10.0, step_size=0.05, num_steps=1, norm="l2")
    adv = attack(
      jax.random.key(0), test_utils.linear_logits_fn(weights), images, labels
    )
    lengths = jnp.sqrt(jnp.sum((adv - images) ** 2, axis=(1, 2, 3)))
    np.testing.assert_allclose(lengths, 0.05, rtol=1e-5)
    grad = _ce_input_grad(weights, images, labels)
    cosine = jnp.sum((adv - images) * grad, axis=(1, 2, 3)) / (
      lengths * jnp.sqrt(jnp.sum(grad**2, axis=(1, 2, 3)))
    )
    np.testing.assert_allclose(cosine, 1.0, rtol=1e-5)

  def test_targeted_linear_reaches_target(self):
    weights, images, labels = _linear_problem(1, 0.0, 1.0)
    targets = (labels + 1) % K
    attack = attacks.make_pgd(
      eps=0.5, step_size=0.02, num_steps=100, targeted=True
    )
    logits_fn = test_utils.linear_logits_fn(weights)
    adv = attack(jax.random.key(0), logits_fn, images, targets)
    np.testing.assert_array_equal(jnp.argmax(logits_fn(adv), -1), targets)


class ProjectionTest(parameterized.TestCase):
  @parameterized.product(norm=("linf", "l2"), eps=(0.03, 0.5))
  def test_inside_ball_and_box_and_idempotent(self, norm, eps):
    x0 = test_utils.random_images(0, (N, H, W, C))
    x = x0 + jax.random.normal(jax.random.key(1), x0.shape)
    projected = norms.project(norm, eps, x, x0)
    delta = (projected - x0).reshape(N, -1)
    size = (
      jnp.abs(delta).max(-1)
      if norm == "linf"
      else jnp.linalg.norm(delta, axis=-1)
    )
    self.assertTrue(np.all(size <= eps * (1 + 1e-5)))
    self.assertTrue(np.all((projected >= 0) & (projected <= 1)))
    np.testing.assert_allclose(
      norms.project(norm, eps, projected, x0), projected, atol=1e-7
    )

  @parameterized.parameters("linf", "l2")
  def test_random_start_inside(self, norm):
    x0 = test_utils.random_images(0, (N, H, W, C))
    keys = prng.per_example(jax.random.key(0), N)
    start = norms.random_start(norm, 0.1, keys, x0)
    np.testing.assert_allclose(norms.project(norm, 0.1, start, x0), start)
    self.assertGreater(float(jnp.abs(start - x0).max()), 0.0)
    # Example i's start depends on keys[i] alone.
    alone = norms.random_start(norm, 0.1, keys[1:2], x0[1:2])
    np.testing.assert_array_equal(alone, start[1:2])


_EOT_DEFENSE = defenses.lookup(
  "gaussian_noise(sigma=0.2, clip=False)|rotation(max_degrees=30)"
)


def _eot_value_and_grad(weights, eot_samples, chunk_size):
  return eot.make_value_and_grad(
    logits_fn=test_utils.linear_logits_fn(weights),
    defense=_EOT_DEFENSE,
    loss_fn=attacks.cross_entropy,
    targeted=False,
    eot_samples=eot_samples,
    chunk_size=chunk_size,
  )


class EotTest(absltest.TestCase):
  def test_mean_of_single_draw_gradients(self):
    weights, images, labels = _linear_problem()
    keys = prng.per_example(jax.random.key(0), N)
    m = 6
    (_, stats), grad = _eot_value_and_grad(weights, m, m)(images, keys, labels)

    def single_draw_loss(x, draw_keys):
      logits = jax.vmap(_EOT_DEFENSE)(draw_keys, x).reshape(N, -1) @ weights
      return jnp.sum(attacks.cross_entropy(logits, labels))

    all_keys = prng.per_draw(keys, jnp.arange(m, dtype=jnp.uint32))
    grads = [jax.grad(single_draw_loss)(images, k) for k in all_keys]
    np.testing.assert_allclose(grad, np.mean(grads, 0), rtol=1e-5, atol=1e-6)
    self.assertFalse(np.allclose(grads[0], grads[1]))  # draws really differ
    losses = [single_draw_loss(images, k) for k in all_keys]
    np.testing.assert_allclose(jnp.sum(stats.loss), np.mean(losses), rtol=1e-5)

  def test_chunked_equals_unchunked(self):
    weights, images, labels = _linear_problem()
    keys = prng.per_example(jax.random.key(0), N)
    (_, a), ga = _eot_value_and_grad(weights, 8, 8)(images, keys, labels)
    (_, b), gb = _eot_value_and_grad(weights, 8, 2)(images, keys, labels)
    np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-5)


class LossTest(absltest.TestCase):
  def test_dlr_against_numpy(self):
    logits = np.random.default_rng(0).normal(size=(7, 6)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 4, 5, 0], np.int32)
    ordered = np.sort(logits, -1)[:, ::-1]
    label_logit = logits[np.arange(7), labels]
    other = np.where(np.eye(6, dtype=bool)[labels], -np.inf, logits).max(-1)
    expected = -(label_logit - other) / (ordered[:, 0] - ordered[:, 2])
    np.testing.assert_allclose(
      attacks.dlr(jnp.asarray(logits), jnp.asarray(labels)), expected, rtol=1e-5
    )
    targeted = (other - label_logit) / (
      ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3])
    )
    np.testing.assert_allclose(
      attacks.dlr_targeted(jnp.asarray(logits), jnp.asarray(labels)),
      targeted,
      rtol=1e-5,
    )
    # Invariant to shifting and scaling the logits.
    np.testing.assert_allclose(
      attacks.dlr(jnp.asarray(3 * logits + 1), jnp.asarray(labels)),
      expected,
      rtol=1e-4,
    )

  def test_get_loss_picks_the_targeted_form(self):
    self.assertIs(attacks.get_loss("dlr", targeted=True), attacks.dlr_targeted)
    self.assertIs(attacks.get_loss("ce", targeted=True), attacks.cross_entropy)
    with self.assertRaisesRegex(ValueError, "Unknown loss"):
      attacks.get_loss("hinge")


class MeanLogitsTest(absltest.TestCase):
  def test_gradient_of_the_loss_of_mean_logits(self):
    weights, images, labels = _linear_problem()
    keys = prng.per_example(jax.random.key(0), N)
    m = 4
    make = functools.partial(
      eot.make_eot,
      logits_fn=test_utils.linear_logits_fn(weights),
      defense=_EOT_DEFENSE,
      loss_fn=attacks.cross_entropy,
      targeted=True,
      eot_samples=m,
      mode="mean_logits",
    )
    (_, stats), grad = make(chunk_size=m).value_and_grad(images, keys, labels)
    all_keys = prng.per_draw(keys, jnp.arange(m, dtype=jnp.uint32))

    def explicit(x):
      logits = [
        jax.vmap(_EOT_DEFENSE)(k, x).reshape(N, -1) @ weights for k in all_keys
      ]
      loss = attacks.cross_entropy(jnp.mean(jnp.stack(logits), 0), labels)
      return -jnp.sum(loss), loss

    (_, loss), expected = jax.value_and_grad(explicit, has_aux=True)(images)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats.loss, loss, rtol=1e-5)
    (_, chunked), grad_chunked = make(chunk_size=2).value_and_grad(
      images, keys, labels
    )
    np.testing.assert_allclose(grad_chunked, grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(chunked.loss, stats.loss, rtol=1e-5)


class AttackBehaviourTest(parameterized.TestCase):
  def test_best_point_restarts_and_cost(self):
    weights, images, labels = _linear_problem(2)
    logits_fn = test_utils.linear_logits_fn(weights)
    common = dict(eps=0.03, step_size=0.01, num_steps=4, random_init=True)
    last = attacks.make_pgd(**common)(
      jax.random.key(1), logits_fn, images, labels
    )
    best = attacks.make_pgd(best_point=True, **common)
    best_images = best(jax.random.key(1), logits_fn, images, labels)
    # On a linear model CE rises along the path: the best point is the last.
    np.testing.assert_allclose(best_images, last, atol=1e-6)
    self.assertEqual(best.cost.forward_evals, 1)
    restarted = attacks.make_pgd(restarts=3, **common)
    result = restarted.with_info(jax.random.key(1), logits_fn, images, labels)
    self.assertEqual(result.losses.shape, (3, 4, N))
    self.assertEqual(result.cost.as_dict()["strength"], 4)
    self.assertEqual(result.grad_evals, 3 * 4 * N)
    self.assertEqual(result.forward_evals, 3 * N)
    loss_of = lambda x: attacks.cross_entropy(logits_fn(x), labels)  # noqa: E731
    self.assertTrue(np.all(loss_of(result.images) >= loss_of(last) - 1e-5))

  def test_early_stop_freezes_successful_examples(self):
    weights, images, labels = _linear_problem(2)
    logits_fn = test_utils.linear_logits_fn(weights)
    labels = jnp.argmax(logits_fn(images), -1).astype(jnp.int32)
    attack = attacks.make_pgd(
      eps=1.0, step_size=0.05, num_steps=40, early_stop=True
    )
    result = attack.with_info(jax.random.key(0), logits_fn, images, labels)
    self.assertTrue(np.all(jnp.argmax(logits_fn(result.images), -1) != labels))
    self.assertLess(result.grad_evals, 40 * N)
    with self.assertRaisesRegex(ValueError, "snapshot_steps"):
      attacks.make_pgd(
        eps=0.1,
        step_size=0.01,
        num_steps=3,
        snapshot_steps=(1,),
        best_point=True,
      )

  def test_result_inside_ball_with_random_init(self):
    weights, images, labels = _linear_problem(2, 0.0, 1.0)
    attack = attacks.make_pgd(
      eps=0.05,
      step_size=0.02,
      num_steps=5,
      random_init=True,
      eot_samples=3,
      defense=_EOT_DEFENSE,
    )
    adv = attack(
      jax.random.key(0), test_utils.linear_logits_fn(weights), images, labels
    )
    self.assertLessEqual(float(jnp.abs(adv - images).max()), 0.05 + 1e-6)
    self.assertTrue(np.all((adv >= 0) & (adv <= 1)))

  def test_per_example_results_do_not_depend_on_batch(self):
    weights, images, labels = _linear_problem()
    attack = attacks.make_pgd(
      eps=0.1,
      step_size=0.01,
      num_steps=3,
      eot_samples=2,
      random_init=True,
      defense=_EOT_DEFENSE,
    )
    logits_fn = test_utils.linear_logits_fn(weights)
    full = attack(jax.random.key(3), logits_fn, images, labels)
    half = attack(jax.random.key(3), logits_fn, images[:2], labels[:2])
    np.testing.assert_allclose(full[:2], half, atol=1e-6)

  def test_second_call_does_not_recompile(self):
    weights, images, labels = _linear_problem()
    counter = test_utils.TraceCounter()
    attack = attacks.make_pgd(
      eps=0.1, step_size=0.01, num_steps=4, eot_samples=2, defense=_EOT_DEFENSE
    )
    attack(
      jax.random.key(0),
      test_utils.linear_logits_fn(weights, counter),
      images,
      labels,
    )
    traces = counter.traces
    # New key, new images, new weights of the same shapes: no new trace.
    attack(
      jax.random.key(1),
      test_utils.linear_logits_fn(weights * 2, counter),
      images[::-1],
      labels[::-1],
    )
    self.assertEqual(counter.traces, traces)

  @parameterized.parameters("pgd", "apgd")
  def test_attacks_differing_in_eps_and_step_share_one_program(self, name):
    weights, images, labels = _linear_problem()
    counter = test_utils.TraceCounter()
    logits_fn = test_utils.linear_logits_fn(weights, counter)
    defense = defenses.lookup("gaussian_noise(sigma=0.05)")
    make = attacks.make_pgd if name == "pgd" else attacks.make_apgd
    key = jax.random.key(0)
    wide = make(eps=0.1, step_size=0.1, num_steps=2, eot_samples=2,
                defense=defense)  # fmt: skip
    wide(key, logits_fn, images, labels)
    traces = counter.traces
    # A new attack object, built with another radius and step size.
    narrow = make(eps=0.03, step_size=0.03, num_steps=2, eot_samples=2,
                  defense=defense)  # fmt: skip
    adv = narrow(key, logits_fn, images, labels)
    self.assertEqual(counter.traces, traces)
    # Its own radius, not the first attack's: a linear model's first sign
    # step of 0.03 already reaches the faces of the 0.03 ball.
    moved = np.abs(np.asarray(adv - images))
    self.assertAlmostEqual(float(moved.max()), 0.03, delta=1e-6)

  def test_snapshots_equal_separate_shorter_runs(self):
    weights, images, labels = _linear_problem(2)
    logits_fn = test_utils.linear_logits_fn(weights)
    defense = defenses.lookup("gaussian_noise(sigma=0.05)")
    common = dict(eps=0.05, step_size=0.01, eot_samples=2, defense=defense)
    key = jax.random.key(4)
    kept = attacks.make_pgd(num_steps=7, snapshot_steps=(2, 5, 7), **common)(
      key, logits_fn, images, labels
    )
    self.assertEqual(kept.shape, (N, 3, H, W, C))
    for slot, k in enumerate((2, 5, 7)):
      alone = attacks.make_pgd(num_steps=k, **common)(
        key, logits_fn, images, labels
      )
      np.testing.assert_allclose(kept[:, slot], alone, atol=1e-6)
    self.assertFalse(np.allclose(kept[:, 0], kept[:, 2]))
    for bad in ((4,), (2, 2), (1.5,)):
      with self.assertRaisesRegex(ValueError, "snapshot_steps"):
        attacks.make_pgd(num_steps=3, snapshot_steps=bad, **common)
    numpy_steps = attacks.make_pgd(
      num_steps=3, snapshot_steps=tuple(np.arange(1, 4)), **common
    )
    self.assertEqual(numpy_steps.snapshot_steps, (1, 2, 3))

  def test_with_info(self):
    weights, images, labels = _linear_problem()
    attack = attacks.make_pgd(
      eps=0.1,
      step_size=0.01,
      num_steps=7,
      eot_samples=3,
      defense=_EOT_DEFENSE,
    )
    result = attack.with_info(
      jax.random.key(0), test_utils.linear_logits_fn(weights), images, labels
    )
    np.testing.assert_array_equal(
      result.images,
      attack(
        jax.random.key(0), test_utils.linear_logits_fn(weights), images, labels
      ),
    )
    self.assertEqual(result.losses.shape, (1, 7, N))
    self.assertEqual(result.goal_rates.shape, (1, 7, N))
    self.assertEqual(result.grad_evals, 7 * 3 * N)
    # The untargeted loss grows along a sign-gradient path on a linear model.
    self.assertGreater(
      float(result.losses[0, -1].mean()), float(result.losses[0, 0].mean())
    )

  def test_lookup_builds_pgd(self):
    attack = attacks.lookup(
      "pgd(eps=0.1, step_size=0.01, num_steps=2, norm='l2')",
      defense=_EOT_DEFENSE,
    )
    weights, images, labels = _linear_problem()
    adv = attack(
      jax.random.key(0), test_utils.linear_logits_fn(weights), images, labels
    )
    self.assertEqual(adv.shape, images.shape)


class SweepTest(parameterized.TestCase):
  """``attack.sweep``: several radii in one compiled program."""

  def _attack(self, name, eps):
    defense = defenses.lookup("gaussian_noise(sigma=0.2)")
    common = dict(eps=eps, num_steps=3, eot_samples=2, defense=defense)
    if name == "pgd":
      return attacks.make_pgd(step_size=eps / 4, random_init=True, **common)
    return attacks.make_apgd(**common)

  @parameterized.parameters("pgd", "apgd")
  @test_utils.slow_cases(1)  # APGD: the same sweep code as PGD.
  def test_sweep_equals_separate_attacks_and_compiles_once(self, name):
    weights, images, labels = _linear_problem()
    counter = test_utils.TraceCounter()
    logits_fn = test_utils.linear_logits_fn(weights, counter)
    key = jax.random.key(2)
    radii = [0.02, 0.05, 0.1]
    swept = self._attack(name, 0.1).sweep(
      key, logits_fn, images, labels, eps=radii, chunk_size=2
    )
    self.assertEqual(swept.shape, (3, *images.shape))
    for s, eps in enumerate(radii):
      alone = self._attack(name, eps)(key, logits_fn, images, labels)
      np.testing.assert_allclose(swept[s], alone, atol=1e-6)
    attack = self._attack(name, 0.1)
    attack.sweep(key, logits_fn, images, labels, eps=radii)
    traces = counter.traces
    attack.sweep(key, logits_fn, images, labels, eps=[0.01, 0.2, 0.3])
    self.assertEqual(counter.traces, traces)  # New values, no new compile.

  def test_explicit_step_sizes_and_bad_values(self):
    weights, images, labels = _linear_problem()
    logits_fn = test_utils.linear_logits_fn(weights)
    attack = self._attack("pgd", 0.1)
    key = jax.random.key(2)
    swept = attack.sweep(
      key, logits_fn, images, labels, eps=[0.1, 0.1], step_size=[0.025, 0.05]
    )
    np.testing.assert_allclose(
      swept[0], attack(key, logits_fn, images, labels), atol=1e-6
    )
    self.assertGreater(float(jnp.abs(swept[1] - swept[0]).max()), 0.0)
    with self.assertRaisesRegex(ValueError, "positive eps"):
      attack.sweep(key, logits_fn, images, labels, eps=[0.1, 0.0])
    with self.assertRaisesRegex(ValueError, "positive eps"):
      attack.sweep(key, logits_fn, images, labels, eps=[])


class BadInputTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("eps", dict(eps=0.0)),
    ("eps_negative", dict(eps=-1.0)),
    ("step_size", dict(step_size=0.0)),
    ("num_steps", dict(num_steps=0)),
    ("num_steps_float", dict(num_steps=2.5)),
    ("eot_samples", dict(eot_samples=0)),
    ("eot_chunk", dict(eot_samples=5, eot_chunk_size=2)),
    ("norm", dict(norm="l1")),
    ("loss", dict(loss="kl")),
    ("eot_mode", dict(eot_mode="mean_probs")),
    ("restarts", dict(restarts=0)),
  )
  def test_bad_parameters(self, overrides):
    kwargs = dict(eps=0.1, step_size=0.01, num_steps=2) | overrides
    with self.assertRaises(ValueError):
      attacks.make_pgd(**kwargs)

  def test_bad_inputs(self):
    weights, images, labels = _linear_problem()
    attack = attacks.make_pgd(eps=0.1, step_size=0.01, num_steps=1)
    logits_fn = test_utils.linear_logits_fn(weights)
    key = jax.random.key(0)
    cases = {
      "range": (images + 1.0, labels, r"\[0, 1\]"),
      "rank": (images[0], labels, "shape"),
      "channels_first": (
        jnp.zeros((N, 3, 6, 7), jnp.float32),
        labels,
        "channels-first",
      ),
      "dtype": ((images * 255).astype(jnp.uint8), labels, "float32"),
      "nan": (images.at[0, 0, 0, 0].set(jnp.nan), labels, "NaN"),
      "label_range": (images, labels.at[0].set(K), "labels must lie"),
      "label_shape": (images, labels[:2], "labels must have shape"),
    }
    for name, (x, y, message) in cases.items():
      with self.subTest(name), self.assertRaisesRegex(ValueError, message):
        attack(key, logits_fn, x, y)

  def test_bad_logits_fn(self):
    _, images, labels = _linear_problem()
    attack = attacks.make_pgd(eps=0.1, step_size=0.01, num_steps=1)
    with self.assertRaisesRegex(ValueError, "logits_fn must map"):
      attack(jax.random.key(0), lambda x: x.sum(), images, labels)


if __name__ == "__main__":
  absltest.main()
