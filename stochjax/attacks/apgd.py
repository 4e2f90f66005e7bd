"""AutoPGD (Croce & Hein 2020), EOT-aware, as one jitted `lax.scan`.

Per example, the step size starts at ``2 * eps`` and is halved at
checkpoints (the first after 22 % of the steps, the intervals shrinking by
3 % down to 6 %) when the objective rose in at most ``rho`` of the steps
since the last checkpoint, or when the step was not halved last time and
the best objective has not improved since; a halving also moves the
iterate back to the best point. Steps use momentum 0.75 (none on the
first).

Under EOT every decision uses the EOT loss over the *same* m draws that
gave the gradient, and success is the fraction of those draws that meet the
goal; AutoAttack's ``rand`` version and ART take both from a single extra
draw. Each example returns its best point: most draws meeting the goal,
then highest objective. ``art_compat=True`` switches to ART 1.9.1's variant
that the paper ran (`stochjax.attacks.apgd_art`).

Differences from AutoAttack's code, each deliberate: the first oscillation
count compares the first step with the start point (AutoAttack's index -1
reads an unwritten zero); the projection clips to [0, 1] before projecting
(the same point for linf); the random start is uniform in the ball.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import prng, types, validation
from stochjax.attacks import apgd_art, loops, norms, parameters, results
from stochjax.attacks import attack as attack_lib
from stochjax.attacks import best as best_lib


def checkpoints(num_steps: int) -> tuple[np.ndarray, np.ndarray]:
  """Where AutoAttack's APGD checks its step size.

  Returns:
    ``(is_check (T,) bool, interval (T,) int)``: whether the check runs after
    step i, and the number of steps since the previous check.
  """
  first = max(int(0.22 * num_steps), 1)
  shortest = max(int(0.06 * num_steps), 1)
  shrink = max(int(0.03 * num_steps), 1)
  is_check = np.zeros(num_steps, bool)
  interval = np.ones(num_steps, np.int32)
  length, since = first, 0
  for i in range(num_steps):
    since += 1
    if since == length:
      is_check[i], interval[i] = True, length
      length, since = max(length - shrink, shortest), 0
  return is_check, interval


def make_apgd(
  *,
  eps: float,
  num_steps: int,
  norm: str = "linf",
  targeted: bool = False,
  loss: str = "ce",
  step_size: float | None = None,
  random_init: bool = True,
  restarts: int = 1,
  eot_samples: int = 1,
  eot_chunk_size: int | None = None,
  eot_mode: str = "mean_grad",
  defense: types.Defense | None = None,
  momentum: float = 0.75,
  rho: float = 0.75,
  early_stop: bool = False,
  art_compat: bool = False,
  unroll: int | bool = 1,
) -> attack_lib.Attack:
  """Builds AutoPGD with EOT over a stochastic defense.

  Args:
    eps: radius of the threat model in [0, 1] pixel units.
    num_steps: iterations; the reference variant takes one more gradient
      (at the start point), so it spends ``(num_steps + 1) * eot_samples``
      gradients per restart.
    norm: "linf" or "l2".
    targeted: drive the prediction to `labels`, read as target classes.
    loss: "ce", "margin" or "dlr" (targeted DLR when `targeted`).
    step_size: the initial step; default ``2 * eps`` (the APGD paper).
      Required with `art_compat` (ART's ``eps_step``, the paper's lr).
    random_init: start from a uniform point of the eps-ball (ART always
      does).
    restarts: independent restarts; per example the best point is kept
      (ART: ``nb_random_init``, each restart continuing from the last).
    eot_samples: m, defense draws per gradient and per loss check.
    eot_chunk_size: draws evaluated at once; divides `eot_samples`.
    eot_mode: "mean_grad" or "mean_logits".
    defense: ``(key, image) -> image``; None attacks the bare model.
    momentum: weight of the new step (0.75); the previous step gets the rest.
    rho: the oscillation threshold of the first checkpoint condition.
    early_stop: freeze an example once most draws at its best point meet
      the goal; skip steps once the whole batch is frozen.
    art_compat: reproduce ART 1.9.1's APGD (batch-level decisions on
      single-draw losses, see `stochjax.attacks.apgd_art`).
    unroll: passed to `lax.scan`.

  Returns:
    An `attack_lib.Attack`: ``attack(key, logits_fn, images, labels) ->
    images`` (or an `AttackResult`), with ``attack.cost`` and (except with
    `art_compat`) ``attack.sweep``.

  Raises:
    ValueError: a parameter out of range, an unknown norm, loss or EOT mode.

  References:
    Croce, Hein. Reliable evaluation of adversarial robustness with an
    ensemble of diverse parameter-free attacks. ICML 2020.
    https://arxiv.org/abs/2003.01690
  """
  eot = parameters.check_parameters(
    eps=eps, num_steps=num_steps, restarts=restarts, norm=norm,
    eot_mode=eot_mode, loss=loss, targeted=targeted, eot_samples=eot_samples,
    eot_chunk_size=eot_chunk_size, defense=defense,
  )  # fmt: skip
  step_size = _initial_step(eps, step_size, momentum, rho, art_compat)
  common = dict(loss=loss, targeted=targeted)
  if art_compat:
    if (momentum, rho, eot_mode) != (0.75, 0.75, "mean_grad"):
      raise ValueError(
        "art_compat fixes momentum = rho = 0.75 and eot_mode='mean_grad'."
      )
    return apgd_art.make_attack(
      dict(eot), dict(norm=norm, eps=eps, step_size=step_size), num_steps,
      restarts, unroll, common,
    )  # fmt: skip
  settings = _Apgd(
    eot_settings=eot, num_steps=num_steps, norm=norm,
    targeted=targeted, random_init=random_init, restarts=restarts,
    eot_samples=eot_samples, momentum=momentum, rho=rho,
    early_stop=early_stop, unroll=unroll,
  )  # fmt: skip
  shared = loops.programs(_run_once, settings)
  return attack_lib.Attack(
    run=loops.bound_run(shared, eps, step_size),
    cost=results.Cost(
      num_steps=num_steps, eot_samples=eot_samples, restarts=restarts,
      grad_evals=restarts * (num_steps + 1) * eot_samples, forward_evals=0,
    ),
    sweep_run=shared.sweep, step_ratio=step_size / eps,
    **common,
  )  # fmt: skip


def _initial_step(eps, step_size, momentum, rho, art_compat) -> float:
  """The first step size (``2 * eps`` by default), after checking the
  step schedule's parameters."""
  for name, value in (("momentum", momentum), ("rho", rho)):
    if not (isinstance(value, int | float) and 0.0 < value <= 1.0):
      raise ValueError(f"{name} must lie in (0, 1], got {value!r}.")
  if step_size is None:
    if art_compat:
      raise ValueError("art_compat needs step_size (ART's eps_step).")
    step_size = 2.0 * eps
  validation.positive("step_size", step_size)
  return step_size


@dataclasses.dataclass(frozen=True)
class _Apgd:
  """The static settings of one reference APGD attack (see `make_apgd`)."""

  eot_settings: tuple  # `eot_lib.make_eot` keyword arguments, as items.
  num_steps: int
  norm: str
  targeted: bool
  random_init: bool
  restarts: int
  eot_samples: int
  momentum: float
  rho: float
  early_stop: bool
  unroll: int | bool


def _run_once(settings: _Apgd, eot, images, labels, eps, step_size, keys):
  """One restart: ``(Best, losses (T, N), goal_rates (T, N), grad_evals,
  forward_evals)``."""
  n = images.shape[0]
  x, keys = loops.start(settings.norm, eps, keys, images, settings.random_init)
  (_, stats), grad = eot.value_and_grad(x, prng.fold_each(keys, 0), labels)
  start = best_lib.best_of(x, stats, settings.targeted)
  state = dict(
    x=x,
    x_prev=x,
    grad=grad,
    step=jnp.full((n,), step_size, jnp.float32),
    x_top=x,  # highest objective so far (where halvings return)
    grad_top=grad,
    top=start.objective,
    top_at_check=start.objective,
    halved_at_check=jnp.ones((n,), bool),
    last=start.objective,
    rises=jnp.zeros((n,), jnp.float32),
    best=start,  # the output: most draws meeting the goal, then loss
    grads=jnp.zeros((), jnp.int32) + settings.eot_samples,
  )
  step = functools.partial(_step, settings, eot, images, labels, eps, keys)
  steps = jnp.arange(settings.num_steps, dtype=jnp.uint32)
  body = step
  if settings.early_stop:
    body = loops.skip_when(
      lambda s: jnp.all(best_lib.met_vote(s["best"])), step, state, steps[0]
    )
  state, stats = jax.lax.scan(body, state, steps, unroll=settings.unroll)
  zero = jnp.zeros((), jnp.int32)
  return state["best"], stats.loss, stats.goal_rate, state["grads"], zero


def _step(settings: _Apgd, eot, images, labels, eps, keys, state, i):
  """One APGD step: momentum step, EOT evaluation, checkpoint halving."""
  s = dict(state)
  norm = settings.norm
  x, x_prev = s["x"], s["x_prev"]
  alpha = jnp.where(i == 0, 1.0, settings.momentum)
  scale = s["step"].reshape(-1, 1, 1, 1)
  z = norms.project(
    norm, eps, x + scale * norms.direction(norm, s["grad"]), images
  )
  x_new = norms.project(
    norm, eps, x + alpha * (z - x) + (1 - alpha) * (x - x_prev), images
  )
  if settings.early_stop:
    x_new = best_lib.where_examples(best_lib.met_vote(s["best"]), x, x_new)
  (_, stats), grad = eot.value_and_grad(
    x_new, prng.fold_each(keys, i + 1), labels
  )
  point = best_lib.best_of(x_new, stats, settings.targeted)
  s["best"] = best_lib.keep_better(s["best"], point)
  rose = point.objective > s["top"]
  s["x_top"] = best_lib.where_examples(rose, x_new, s["x_top"])
  s["grad_top"] = best_lib.where_examples(rose, grad, s["grad_top"])
  s["top"] = jnp.maximum(point.objective, s["top"])
  rise = (point.objective > s["last"]).astype(jnp.float32)
  s["rises"] = s["rises"] + rise
  s["last"] = point.objective

  is_check, interval = checkpoints(settings.num_steps)
  check = jnp.asarray(is_check)[i]
  threshold = jnp.asarray(settings.rho * interval, jnp.float32)[i]
  oscillating = s["rises"] <= threshold
  stalled = ~s["halved_at_check"] & (s["top_at_check"] >= s["top"])
  halve = check & (oscillating | stalled)
  s["halved_at_check"] = jnp.where(
    check, oscillating | stalled, s["halved_at_check"]
  )
  s["top_at_check"] = jnp.where(check, s["top"], s["top_at_check"])
  s["rises"] = jnp.where(check, 0.0, s["rises"])
  s["step"] = jnp.where(halve, s["step"] / 2, s["step"])
  s["x_prev"] = x
  s["x"] = best_lib.where_examples(halve, s["x_top"], x_new)
  s["grad"] = best_lib.where_examples(halve, s["grad_top"], grad)
  s["grads"] = s["grads"] + settings.eot_samples
  return s, stats
