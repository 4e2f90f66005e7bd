"""SPSA (Uesato et al. 2018): Adam on a finite-difference gradient estimate,
gradient-free, as one jitted `lax.scan`.

Each step estimates the gradient of the attack objective at the current
point from `num_samples` antithetic pairs ``x +- delta * v`` with Rademacher
``v`` (`estimate_gradient`): ``mean_j (f(x + delta v_j) - f(x - delta v_j))
/ (2 delta) * v_j``, unbiased for a quadratic objective. Adam (the
reference's optimizer, with PyTorch's defaults, `adam_update`) steps the
perturbation, which is then clipped to the eps-ball and the [0, 1] box.

Under a stochastic defense each pair gets its own defense draws (m of
them with ``eot_samples = m``, their losses averaged), shared by the
pair's two points, so the difference cancels the defense's noise where
the defense lets it (common random numbers). Each step also evaluates the
current point on m fresh draws: that keeps each example's best point (most
draws meeting the goal, then objective) and stops an example once most of
its draws meet the goal. The model is only run forward: a
non-differentiable defense needs no BPDA.

Differences from cleverhans' ``spsa`` (the reference), each deliberate: the
gradient is estimated at the current point (x + perturbation); the batch
runs together, each example with its own keys; the output is each
example's best point, not the last iterate; the stop is the draws' vote,
not a loss threshold.

References:
  Uesato, O'Donoghue, van den Oord, Kohli. Adversarial Risk and the Dangers
  of Evaluating Against Weak Attacks. ICML 2018.
  https://arxiv.org/abs/1802.05666
"""

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from stochjax import prng, types, validation
from stochjax.attacks import attack as attack_lib
from stochjax.attacks import best as best_lib
from stochjax.attacks import loops, norms, parameters, results


def estimate_gradient(
  value_fn: Callable[[jax.Array, jax.Array], jax.Array],
  x: jax.Array,
  keys: jax.Array,
  *,
  delta: float,
  num_samples: int,
  chunk_size: int | None = None,
) -> jax.Array:
  """SPSA's estimate of the gradient of `value_fn` at `x`, per example.

  Args:
    value_fn: ``(points (N, ...), sample (uint32 scalar)) -> (N,)`` values;
      both points of pair j get sample index j (so they can share draws).
    x: ``(N, ...)`` points.
    keys: ``(N,)`` per-example keys; pair j's direction of example i comes
      from ``fold_in(keys[i], j)``.
    delta: the finite-difference step.
    num_samples: antithetic pairs.
    chunk_size: pairs evaluated at once (memory); divides `num_samples`.

  Returns:
    ``(N, ...)``: ``mean_j (f(x + delta v_j) - f(x - delta v_j)) / (2
    delta) * v_j``.
  """
  chunk = num_samples if chunk_size is None else chunk_size

  def pair(j):
    v = jax.vmap(
      lambda k, like: jnp.where(
        jax.random.bernoulli(k, 0.5, like.shape), 1.0, -1.0
      ).astype(like.dtype)
    )(prng.fold_each(keys, j), x)
    diff = value_fn(x + delta * v, j) - value_fn(x - delta * v, j)
    return (diff / (2.0 * delta)).reshape((-1,) + (1,) * (x.ndim - 1)) * v

  samples = jnp.arange(num_samples, dtype=jnp.uint32)
  total = jax.lax.map(pair, samples, batch_size=chunk)
  return jnp.mean(total, axis=0)


class Adam(NamedTuple):
  """Adam's state: step count and the two moment estimates."""

  count: jax.Array
  mu: jax.Array
  nu: jax.Array


def adam_update(
  grad: jax.Array, state: Adam, learning_rate, b1=0.9, b2=0.999, eps=1e-8
) -> tuple[jax.Array, Adam]:
  """``(step, state)``: Adam's descent step for `grad` (``torch.optim.Adam``
  with its defaults: bias-corrected moments, eps outside the root). Written
  out rather than taken from optax, whose step count promotes int32 to
  float under ``jax_numpy_dtype_promotion='strict'``."""
  count = state.count + 1.0
  mu = b1 * state.mu + (1.0 - b1) * grad
  nu = b2 * state.nu + (1.0 - b2) * jnp.square(grad)
  mu_hat = mu / (1.0 - b1**count)
  nu_hat = nu / (1.0 - b2**count)
  step = -learning_rate * mu_hat / (jnp.sqrt(nu_hat) + eps)
  return step, Adam(count, mu, nu)


@dataclasses.dataclass(frozen=True)
class _Spsa:
  """The static settings of one SPSA attack (see `make_spsa`)."""

  eot_settings: tuple  # `eot_lib.make_eot` keyword arguments, as items.
  num_steps: int
  norm: str
  targeted: bool
  num_samples: int
  sample_chunk_size: int
  delta: float
  eot_samples: int
  restarts: int
  early_stop: bool
  unroll: int | bool

  def cost(self) -> results.Cost:
    per_step = (2 * self.num_samples + 1) * self.eot_samples
    return results.Cost(
      num_steps=self.num_steps, eot_samples=self.eot_samples,
      restarts=self.restarts, grad_evals=0,
      forward_evals=self.restarts * (self.num_steps * per_step
                                     + self.eot_samples),
    )  # fmt: skip


def make_spsa(
  *,
  eps: float,
  num_steps: int,
  num_samples: int = 128,
  delta: float = 0.01,
  learning_rate: float = 0.01,
  norm: str = "linf",
  loss: str = "margin",
  targeted: bool = False,
  restarts: int = 1,
  eot_samples: int = 1,
  eot_chunk_size: int | None = None,
  sample_chunk_size: int | None = None,
  defense: types.Defense | None = None,
  early_stop: bool = True,
  unroll: int | bool = 1,
) -> attack_lib.Attack:
  """Builds SPSA with per-pair defense draws (see the module docstring).

  Args:
    eps: radius of the threat model in [0, 1] pixel units.
    num_steps: Adam steps.
    num_samples: antithetic pairs per gradient estimate (the reference's
      ``spsa_samples``, 128).
    delta: finite-difference step (0.01).
    learning_rate: Adam's learning rate (0.01); the start is uniform in the
      eps-ball, as the reference's.
    norm: "linf" (the paper's) or "l2".
    loss: "margin" (the reference's) or any `attacks.losses` name.
    targeted: drive the prediction to `labels`, read as target classes.
    restarts: independent restarts; each example keeps its best point.
    eot_samples: m, defense draws averaged per evaluated point.
    eot_chunk_size: draws evaluated at once; divides `eot_samples`.
    sample_chunk_size: pairs evaluated at once; divides `num_samples`.
    defense: ``(key, image) -> image``; None attacks the bare model.
    early_stop: freeze an example once most draws at its best point meet
      the goal; skip steps once all are frozen.
    unroll: passed to `lax.scan`.

  Returns:
    An `attack_lib.Attack`; its cost counts forward passes:
    ``restarts * (num_steps * (2 * num_samples + 1) + 1) * eot_samples``.

  Raises:
    ValueError: a parameter out of range, an unknown norm or loss.
  """
  eot = parameters.check_parameters(
    eps=eps, num_steps=num_steps, restarts=restarts, norm=norm,
    eot_mode="mean_grad", loss=loss, targeted=targeted,
    eot_samples=eot_samples, eot_chunk_size=eot_chunk_size, defense=defense,
  )  # fmt: skip
  validation.positive("num_samples", num_samples, integer=True)
  validation.positive("delta", delta)
  validation.positive("learning_rate", learning_rate)
  chunk = parameters.check_chunk(
    "sample_chunk_size", sample_chunk_size, "num_samples", num_samples
  )
  settings = _Spsa(
    eot_settings=eot, num_steps=num_steps, norm=norm, targeted=targeted,
    num_samples=num_samples, sample_chunk_size=chunk, delta=float(delta),
    eot_samples=eot_samples, restarts=restarts, early_stop=early_stop,
    unroll=unroll,
  )  # fmt: skip
  shared = loops.programs(_run_once, settings)
  return attack_lib.Attack(
    run=loops.bound_run(shared, eps, learning_rate),
    cost=settings.cost(), loss=loss, targeted=targeted,
    sweep_run=shared.sweep, step_ratio=learning_rate / eps,
  )  # fmt: skip


def _run_once(settings: _Spsa, eot, images, labels, eps, learning_rate, keys):
  """One restart: ``(Best, losses (T, N), goal_rates (T, N), 0,
  forward_evals)``; `learning_rate` is the traced step argument."""
  x, keys = loops.start(settings.norm, eps, keys, images, True)
  direction_keys, pair_keys, point_keys = prng.split_each(keys, 3)
  sign = -1.0 if settings.targeted else 1.0
  m = settings.eot_samples

  def objective_at(t):
    step_pairs = prng.fold_each(pair_keys, t)
    return lambda points, j: (
      sign * eot.statistics(points, prng.fold_each(step_pairs, j), labels).loss
    )

  stats = eot.statistics(x, prng.fold_each(point_keys, 0), labels)
  best = best_lib.best_of(x, stats, settings.targeted)

  def step(carry, t):
    x, opt_state, best, forwards = carry
    done = best_lib.met_vote(best)
    grad = estimate_gradient(
      objective_at(t), x, prng.fold_each(direction_keys, t),
      delta=settings.delta, num_samples=settings.num_samples,
      chunk_size=settings.sample_chunk_size,
    )  # fmt: skip
    updates, new_state = adam_update(-grad, opt_state, learning_rate)
    x_new = norms.project(settings.norm, eps, x + updates, images)
    x_new = best_lib.where_examples(done, x, x_new)
    stats = eot.statistics(x_new, prng.fold_each(point_keys, t + 1), labels)
    best = best_lib.keep_better(
      best, best_lib.best_of(x_new, stats, settings.targeted)
    )
    forwards = forwards + (2 * settings.num_samples + 1) * m
    return (x_new, new_state, best, forwards), stats

  zeros = jnp.zeros_like(x)
  adam = Adam(jnp.zeros((), jnp.float32), zeros, zeros)
  init = (x, adam, best, jnp.zeros((), jnp.int32) + m)
  steps = jnp.arange(settings.num_steps, dtype=jnp.uint32)
  body = step
  if settings.early_stop:
    body = loops.skip_when(
      lambda c: jnp.all(best_lib.met_vote(c[2])), step, init, steps[0]
    )
  (_, _, best, forwards), stats = jax.lax.scan(
    body, init, steps, unroll=settings.unroll
  )
  return best, stats.loss, stats.goal_rate, jnp.zeros((), jnp.int32), forwards
