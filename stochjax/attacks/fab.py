"""FAB (Croce & Hein 2020), the fast adaptive boundary attack, targeted as
AutoAttack's ``fab-t`` and untargeted, linf and l2, as one jitted scan.

FAB looks for the smallest perturbation that crosses the decision
boundary. Each step linearizes the boundary between the true class y and
a class t at the current point x1 (``z_t - z_y`` and its input gradient),
projects both x1 and the clean image x0 onto that hyperplane inside the
[0, 1] box (`project_linf`, `project_l2`: AutoAttack's projections), and
moves to a convex combination of the two projections, extrapolated by
``eta``, with weight ``alpha = min(|d1| / (|d1| + |d2|), alpha_max)`` on
the clean side. Once x1 is misclassified it is recorded if it is the
nearest so far and pulled back toward x0 by ``beta``. The attack returns
the nearest misclassified point when its norm is at most eps, else the
clean image.

FAB-T (``num_targets=9``): t is each of the classes ranked 2nd to 10th by
the clean logits in turn (`targets.over_targets`, as APGD-T). Untargeted
(``num_targets=None``): t is, per step, the class whose linearized
boundary is nearest (all K input gradients per step: K backward passes;
the cost counts each step's Jacobian as one gradient evaluation).

Under a defense the boundary is linearized on the mean over m draws of
``z_t - z_y`` and of its gradient, and "misclassified" is the vote of m
fresh draws. Differences from AutoAttack, each deliberate: the vote
replaces one forward pass; the batch runs together (an unbroken batch
runs every step; AutoAttack slices out the broken points: the same
points, different work).

References:
  Croce, Hein. Minimally distorted adversarial examples with a fast
  adaptive boundary attack. ICML 2020. https://arxiv.org/abs/1907.02044
"""

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import prng, types, validation
from stochjax.attacks import attack as attack_lib
from stochjax.attacks import eot as eot_lib
from stochjax.attacks import loops, parameters, results, targets
from stochjax.defenses import core as defense_core

_F32 = jnp.float32


def _take(a: jax.Array, index: jax.Array) -> jax.Array:
  """``a[i, index[i]]`` for rows i."""
  return jnp.take_along_axis(a, index[:, None], axis=1)[:, 0]


def _safe(x: jax.Array) -> jax.Array:
  return jnp.where(x == 0, 1.0, x)


def project_linf(t: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
  """AutoAttack's ``projection_linf``: per row of ``t, w (n, D)``, ``b
  (n,)``, the smallest-linf step d with ``w . (t + d) = b`` and ``t + d``
  in [0, 1] (where the box allows the hyperplane; else the box corner
  nearest it)."""
  n, dim = w.shape
  sign = jnp.where(jnp.sum(w * t, 1) - b >= 0, 1.0, -1.0)
  w, b = w * sign[:, None], b * sign
  nonzero = (w != 0).astype(_F32)
  a = (w < 0).astype(_F32)
  d = (a - t) * nonzero
  p = a - t * (2 * a - 1)
  order = jnp.argsort(p, axis=1)
  b = b - jnp.sum(w * t, 1)
  b0 = jnp.sum(w * d, 1)
  reverse = order[:, ::-1]
  ws = jnp.take_along_axis(w, reverse, 1)
  s = jnp.cumsum(jnp.abs(ws), 1)
  sb = jnp.cumsum(-ws * jnp.take_along_axis(d, reverse, 1), 1) + b0[:, None]
  b2 = sb[:, -1] - s[:, -1] * _take(p, order[:, 0])
  c_l = b - b2 > 0
  c2 = (b - b0 > 0) & ~c_l
  lb, ub = jnp.zeros((n,), _F32), jnp.full((n,), dim - 1, _F32)
  for _ in range(math.ceil(math.log2(dim))):
    mid = jnp.floor((lb + ub) / 2)
    i = mid.astype(jnp.int32)
    current = _take(order, dim - 1 - i)
    c = b - (_take(sb, i) - _take(s, i) * _take(p, current)) > 0
    lb, ub = jnp.where(c, mid, lb), jnp.where(c, ub, mid)
  lo = lb.astype(jnp.int32)
  last = jnp.maximum((b - sb[:, -1]) / _safe(-s[:, -1]), 0.0)
  d_l = (2 * a - 1) * last[:, None]
  lam = jnp.maximum((b - _take(sb, lo)) / _safe(-_take(s, lo)), 0.0)[:, None]
  d_2 = jnp.minimum(lam, d) * a + jnp.maximum(-lam, d) * (1 - a)
  d = jnp.where(c_l[:, None], d_l, jnp.where(c2[:, None], d_2, d))
  return d * nonzero


def project_l2(t: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
  """AutoAttack's ``projection_l2``: per row, the smallest-l2 step d with
  ``w . (t + d) = b`` and ``t + d`` in [0, 1] (the box permitting)."""
  n, dim = w.shape
  big = 1e12
  c = jnp.sum(w * t, 1) - b
  sign = jnp.where(c >= 0, 1.0, -1.0)
  w, c = w * sign[:, None], c * sign
  live = jnp.abs(w) > 1e-8
  kept = live.astype(_F32)
  w_safe = jnp.where(live, w, 1.0)
  r = jnp.clip(jnp.maximum(t / w_safe, (t - 1) / w_safe), -big, big)
  r = jnp.where(live, r, big)
  r = jnp.where(r == -big, big, r)
  order = jnp.argsort(r, axis=1)
  rs = jnp.take_along_axis(r, order, 1)
  rs2 = jnp.concatenate([rs[:, 1:], jnp.zeros((n, 1), _F32)], 1)
  rs = jnp.where(rs == big, 0.0, rs)
  rs2 = jnp.where(rs2 == big, 0.0, rs2)
  w3s = jnp.take_along_axis(w**2, order, 1)
  w5 = jnp.sum(w3s, 1, keepdims=True)
  ws = w5 - jnp.cumsum(w3s, 1)
  d = -(r * w) * kept
  s = jnp.concatenate(
    [-w5 * rs[:, :1], jnp.cumsum((rs - rs2) * ws, 1) - w5 * rs[:, :1]], 1
  )
  c4 = s[:, 0] + c < 0
  c3 = jnp.sum(d * w, 1) + c > 0
  c2 = ~(c4 | c3)
  lb, ub = jnp.zeros((n,), _F32), jnp.full((n,), dim - 1, _F32)
  for _ in range(math.ceil(math.log2(dim))):
    mid = jnp.floor((lb + ub) / 2)
    above = _take(s, mid.astype(jnp.int32)) + c > 0
    lb, ub = jnp.where(above, mid, lb), jnp.where(above, ub, mid)
  lo = lb.astype(jnp.int32)
  d_4 = -(c / _safe(w5[:, 0]))[:, None] * w
  ws_lo = _take(ws, lo)
  alpha = (_take(s, lo) + c) / _safe(ws_lo) + _take(rs, lo)
  alpha = jnp.where(ws_lo == 0, 0.0, alpha)[:, None]
  beyond = (alpha > r).astype(_F32)
  d_2 = d * beyond - alpha * w * (1 - beyond)
  d = jnp.where(c4[:, None], d_4, jnp.where(c2[:, None], d_2, d))
  return d * kept


_PROJECT = {"linf": project_linf, "l2": project_l2}


def _norm(norm: str, x: jax.Array) -> jax.Array:
  flat = x.reshape(x.shape[0], -1)
  if norm == "linf":
    return jnp.max(jnp.abs(flat), 1)
  return jnp.sqrt(jnp.sum(flat**2, 1))


def logit_gap(logits: types.Logits, pairs: jax.Array) -> jax.Array:
  """``z_t - z_y`` for ``pairs (N, 2)`` of true labels y and classes t."""
  picked = jnp.take_along_axis(logits.astype(_F32), pairs, axis=1)
  return picked[:, 1] - picked[:, 0]


@dataclasses.dataclass(frozen=True)
class _Fab:
  """The static settings of one FAB attack (see `make_fab`)."""

  eot_settings: tuple  # with `logit_gap`: the targeted linearization.
  ranking_settings: tuple  # with the margin loss: the target ranking.
  norm: str
  num_steps: int
  num_targets: int | None
  alpha_max: float
  eta: float
  beta: float
  eot_samples: int


def make_fab(
  *,
  eps: float,
  norm: str = "linf",
  num_steps: int = 100,
  num_targets: int | None = 9,
  alpha_max: float = 0.1,
  eta: float = 1.05,
  beta: float = 0.9,
  eot_samples: int = 1,
  eot_chunk_size: int | None = None,
  defense: types.Defense | None = None,
) -> attack_lib.Attack:
  """Builds FAB (see the module docstring); labels are the true classes.

  Args:
    eps: the threat model's radius: a point further than eps counts as a
      failure and the clean image is returned.
    norm: "linf" or "l2".
    num_steps: steps per target (AutoAttack: 100).
    num_targets: FAB-T's number of targets (9); None for untargeted FAB.
    alpha_max, eta, beta: AutoAttack's defaults (0.1, 1.05, 0.9).
    eot_samples: m, draws averaged per linearization and per vote.
    eot_chunk_size: draws evaluated at once; divides `eot_samples`.
    defense: ``(key, image) -> image``; None attacks the bare model.

  Returns:
    An `attack_lib.Attack`.
  """
  common = dict(
    eps=eps, num_steps=num_steps, restarts=1, norm=norm,
    eot_mode="mean_grad", targeted=False, eot_samples=eot_samples,
    eot_chunk_size=eot_chunk_size, defense=defense,
  )  # fmt: skip
  eot = parameters.check_parameters(loss=logit_gap, **common)
  ranking = parameters.check_parameters(loss="margin", **common)
  if num_targets is not None and not (
    isinstance(num_targets, int) and num_targets >= 1
  ):
    raise ValueError(
      f"num_targets must be a positive int or None, got {num_targets!r}."
    )
  for name, value, hi in (("alpha_max", alpha_max, 1.0), ("beta", beta, 1.0)):
    if not (isinstance(value, int | float) and 0.0 < value <= hi):
      raise ValueError(f"{name} must lie in (0, {hi}], got {value!r}.")
  validation.positive("eta", eta)
  settings = _Fab(
    eot_settings=eot, ranking_settings=ranking, norm=norm,
    num_steps=num_steps, num_targets=num_targets, alpha_max=float(alpha_max),
    eta=float(eta), beta=float(beta), eot_samples=eot_samples,
  )  # fmt: skip
  runs = 1 if num_targets is None else num_targets
  per_run = num_steps * eot_samples
  run = loops.shared(_build, settings)
  return attack_lib.Attack(
    run=loops.Bound(run, {"eps": np.float32(eps)}),
    cost=results.Cost(
      num_steps=num_steps, eot_samples=eot_samples, restarts=runs,
      grad_evals=runs * per_run,
      # Each step's vote; with targets, each target's check, the ranking
      # and the clean check (`targets.over_targets`).
      forward_evals=per_run if num_targets is None
      else runs * (per_run + eot_samples) + 2 * eot_samples,
    ),
    loss="margin", targeted=False,
  )  # fmt: skip


def _build(settings: _Fab) -> Callable:
  return jax.jit(functools.partial(_run, settings))


def _run(settings: _Fab, key, logits_fn, images, labels, *, eps,
         valid=None) -> results.Run:  # fmt: skip
  """The jitted body (`attack_lib.Attack.run`)."""
  del valid
  eot = eot_lib.make_eot(**dict(settings.eot_settings), logits_fn=logits_fn)
  check = eot_lib.make_eot(
    **dict(settings.ranking_settings), logits_fn=logits_fn
  ).statistics
  if settings.num_targets is None:
    linearize = _nearest_boundary(settings, logits_fn, labels)
    keys = prng.per_example(key, images.shape[0])
    return _search(settings, check, linearize, keys, images, labels, eps)

  targets.check_classes(logits_fn, images, settings.num_targets, fewest=2)

  def attack_target(keys, target):
    pairs = jnp.stack([labels, target], axis=-1)

    def linearize(x, step_keys):
      (_, stats), grad = eot.value_and_grad(x, step_keys, pairs)
      return stats.loss, grad

    return _search(settings, check, linearize, keys, images, labels, eps)

  return targets.over_targets(
    attack_target, eot_settings=settings.ranking_settings,
    logits_fn=logits_fn, key=key, images=images, labels=labels,
    num_targets=settings.num_targets,
  )  # fmt: skip


def _nearest_boundary(settings: _Fab, logits_fn, labels):
  """Untargeted FAB's linearization: per example the class whose
  linearized boundary with y is nearest (all K gradients of the mean
  logits over the draws), as ``(z_t - z_y, its gradient)``."""
  settings_dict = dict(settings.eot_settings)
  defended = defense_core.defended_draws(logits_fn, settings_dict["defense"])
  draws = jnp.arange(settings.eot_samples, dtype=jnp.uint32)

  def linearize(x, step_keys):
    def mean_logits(x):
      return jnp.mean(defended(step_keys, draws, x).astype(_F32), axis=0)

    logits, pullback = jax.vjp(mean_logits, x)
    k = logits.shape[-1]
    eye = jnp.eye(k, dtype=_F32)
    grads = jax.vmap(lambda e: pullback(jnp.broadcast_to(e, logits.shape))[0])(
      eye
    )  # (K, N, H, W, C)
    own = jnp.take_along_axis(logits, labels[:, None], 1)
    df = logits - own  # (N, K)
    dg = grads - jnp.take_along_axis(
      grads, labels[None, :, None, None, None], 0
    )
    df = jnp.where(jax.nn.one_hot(labels, k, dtype=bool), 1e10, df)
    scale = _dual_norms(settings.norm, dg)  # (K, N)
    nearest = jnp.argmin(jnp.abs(df) / (1e-12 + scale.T), axis=1)
    pick = nearest[None, :, None, None, None]
    return _take(df, nearest), jnp.take_along_axis(dg, pick, 0)[0]

  return linearize


def _dual_norms(norm: str, dg: jax.Array) -> jax.Array:
  """``(K, N)`` dual norms of the gradients (l1 for linf, l2 for l2)."""
  flat = dg.reshape(dg.shape[:2] + (-1,))
  if norm == "linf":
    return jnp.sum(jnp.abs(flat), -1)
  return jnp.sqrt(jnp.sum(flat**2, -1))


def _search(settings: _Fab, check, linearize, keys, images, labels, eps):
  """One FAB run from the clean image: ``results.Run`` with losses ``(1,
  T, N)`` (the linearized ``z_t - z_y``) and the votes at each step.
  `check` is ``eot.statistics`` (its goal: any misclassification of
  `labels`)."""
  n = images.shape[0]
  project = _PROJECT[settings.norm]
  x0 = images.reshape(n, -1)
  m = settings.eot_samples
  grad_keys, check_keys = prng.split_each(keys)

  def step(carry, i):
    x1, adv, nearest = carry
    df, dg = linearize(x1, prng.fold_each(grad_keys, i))
    w = dg.reshape(n, -1)
    b = -df + jnp.sum(w * x1.reshape(n, -1), 1)
    d3 = project(
      jnp.concatenate([x1.reshape(n, -1), x0]),
      jnp.concatenate([w, w]),
      jnp.concatenate([b, b]),
    )
    d1, d2 = d3[:n].reshape(images.shape), d3[n:].reshape(images.shape)
    a0 = jnp.maximum(_norm(settings.norm, d3), 1e-8)
    a1, a2 = a0[:n], a0[n:]
    alpha = jnp.clip(a1 / (a1 + a2), 0.0, settings.alpha_max)
    alpha = alpha.reshape(-1, 1, 1, 1)
    x1 = jnp.clip(
      (x1 + settings.eta * d1) * (1 - alpha)
      + (images + settings.eta * d2) * alpha,
      0.0,
      1.0,
    )
    stats = check(x1, prng.fold_each(check_keys, i), labels)
    broken = stats.goal_rate > 0.5
    distance = _norm(settings.norm, x1 - images)
    closer = broken & (distance < nearest)
    adv = jnp.where(closer.reshape(-1, 1, 1, 1), x1, adv)
    nearest = jnp.where(closer, distance, nearest)
    x1 = jnp.where(
      broken.reshape(-1, 1, 1, 1), images + (x1 - images) * settings.beta, x1
    )
    return (x1, adv, nearest), (df, stats.goal_rate)

  init = (images, images, jnp.full((n,), jnp.inf, _F32))
  (_, adv, nearest), (gaps, rates) = jax.lax.scan(
    step, init, jnp.arange(settings.num_steps, dtype=jnp.uint32)
  )
  found = (nearest <= eps).reshape(-1, 1, 1, 1)
  steps = jnp.zeros((), jnp.int32) + settings.num_steps * m
  return results.Run(
    jax.lax.stop_gradient(jnp.where(found, adv, images)),
    gaps[None],
    rates[None],
    steps,
    steps,
  )
