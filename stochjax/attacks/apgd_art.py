"""ART 1.9.1's AutoPGD, the variant the paper ran, for comparable numbers.

What it does differently from the reference APGD (official_code.md §2.3):
* the initial step is ``eps_step`` (the paper's lr), not ``2 * eps``;
* step-size and best-point decisions are per *batch*: they compare
  batch-mean losses, each from one fresh defense draw (not the EOT draws of
  the gradient);
* the first check (step 0) keeps the larger loss even when targeted;
* checkpoints are ``ceil(p_j * T)`` for ``p = 0, 0.22, ...``;
* an all-zero batch loss stops the batch;
* a restart attacks only the samples one stochastic prediction calls
  robust, starts from a random point around their current adversarial
  image, and at the end keeps the final iterate only where one more
  stochastic prediction says the goal is met; elsewhere the random start
  is returned.

"The batch" is the batch `attack` is called with (ART chunks the robust
samples by its ``batch_size``); its samples that are not robust are masked
out of the batch means.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from stochjax.attacks import base, norms
from stochjax.attacks import eot as eot_lib
from stochjax.defenses import core as defense_core


def checkpoints(num_steps: int) -> tuple[np.ndarray, np.ndarray]:
  """ART's ``var_w``: ``(is_check (T,) bool, interval (T,) int)``."""
  p = [0.0, 0.22]
  while (following := p[-1] + max(p[-1] - p[-2] - 0.03, 0.06)) <= 1:
    p.append(following)
  w = [math.ceil(q * num_steps) for q in p]
  is_check = np.zeros(num_steps, bool)
  interval = np.ones(num_steps, np.int32)
  for k in range(1, num_steps):
    if k in w:
      is_check[k], interval[k] = True, k - w[w.index(k) - 1]
  return is_check, interval


def forward_evals(num_steps: int) -> int:
  """Single-draw forward passes per example and restart: two predictions,
  two loss checks at step 0 and one per later step."""
  return num_steps + 3


def make_run(*, settings, geometry, num_steps, restarts, unroll):
  """The jitted ``run(key, logits_fn, images, labels) -> base.Run``.

  Args:
    settings: `eot_lib.make_eot` arguments but `logits_fn`.
    geometry: ``norm``, ``eps`` and ``step_size`` (ART's eps_step).
    num_steps: ART's max_iter.
    restarts: ART's nb_random_init.
    unroll: passed to `lax.scan`.
  """
  norm, eps, eta0 = geometry["norm"], geometry["eps"], geometry["step_size"]
  targeted = settings["targeted"]
  m = settings["num_draws"]
  is_check, interval = checkpoints(num_steps)

  @jax.jit
  def run(key, logits_fn, images, labels):
    eot = eot_lib.make_eot(**settings | dict(logits_fn=logits_fn))
    single = eot_lib.make_eot(
      **settings
      | dict(logits_fn=logits_fn, num_draws=1, chunk_size=1, mode="mean_grad")
    )
    n = images.shape[0]

    def met(x, keys):
      """One stochastic prediction per example: does it meet the goal?"""
      return single.statistics(x, keys, labels).goal_rate > 0

    def restart(carry, keys):
      x_adv, grads, forwards = carry
      grad_keys, loss_keys, start_keys, end_keys, init_keys = base.split_each(
        keys, 5
      )
      robust = ~met(x_adv, start_keys)
      weight = robust.astype(jnp.float32)

      def batch_loss(x, t):
        stats = single.statistics(x, base.step_keys(loss_keys, t), labels)
        return jnp.sum(weight * stats.loss) / jnp.maximum(jnp.sum(weight), 1)

      def ascent(x, t):
        (_, stats), grad = eot.value_and_grad(
          x, base.step_keys(grad_keys, t), labels
        )
        return norms.direction(norm, grad), stats

      def attack_robust(x_adv):
        start = norms.project(
          norm,
          eps,
          x_adv + norms.random_delta(norm, eps, init_keys, images),
          images,
        )
        direction, stats0 = ascent(start, 0)
        x1 = norms.project(norm, eps, start + eta0 * direction, images)
        f0, f1 = batch_loss(start, num_steps), batch_loss(x1, 0)
        take = f1 >= f0  # ART 1.9.1 does not flip this for targeted.
        state = dict(
          x=x1,
          x_prev=start,
          eta=jnp.float32(eta0),
          top=jnp.where(take, f1, f0),
          x_top=jnp.where(take, x1, start),
          x_top_prev=images,
          count=take.astype(jnp.float32),
          eta_at_check=jnp.float32(eta0),
          top_at_check=f0,
          stopped=jnp.bool_(False),
          steps=jnp.int32(1),
        )

        def step(s, k):
          s = dict(s)
          x, x_prev = s["x"], s["x_prev"]
          direction, stats = ascent(x, k)
          z = norms.project(norm, eps, x + s["eta"] * direction, images)
          x_new = norms.project(
            norm, eps, x + 0.75 * (z - x) + 0.25 * (x - x_prev), images
          )
          f = batch_loss(x_new, k)
          zero = f == 0.0
          rose = ((f < s["top"]) if targeted else (f > s["top"])) & ~zero
          s["count"] = s["count"] + rose.astype(jnp.float32)
          s["x_top"] = jnp.where(rose, x_new, s["x_top"])
          s["x_top_prev"] = jnp.where(rose, x, s["x_top_prev"])
          s["top"] = jnp.where(rose, f, s["top"])
          s["x_prev"], s["x"] = jnp.where(zero, x_prev, x), x_new
          check = jnp.asarray(is_check)[k] & ~zero
          few_rises = s["count"] < jnp.asarray(0.75 * interval, jnp.float32)[k]
          unchanged = (s["eta_at_check"] == s["eta"]) & (
            s["top_at_check"] == s["top"]
          )
          halve = check & (few_rises | unchanged)
          s["eta"] = jnp.where(halve, s["eta"] / 2, s["eta"])
          s["x"] = jnp.where(halve, s["x_top"], s["x"])
          s["x_prev"] = jnp.where(halve, s["x_top_prev"], s["x_prev"])
          s["count"] = jnp.where(check, 0.0, s["count"])
          s["eta_at_check"] = jnp.where(check, s["eta"], s["eta_at_check"])
          s["top_at_check"] = jnp.where(check, s["top"], s["top_at_check"])
          s["stopped"] = zero
          s["steps"] = s["steps"] + 1
          return s, stats

        ks = jnp.arange(1, num_steps, dtype=jnp.uint32)
        body = base.skip_when(
          lambda s: s["stopped"], step, state, jnp.uint32(1)
        )
        state, stats = jax.lax.scan(body, state, ks, unroll=unroll)
        success = met(state["x"], end_keys)
        x_robust = base.where_examples(success, state["x"], start)
        losses_ = jnp.concatenate([stats0.loss[None], stats.loss])
        rates = jnp.concatenate([stats0.goal_rate[None], stats.goal_rate])
        # Forward passes: the start prediction, f0, one per step, the end.
        done_steps = state["steps"]
        return (
          base.where_examples(robust, x_robust, x_adv),
          losses_,
          rates,
          done_steps * m,
          done_steps + 3,
        )

      def nothing_robust(x_adv):
        zeros = jnp.zeros((num_steps, n))
        return x_adv, zeros, zeros, jnp.int32(0), jnp.int32(1)

      x_adv, losses_, rates, g, f = jax.lax.cond(
        jnp.any(robust), attack_robust, nothing_robust, x_adv
      )
      return (x_adv, grads + g, forwards + f), (losses_, rates)

    zero = jnp.int32(0)
    (x_adv, grads, forwards), (losses_, rates) = jax.lax.scan(
      restart,
      (images, zero, zero),
      base.restart_keys(defense_core.example_keys(key, n), restarts),
    )
    return base.Run(
      jax.lax.stop_gradient(x_adv), losses_, rates, grads, forwards
    )

  return run
