"""BaRT: a random ordered subset of k transforms, drawn per image.

Raff et al.'s Barrage of Random Transforms, as the paper's ``Ensemble``:
for each image a random k-permutation of the members (without replacement)
is applied in order, each member with its own key. Members are any defense
specs; the default is the paper's Fig. 3 stack.

Cost: the k positions are a `lax.scan`, so each member is compiled once
(a Python loop compiled the stack k times: 3x the compile time for six
members), and the member at each position is chosen with `core.switch`. On CPU
(``switch="auto"`` or ``"sequential"``) a batch runs as a loop over images
(on a mesh, each device over its own), each running only its k members;
with ``"select"`` (the default on GPU/TPU)
`vmap` evaluates every member at every position and selects, k x n member
evaluations per draw (36 for the full stack), in parallel. The benchmark
(benchmarks/defenses.py) measures it.

The order is drawn per image by default (what the paper code's training
does); ``order="shared"`` draws one order per call for the whole batch, as
the paper code's `forward` does during attacks and votes: the order comes
from the batch's first example key (`prng.batch_first`), so it changes with
every call (PGD step, EOT draw, vote) and the members still draw their own
parameters per image.
"""

import jax

from stochjax import prng, registry, types
from stochjax.defenses import core

ORDERS = ("per_image", "shared")
PAPER_STACK = (
  "noise_injection()|gaussian_blur()|median()|swirl()|quantization()"
  "|fft_perturbation()"
)


# Raff et al.'s ten groups (BaRT proper): six single transforms (zoom for
# the zoom group), then one of each remaining group's members per image.
# Blur and median are the paper's (kornia-style) versions. E.g.
# ``bart(members=RAFF_GROUPS, k=5)``.
RAFF_GROUPS = "|".join(
  [
    "quantization()",
    "jpeg(quality_low=55, quality_high=96)",
    "swirl()",
    "noise_injection()",
    "fft_perturbation()",
    "zoom()",
    "one_of(members='hsv_shift()|xyz_shift()|lab_shift()|yuv_shift()')",
    "one_of(members='histogram_equalization()"
    "|adaptive_histogram_equalization()|contrast_stretch()')",
    "one_of(members='gray_mix()|gray_partial_mix()|gray_mix_two_thirds()"
    "|one_channel_partial_gray()')",
    "one_of(members='gaussian_blur()|median()|mean_filter()"
    "|mean_bilateral()|tv_chambolle()|wavelet_denoise()|nl_means()')",
  ]
)


def members_of(spec: str) -> list[types.Defense]:
  """The member defenses of a `|` spec (nested ensembles are refused)."""
  calls = registry.parse(spec)
  if any(call.name == "bart" for call in calls):
    raise ValueError("bart members cannot themselves be bart ensembles.")
  return [core.REGISTRY.bind(call) for call in calls]


@core.register("bart", gradient="bpda")
def bart(
  key: types.PRNGKey,
  image: types.Image,
  *,
  members: str = PAPER_STACK,
  k: int | None = None,
  switch: str = "auto",
  order: str = "per_image",
) -> types.Image:
  """Applies a random ordered subset of `k` of `members` to the image.

  Args:
    key: the order key and the members' keys.
    image: ``(H, W, C)`` float32 in [0, 1].
    members: a spec ``"a()|b(x=1)|..."`` of registered defenses (the paper's
      prefixes of noise injection, Gaussian blur, median, swirl,
      quantization, FFT perturbation by default).
    k: how many members per draw, 1..n; None = all (only the order is
      random, as in every BaRT experiment of the paper).
    switch: how a batch chooses members: "auto", "select" or "sequential"
      (see `core.switch`); the values are the same.
    order: "per_image" or "shared" (one order per call for the batch).

  Returns:
    ``(H, W, C)`` float32 in [0, 1]. Gradients are the members' (BPDA
    identity for the paper's stack).

  Raises:
    ValueError: unknown member names or order mode, or k outside 1..n.
  """
  if order not in ORDERS:
    raise ValueError(f"Unknown order {order!r}; valid: {', '.join(ORDERS)}.")
  fns = members_of(members)
  n = len(fns)
  k = n if k is None else k
  if not (isinstance(k, int) and 1 <= k <= n):
    raise ValueError(f"k must be in 1..{n} (the number of members), got {k}.")
  _check_shapes(members, fns, key, image)
  order_key, member_key = jax.random.split(key)
  if order == "shared":
    order_key = jax.random.split(prng.batch_first(key))[0]
  sequence = jax.random.permutation(order_key, n)[:k]
  keys = jax.random.split(member_key, k)

  def apply(image, position):
    index, member_key = position
    return core.switch(index, fns, member_key, image, mode=switch), None

  # A scan, not a Python loop: the members are compiled once, not k times.
  image, _ = jax.lax.scan(apply, image, (sequence, keys))
  return image


def _check_shapes(members: str, fns, key, image) -> None:
  for call, fn in zip(registry.parse(members), fns, strict=True):
    shape = jax.eval_shape(fn, key, image).shape
    if shape != image.shape:
      raise ValueError(
        f"ensemble members must keep the image shape: {call.name} maps "
        f"{image.shape} to {shape}."
      )


@core.register("one_of", gradient="bpda")
def one_of(
  key: types.PRNGKey,
  image: types.Image,
  *,
  members: str = "hsv_shift()|xyz_shift()|lab_shift()|yuv_shift()",
  switch: str = "auto",
) -> types.Image:
  """One of `members`, uniformly per image: a BaRT group (default: the
  colour-space group). Gradients are the chosen member's.

  Args:
    key: the choice key and the member's key.
    image: ``(H, W, C)`` float32 in [0, 1].
    members: a spec ``"a()|b(x=1)|..."``; members must keep the shape.
    switch: as `bart`.
  """
  fns = members_of(members)
  _check_shapes(members, fns, key, image)
  return core.random_branch(key, fns, image, mode=switch)
