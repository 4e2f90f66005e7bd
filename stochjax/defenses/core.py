"""The defense contract, batching, EOT, composition and BPDA, in one place.

A defense is ``defense(key, image) -> image`` on one ``(H, W, C)`` float32
image in [0, 1]; it returns an image of the same shape and dtype, also in
[0, 1]. Defenses never see a batch axis: `over_batch` (under `batched`,
the attacks, votes and training) and `eot` add one with `jax.vmap` over
keys, and nothing else in stochjax does; `prng.batch_first` lets a defense
share one draw across a batch, as the paper code's BaRT does in attacks.

Gradients: a defense is either differentiable ("exact"), or its forward pass
is wrapped by `bpda`, which is the only way stochjax gives a non-differentiable
step a gradient.
"""

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from stochjax import prng, sharding, types
from stochjax import registry as registry_lib

REGISTRY = registry_lib.Registry("defense")
GRADIENT_MODES = ("exact", "bpda")
SWITCH_MODES = ("auto", "select", "sequential")


def register(
  name: str,
  *,
  gradient: str,
  deterministic: bool = False,
  ranges: dict[str, tuple] | None = None,
) -> Callable[[Callable], Callable]:
  """Registers a defense; `gradient` is "exact" or "bpda" (for the README);
  `deterministic` defenses ignore their key (e.g. bit-depth reduction);
  `ranges` (``{arg: (low, high)}`` inclusive, or ``(low, high, "open")``
  excluding `low`) are checked at `lookup`."""
  if gradient not in GRADIENT_MODES:
    raise ValueError(f"gradient must be one of {GRADIENT_MODES}.")
  return REGISTRY.register(
    name, gradient=gradient, deterministic=deterministic, ranges=ranges or {}
  )


def identity(key: types.PRNGKey, image: types.Image) -> types.Image:
  """The no-op defense."""
  del key
  return image


def compose(defenses: Sequence[types.Defense]) -> types.Defense:
  """Applies `defenses` in order, each with an independent key.

  Args:
    defenses: zero or more defenses; none gives `identity`.

  Returns:
    A defense ``(key, image) -> image``.
  """
  defenses = tuple(defenses)
  if not defenses:
    return identity
  if len(defenses) == 1:
    return defenses[0]

  def composed(key, image):
    for defense, subkey in zip(
      defenses, jax.random.split(key, len(defenses)), strict=True
    ):
      image = defense(subkey, image)
    return image

  return composed


@functools.lru_cache(maxsize=256)
def lookup(spec: str | None) -> types.Defense:
  """Builds a defense from a spec such as ``"noise_injection()|rotation()"``.

  Args:
    spec: a `stochjax.registry` spec of registered defense names, or None /
      ``""`` / ``"identity"`` for no defense.

  Returns:
    A defense ``(key, image) -> image``; the same object for the same spec,
    so jitted functions that take it as a static argument compile once.

  Raises:
    ValueError: unknown names or arguments (the message lists valid ones),
      or values outside a parameter's declared range.
  """
  if spec is None or spec.strip() in ("", "identity", "identity()"):
    return identity
  calls = registry_lib.parse(spec)
  return compose([REGISTRY.bind(call) for call in calls])


def resolve(defense: types.Defense | str | None) -> types.Defense:
  """A defense from what a caller passed: a ``(key, image)`` callable as is,
  a spec string through `lookup`, None as `identity`.

  Raises:
    ValueError: a bad spec, or anything else.
  """
  if defense is None:
    return identity
  if isinstance(defense, str):
    return lookup(defense)
  if not callable(defense):
    raise ValueError(
      "defense must be a (key, image) -> image function, a spec string "
      f"such as 'noise_injection()', or None; got {defense!r}."
    )
  return defense


def over_batch(defense: types.Defense, draws: bool = False) -> Callable:
  """``(keys (N,), images (N, H, W, C)) -> (N, H, W, C)``: the defense
  vmapped over examples along `types.BATCH_AXIS` (inside
  `prng.batch_scope`, so `prng.batch_first` can share a draw). Every
  batched use of a defense (attacks, votes, training) goes through here.

  With `draws`: ``(keys (N, c), images (N, H, W, C)) -> (N, c, H, W, C)``,
  c draws of each example, each draw a batch of its own for
  `prng.batch_first`. The draws are vmapped outside the examples, so the
  example axis (the one a mesh splits) is the first a batching rule meets
  (`_looped`)."""

  def one(key, image):
    with prng.batch_scope():
      return defense(key, image)

  examples = jax.vmap(one, axis_name=types.BATCH_AXIS)
  if not draws:
    return examples
  return jax.vmap(examples, in_axes=(1, None), out_axes=1)


# The fold that separates a model's own draw from its defense's.
_MODEL_DRAW = 0x5A9


def defended_logits(
  logits_fn: types.LogitsFn, defense: types.Defense
) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """``(keys (N,), images (N, H, W, C)) -> (N, K)``: example i through the
  defense drawn with ``keys[i]``, then the model. A model with randomness of
  its own (a ``draw(keys, images)`` method, as
  `stochjax.models.stochastic.StochasticClassifier`) draws it from
  ``fold_in(keys[i], _MODEL_DRAW)``. Attacks (EOT) and votes evaluate a
  defended model only through here."""
  defend = over_batch(defense)
  draw = getattr(logits_fn, "draw", None)
  if draw is None:
    return lambda keys, images: logits_fn(defend(keys, images))
  return lambda keys, images: draw(
    prng.fold_each(keys, _MODEL_DRAW), defend(keys, images)
  )


def defended_draws(
  logits_fn: types.LogitsFn, defense: types.Defense
) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
  """``(keys (N,), draws (c,), images (N, H, W, C)) -> (c, N, K)``: draw
  ``draws[j]`` of example i is `defended_logits` with key
  ``fold_in(keys[i], draws[j])``. The model sees one example-major batch
  of N*c images: a batch split over devices stays split (a `jax.vmap`
  over draws would merge the draw axis into the model's batch ahead of
  the examples, and each device computed every example: 8x the work on 8
  devices). `logits_fn` must treat examples independently (a model in
  inference mode does). EOT, votes and the odds detector's draws go
  through here."""
  defend = over_batch(defense, draws=True)
  draw = getattr(logits_fn, "draw", None)

  def apply(keys, draws, images):
    n, c = images.shape[0], draws.shape[0]
    draw_keys = jnp.swapaxes(prng.per_draw(keys, draws), 0, 1)  # (N, c)
    defended = defend(draw_keys, images)  # (N, c, ...): its own image size
    flat = defended.reshape((n * c,) + defended.shape[2:])
    if draw is None:
      logits = logits_fn(flat)
    else:
      flat_keys = draw_keys.reshape(n * c)
      logits = draw(prng.fold_each(flat_keys, _MODEL_DRAW), flat)
    return jnp.swapaxes(logits.reshape((n, c) + logits.shape[1:]), 0, 1)

  return apply


def batched(defense: types.Defense) -> Callable:
  """``(key, images (N, H, W, C)) -> (N, H, W, C)``, one draw per image.

  The key for image i is ``fold_in(key, i)`` (`prng.per_example`), so an
  image's draw does not depend on the batch size.
  """

  def apply(key: types.PRNGKey, images: types.Batch) -> types.Batch:
    return over_batch(defense)(prng.per_example(key, images.shape[0]), images)

  return apply


def draws(defense: types.Defense, num_draws: int) -> Callable:
  """``(key, image (H, W, C)) -> (num_draws, H, W, C)`` independent draws."""

  def apply(key: types.PRNGKey, image: types.Image) -> jax.Array:
    keys = jax.random.split(key, num_draws)
    return jax.vmap(defense, in_axes=(0, None))(keys, image)

  return apply


@jax.custom_vjp
def straight_through(carrier: jax.Array, value: jax.Array) -> jax.Array:
  """Returns `value` exactly; the gradient flows to `carrier` unchanged.

  ``straight_through(x, f(x))`` is BPDA identity for `f`. Unlike
  ``x + stop_gradient(f(x) - x)`` the forward value is bit-exact.
  """
  del carrier
  return value


def _straight_through_fwd(carrier, value):
  del carrier
  return value, None


def _straight_through_bwd(_, g):
  return g, jnp.zeros_like(g)


straight_through.defvjp(_straight_through_fwd, _straight_through_bwd)


def switch(
  index: jax.Array,
  branches: Sequence[types.Defense],
  key: types.PRNGKey,
  image: types.Image,
  *,
  mode: str = "auto",
) -> types.Image:
  """``branches[index](key, image)``, with a batching rule to choose.

  Under `vmap` (batches, EOT), `lax.switch` with a per-image index becomes a
  select that runs every branch on every image. ``"sequential"`` instead
  loops over the batch (`_looped`), so each image runs only its own branch,
  forward and backward (a custom VJP recomputes the chosen branch's
  pullback): n times less work for an n-way switch, and on a CPU a loop
  over images costs nothing in vectorization. Inside a mesh context
  (`sharding.using`, which `batching.map_batches` and training set) each
  device loops over its own rows; elsewhere a loop over a batch split
  across devices would gather it and every device would run every image.
  ``"select"`` keeps `lax.switch`'s batching, better on GPUs/TPUs, where the
  extra branches run in parallel. ``"auto"``: sequential on CPUs (one
  device, or a mesh context), select elsewhere. Both give the same values
  and gradients.

  Raises:
    ValueError: an unknown mode.
  """
  if mode not in SWITCH_MODES:
    raise ValueError(
      f"Unknown switch mode {mode!r}; valid: {', '.join(SWITCH_MODES)}."
    )
  if mode == "auto":
    loops = jax.device_count() == 1 or sharding.context_devices() > 0
    mode = (
      "sequential" if jax.default_backend() == "cpu" and loops else "select"
    )
  if mode == "select":
    return jax.lax.switch(index, branches, key, image)
  return _sequential_switch(tuple(branches))(index, key, image)


def rounded_uniform(
  key: types.PRNGKey,
  low: jax.typing.ArrayLike,
  high: jax.typing.ArrayLike,
  shape: tuple[int, ...] = (),
) -> jax.Array:
  """BaRT's integer draws, ``round(uniform(low, high))`` as int32
  (half-to-even, as NumPy): the two end values get half the weight."""
  draw = jax.random.uniform(key, shape, jnp.float32, low, high)
  return jnp.round(draw).astype(jnp.int32)


def random_branch(
  key: types.PRNGKey,
  branches: Sequence[types.Defense],
  image: types.Image,
  *,
  mode: str = "auto",
) -> types.Image:
  """``branches[i](branch_key, image)`` for i uniform in the branches: a
  random choice between variants of a transform (BaRT's groups and modes),
  only the chosen one running per image on CPU (see `switch`)."""
  choice_key, branch_key = jax.random.split(key)
  index = jax.random.randint(choice_key, (), 0, len(branches))
  return switch(index, branches, branch_key, image, mode=mode)


def _sequential_switch(branches: tuple[types.Defense, ...]) -> Callable:
  """``(index, key, image) -> image``: one branch per image, even batched."""

  def apply(index, key, image):
    return jax.lax.switch(index, branches, key, image)

  def pullback(index, key, image, cotangent):
    _, vjp = jax.vjp(lambda x: apply(index, key, x), image)
    return vjp(cotangent)[0]

  forward = _looped(apply)
  backward = _looped(pullback)

  @jax.custom_vjp
  def switched(index, key, image):
    return forward(index, key, image)

  def switched_fwd(index, key, image):
    return forward(index, key, image), (index, key, image)

  def switched_bwd(residuals, cotangent):
    return None, None, backward(*residuals, cotangent)

  switched.defvjp(switched_fwd, switched_bwd)
  return switched


def _looped(fn: Callable) -> Callable:
  """`fn` (on arrays) that `vmap` runs as a loop over the batch, as
  `jax.custom_batching.sequential_vmap` does; in a mesh context
  (`sharding.using`) whose devices divide the vmapped axis, one loop per
  device over its own rows (`jax.shard_map`), not a loop over the gathered
  batch on every device. `over_batch` vmaps the examples innermost, so
  that axis is the examples', the one the mesh splits."""
  fn = jax.custom_batching.custom_vmap(fn)

  @fn.def_vmap
  def rule(axis_size, in_batched, *args):
    args = [
      x if batched else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))
      for x, batched in zip(args, in_batched, strict=True)
    ]

    def loop(*rows):
      return jax.lax.map(lambda row: fn(*row), rows)

    devices = sharding.context_devices()
    if devices > 1 and axis_size % devices == 0:
      rows = PartitionSpec(sharding.BATCH_AXIS)
      loop = jax.shard_map(
        loop,
        mesh=jax.sharding.get_abstract_mesh(),
        in_specs=rows,
        out_specs=rows,
        # Defenses' own loops start from constants that no device owns.
        check_vma=False,
      )
    return loop(*args), True

  return fn


def bpda(
  fn: types.Defense, surrogate: types.Defense | None = None
) -> types.Defense:
  """Backward Pass Differentiable Approximation (Athalye et al., 2018).

  The forward value is exactly ``fn(key, image)``. The backward pass is the
  identity (straight-through) if `surrogate` is None, otherwise the gradient
  of ``surrogate(key, image)`` with the *same* key, i.e. the same random draw.

  Args:
    fn: a defense, possibly non-differentiable.
    surrogate: an optional differentiable stand-in with the same output shape.

  Returns:
    A defense with fn's forward pass and the chosen backward pass.

  References:
    Athalye, Carlini, Wagner. Obfuscated Gradients Give a False Sense of
    Security. ICML 2018. https://arxiv.org/abs/1802.00420
  """

  @functools.wraps(fn)
  def wrapped(key: types.PRNGKey, image: types.Image) -> types.Image:
    value = fn(key, jax.lax.stop_gradient(image))
    carrier = image if surrogate is None else surrogate(key, image)
    if carrier.shape != value.shape:
      raise ValueError(
        f"bpda needs matching shapes: the forward pass gives {value.shape}, "
        f"the gradient path {carrier.shape}."
      )
    return straight_through(carrier, value)

  return wrapped
