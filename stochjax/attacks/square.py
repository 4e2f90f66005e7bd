"""Square Attack (Andriushchenko et al. 2020), linf and l2, with EOT, as one
jitted `lax.scan` over queries.

A score-based random search: each query proposes a change of one random
square window of the current best perturbation and keeps it when the
attack objective improves (or the proposal meets the goal). The window's
side shrinks on a fixed schedule of the query index (`side_schedule`).
linf proposals set the window to +-eps per channel around the best point;
l2 proposals move mass between two windows with AutoAttack's
pseudo-Gaussian pattern (`eta_grid`), keeping the norm at eps.

**EOT-Square.** With ``eot_samples = m`` each proposal's objective is the
mean loss over m fresh defense draws (the EOT loss of `attacks.eot`), and a
point stops only when most of its m draws meet the goal (`attacks.best`'s
vote), never on one draw. A proposal is compared with the stored estimate
of the current best point (as the AutoAttack paper's EOT-Square does), so
each query costs m forward passes; the stored estimate is the maximum of
noisy ones, which makes later acceptances harder (a winner's curse that
m shrinks).

Differences from AutoAttack's ``square.py``, each deliberate:
* each example draws its own windows, signs and pattern orientation from
  its own key (AutoAttack draws one window for the whole batch, so an
  example's attack depends on the batch; the original code is per image);
* a point stops when most draws at its best point meet the goal, and the
  whole batch stops once every point has (AutoAttack: one deterministic
  margin);
* the targeted attack descends the chosen loss (AutoAttack's targeted
  Square always uses cross-entropy).
Window positions follow AutoAttack: ``floor(u * (H - s))``.

References:
  Andriushchenko, Croce, Flammarion, Hein. Square Attack: a query-efficient
  black-box adversarial attack via random search. ECCV 2020.
  https://arxiv.org/abs/1912.00049
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stochjax import prng, types
from stochjax.attacks import attack as attack_lib
from stochjax.attacks import best as best_lib
from stochjax.attacks import loops, parameters, results

# AutoAttack's p schedule: p_init / 2**k after these (rescaled) query indices.
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_TINY = 1e-12


def p_schedule(
  num_queries: int, p_init: float, rescale: bool = True
) -> np.ndarray:
  """``(num_queries,)`` the fraction p of pixels changed at each query
  (AutoAttack's ``p_selection``: halved after queries 10, 50, 200, ...,
  8000, read at ``int(i / num_queries * 10000)`` when rescaled)."""
  p = np.empty(num_queries)
  for i in range(num_queries):
    at = int(i / num_queries * 10000) if rescale else i
    p[i] = p_init / 2 ** sum(at > h for h in _HALVINGS)
  return p


def side_schedule(
  norm: str, num_queries: int, p_init: float, height: int, width: int,
  channels: int, rescale: bool = True,
) -> np.ndarray:  # fmt: skip
  """``(num_queries,)`` int32 square sides: ``round(sqrt(p * H * W))``, at
  least 1 (linf) or an odd number >= 3 (l2), at most ``min(H, W)``."""
  del channels  # n_features / C = H * W
  sides = []
  for p in p_schedule(num_queries, p_init, rescale):
    s = int(round(np.sqrt(p * height * width)))
    if norm == "linf":
      s = max(s, 1)
    else:
      s = max(s, 3)
      s += 1 - s % 2
    sides.append(min(s, height, width))
  return np.asarray(sides, np.int32)


def _inverse_square_sums(size: int) -> np.ndarray:
  """``T[n] = sum_{k=1}^{n} 1/k^2`` for n < `size` (float64)."""
  return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, size) ** 2)])


def _window(h: int, w: int, top, left, side) -> jax.Array:
  """``(H, W)`` float mask of the `side`-square at (`top`, `left`)."""
  rows = jnp.arange(h)[:, None] - top
  cols = jnp.arange(w)[None, :] - left
  inside = (rows >= 0) & (rows < side) & (cols >= 0) & (cols < side)
  return inside.astype(jnp.float32)


def eta_grid(h: int, w: int, top, left, side, transpose) -> jax.Array:
  """``(H, W)`` AutoAttack's l2 window pattern ``eta(side)`` placed at
  (`top`, `left`), zero elsewhere; `side` may be traced.

  ``eta(s)``: the top ``s // 2`` rows hold nested rectangles around their
  centre, each adding ``1 / (k + 1)**2`` for rectangle k (so a cell at
  Chebyshev distance d from the centre holds ``T[K] - T[d]``), the bottom
  rows the negated pattern of the rest; each half has unit norm, then the
  whole; ``transpose`` swaps rows and columns.
  """
  table = jnp.asarray(_inverse_square_sums(max(h, w) + 2), jnp.float32)
  rows = jnp.arange(h)[:, None] - top
  cols = jnp.arange(w)[None, :] - left
  inside = (rows >= 0) & (rows < side) & (cols >= 0) & (cols < side)
  i = jnp.where(transpose, cols, rows)
  j = jnp.where(transpose, rows, cols)
  half = side // 2
  upper = i < half
  a = jnp.where(upper, half, side - half)  # the half's height
  d = jnp.maximum(
    jnp.abs(jnp.where(upper, i, i - half) - a // 2), jnp.abs(j - side // 2)
  )
  k = jnp.maximum(a // 2 + 1, side // 2 + 1)
  value = jnp.where(inside, table[k] - table[jnp.clip(d, 0, k)], 0.0)

  def unit(mask):
    part = jnp.where(mask, value, 0.0)
    return part / jnp.maximum(jnp.sqrt(jnp.sum(part**2)), _TINY)

  pattern = unit(inside & upper) - unit(inside & ~upper)
  return pattern / jnp.maximum(jnp.sqrt(jnp.sum(pattern**2)), _TINY)


def _l2_norm(x: jax.Array, axes=(0, 1, 2)) -> jax.Array:
  return jnp.sqrt(jnp.sum(jnp.square(x), axis=axes, keepdims=True))


def _signs(key, shape) -> jax.Array:
  return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0)


def _position(key, limit) -> jax.Array:
  """AutoAttack's ``random_int(0, limit)``: ``floor(u * limit)``."""
  limit = jnp.asarray(limit, jnp.float32)
  return jnp.floor(jax.random.uniform(key) * limit).astype(jnp.int32)


def _start_linf(key, image, eps) -> jax.Array:
  """Vertical stripes: +-eps per (channel, column)."""
  _, w, c = image.shape
  return jnp.clip(image + eps * _signs(key, (1, w, c)), 0.0, 1.0)


def _start_l2(key, image, eps) -> jax.Array:
  """A grid of ``H // 5``-squares of the pattern with random signs per
  channel (and orientation), scaled to norm eps."""
  h, w, c = image.shape
  side = h // 5
  offset = (h - 5 * side) // 2
  tops = [offset + side * r for r in range(h // side)]
  lefts = [offset + side * q for q in range(w // side)]
  corners = np.asarray([(t, q) for t in tops for q in lefts], np.int32)
  sign_key, turn_key = jax.random.split(key)
  signs = _signs(sign_key, (len(corners), c))
  turns = jax.random.bernoulli(turn_key, 0.5, (len(corners),))
  grids = jax.vmap(lambda tl, t: eta_grid(h, w, tl[0], tl[1], side, t))(
    jnp.asarray(corners), turns
  )
  delta = jnp.einsum("khw,kc->hwc", grids, signs)
  return jnp.clip(image + eps * delta / (_l2_norm(delta) + _TINY), 0.0, 1.0)


class Proposal(NamedTuple):
  """One query's random choices for one example: window 1 at (`top`,
  `left`), window 2 (l2 only) at (`top2`, `left2`), the pattern's
  orientation (l2) and a sign per channel ``(1, 1, C)``."""

  top: jax.Array
  left: jax.Array
  top2: jax.Array
  left2: jax.Array
  turn: jax.Array
  signs: jax.Array


def draw_proposal(key, image, side) -> Proposal:
  """The random choices of one query (`Proposal`), each from its own key."""
  h, w, c = image.shape
  keys = jax.random.split(key, 6)
  return Proposal(
    _position(keys[0], h - side),
    _position(keys[1], w - side),
    _position(keys[2], h - side),
    _position(keys[3], w - side),
    jax.random.bernoulli(keys[4], 0.5),
    _signs(keys[5], (1, 1, c)),
  )


def linf_step(image, best, eps, side, proposal: Proposal) -> jax.Array:
  """The window of the best point moved to ``image +- eps`` per channel."""
  h, w, _ = image.shape
  window = _window(h, w, proposal.top, proposal.left, side)[..., None]
  step = 2.0 * eps * window * proposal.signs
  return jnp.clip(jnp.clip(best + step, image - eps, image + eps), 0.0, 1.0)


def l2_step(image, best, eps, side, proposal: Proposal) -> jax.Array:
  """AutoAttack's l2 proposal: window 1 gets the pattern plus its old
  content, renormalized per channel to the mass of both windows and what
  the norm budget leaves; window 2 is cleared; the perturbation is rescaled
  to norm eps."""
  h, w, c = image.shape
  win1 = _window(h, w, proposal.top, proposal.left, side)[..., None]
  win2 = _window(h, w, proposal.top2, proposal.left2, side)[..., None]
  delta = best - image
  old = delta * win1 / (_TINY + _l2_norm(delta * win1, (0, 1)))
  budget = jnp.maximum(eps**2 - jnp.sum(jnp.square(delta)), 0.0) / c
  both = _l2_norm(delta * jnp.maximum(win1, win2), (0, 1))
  pattern = eta_grid(h, w, proposal.top, proposal.left, side, proposal.turn)
  new = pattern[..., None] * proposal.signs + old
  new = new / (_TINY + _l2_norm(new, (0, 1))) * jnp.sqrt(budget + both**2)
  delta = delta * (1.0 - win2) * (1.0 - win1) + new * win1
  return jnp.clip(image + eps * delta / (_l2_norm(delta) + _TINY), 0.0, 1.0)


def _proposer(norm: str):
  step = {"linf": linf_step, "l2": l2_step}[norm]

  def propose(key, image, best, eps, side):
    return step(image, best, eps, side, draw_proposal(key, image, side))

  return propose


_START = {"linf": _start_linf, "l2": _start_l2}


@dataclasses.dataclass(frozen=True)
class _Square:
  """The static settings of one Square attack (see `make_square`)."""

  eot_settings: tuple  # `eot_lib.make_eot` keyword arguments, as items.
  norm: str
  num_queries: int
  p_init: float
  rescale_schedule: bool
  targeted: bool
  eot_samples: int
  restarts: int
  snapshots: tuple[int, ...]
  unroll: int | bool
  early_stop: bool = True  # `loops.run_attack` reads it for restarts.

  def slot_of(self) -> np.ndarray:
    """``(num_queries,)``: the snapshot slot written after query q."""
    return loops.snapshot_slots(self.num_queries, self.snapshots)


def make_square(
  *,
  eps: float,
  norm: str = "linf",
  num_queries: int = 5000,
  p_init: float = 0.8,
  loss: str = "margin",
  targeted: bool = False,
  rescale_schedule: bool = True,
  restarts: int = 1,
  eot_samples: int = 1,
  eot_chunk_size: int | None = None,
  eot_mode: str = "mean_grad",
  defense: types.Defense | None = None,
  snapshot_queries: tuple[int, ...] | None = None,
  unroll: int | bool = 1,
) -> attack_lib.Attack:
  """Builds the Square Attack, with EOT averaging over a stochastic defense.

  Gradient-free: the model and the defense are only run forward, so a
  non-differentiable defense needs no BPDA.

  Args:
    eps: radius of the threat model in [0, 1] pixel units.
    norm: "linf" or "l2".
    num_queries: proposals per restart (the start point costs one more).
    p_init: the starting fraction of pixels a window covers, in (0, 1].
    loss: "margin" (AutoAttack's default) or "ce"; the objective ascended
      (descended when `targeted`).
    targeted: drive the prediction to `labels`, read as target classes.
    rescale_schedule: read the p schedule at ``i / num_queries * 10000``
      (AutoAttack's default), so a short budget still shrinks its windows.
    restarts: independent restarts; each example keeps its best point.
    eot_samples: m, defense draws averaged per query (EOT-Square).
    eot_chunk_size: draws evaluated at once; divides `eot_samples`.
    eot_mode: how draws are averaged: "mean_grad" (mean of the draws'
      losses) or "mean_logits" (loss of the mean logits).
    defense: ``(key, image) -> image``; None attacks the bare model.
    snapshot_queries: also keep the best points after these query counts
      (in 1..num_queries): images ``(N, S, H, W, C)`` (one restart only).
    unroll: passed to `lax.scan`.

  Returns:
    An `attack_lib.Attack`; ``attack.with_info(...)`` reports per query the
    best point's loss and goal rate, and the forward passes spent
    (``(1 + queries run) * eot_samples`` per restart; the batch stops once
    every example meets its goal on most draws).

  Raises:
    ValueError: a parameter out of range, an unknown norm, loss or EOT mode.
  """
  eot = parameters.check_parameters(
    eps=eps, num_steps=num_queries, restarts=restarts, norm=norm,
    eot_mode=eot_mode, loss=loss, targeted=targeted, eot_samples=eot_samples,
    eot_chunk_size=eot_chunk_size, defense=defense,
  )  # fmt: skip
  if not (isinstance(p_init, int | float) and 0.0 < p_init <= 1.0):
    raise ValueError(f"p_init must lie in (0, 1], got {p_init!r}.")
  snapshots = tuple(int(q) for q in snapshot_queries or ())
  if not all(1 <= q <= num_queries for q in snapshots) or len(
    set(snapshots)
  ) != len(snapshots):
    raise ValueError(
      f"snapshot_queries {snapshots} must be distinct integers in "
      f"1..{num_queries}."
    )
  if snapshots and restarts > 1:
    raise ValueError("snapshot_queries needs restarts=1.")
  settings = _Square(
    eot_settings=eot, norm=norm, num_queries=num_queries,
    p_init=float(p_init), rescale_schedule=bool(rescale_schedule),
    targeted=targeted, eot_samples=eot_samples, restarts=restarts,
    snapshots=snapshots, unroll=unroll,
  )  # fmt: skip
  shared = loops.programs(_run_once, settings)
  return attack_lib.Attack(
    run=loops.bound_run(shared, eps, 1.0),
    cost=results.Cost(
      num_steps=num_queries, eot_samples=eot_samples, restarts=restarts,
      grad_evals=0,
      forward_evals=restarts * (num_queries + 1) * eot_samples,
    ),
    loss=loss, targeted=targeted,
    snapshot_steps=snapshots, sweep_run=shared.sweep, step_ratio=1.0,
  )  # fmt: skip


def _run_once(settings: _Square, eot, images, labels, eps, step_size, keys):
  """One restart: ``(Best, losses (Q, N), goal_rates (Q, N), 0,
  forward_evals)``. `step_size` is unused (Square has none)."""
  del step_size
  n, h, w, c = images.shape
  start_keys, proposal_keys, draw_keys = prng.split_each(keys, 3)
  x = jax.vmap(_START[settings.norm], in_axes=(0, 0, None))(
    start_keys, images, eps
  )
  stats = eot.statistics(x, prng.fold_each(draw_keys, 0), labels)
  best = best_lib.best_of(x, stats, settings.targeted)
  kept = jnp.zeros((n, len(settings.snapshots), h, w, c), images.dtype)
  sides = jnp.asarray(
    side_schedule(
      settings.norm, settings.num_queries, settings.p_init, h, w, c,
      settings.rescale_schedule,
    )
  )  # fmt: skip
  propose = jax.vmap(_proposer(settings.norm), in_axes=(0, 0, 0, None, None))
  m = settings.eot_samples

  def query(carry, i):
    best, kept, forwards = carry
    done = best_lib.met_vote(best)
    x_new = propose(
      prng.fold_each(proposal_keys, i), images, best.x, eps, sides[i]
    )
    stats = eot.statistics(x_new, prng.fold_each(draw_keys, i + 1), labels)
    new = best_lib.best_of(x_new, stats, settings.targeted)
    take = ~done & ((new.objective > best.objective) | best_lib.met_vote(new))
    best = jax.tree.map(
      lambda a, b: best_lib.where_examples(take, a, b), new, best
    )
    if settings.snapshots:
      kept = loops.keep_snapshot(kept, settings.slot_of(), i, best.x)
    loss = -best.objective if settings.targeted else best.objective
    return (best, kept, forwards + m), (loss, best.goal_rate)

  init = (best, kept, jnp.zeros((), jnp.int32) + m)
  queries = jnp.arange(settings.num_queries, dtype=jnp.uint32)
  body = loops.skip_when(
    lambda carry: jnp.all(best_lib.met_vote(carry[0])), query, init, queries[0]
  )
  (best, kept, forwards), (losses, rates) = jax.lax.scan(
    body, init, queries, unroll=settings.unroll
  )
  if settings.snapshots:
    best = best._replace(x=_fill_stopped(kept, best.x, settings, forwards, m))
  zero = jnp.zeros((), jnp.int32)
  return best, losses, rates, zero, forwards


def _fill_stopped(kept, final, settings: _Square, forwards, m) -> jax.Array:
  """Snapshots after the batch stopped were never written: they hold the
  final best points (nothing changed after the stop)."""
  run = forwards // m - 1  # queries run
  written = jnp.asarray(settings.snapshots) <= run
  return jnp.where(written[None, :, None, None, None], kept, final[:, None])
