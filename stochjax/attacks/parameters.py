"""The parameter checks every attack factory shares."""

from stochjax import types, validation
from stochjax.attacks import eot as eot_lib
from stochjax.attacks import losses, norms
from stochjax.defenses import core as defense_core


def check_chunk(name: str, chunk: int | None, total_name: str,
                total: int) -> int:  # fmt: skip
  """`chunk` (all `total` at once when None), checked to divide `total`.

  Raises:
    ValueError: a non-positive chunk, or one that does not divide `total`.
  """
  chunk = total if chunk is None else chunk
  validation.positive(name, chunk, integer=True)
  if total % chunk:
    raise ValueError(f"{name}={chunk} must divide {total_name}={total}.")
  return chunk


def check_parameters(
  *,
  eps: float,
  num_steps: int,
  restarts: int,
  norm: str,
  eot_mode: str,
  loss: str | types.LossFn,
  targeted: bool,
  eot_samples: int,
  eot_chunk_size: int | None,
  defense: types.Defense | str | None,
) -> tuple:
  """Validates what every attack factory takes.

  Returns:
    The `eot_lib.make_eot` keyword arguments but `logits_fn`, as a tuple of
    items (hashable): the defense (identity for None), the loss in its
    targeted form if asked, and the EOT chunk size (all draws at once by
    default).

  Raises:
    ValueError: a value out of range, an unknown norm, loss or EOT mode, or a
      chunk size that does not divide `eot_samples`.
  """
  validation.positive("eps", eps)
  if norm == "linf" and eps > 1:
    raise ValueError(
      f"eps={eps!r} exceeds 1, the whole [0, 1] pixel range; eps is in "
      f"[0, 1] pixel units: did you mean {eps!r}/255 = {eps / 255:.4g}?"
    )
  validation.positive("num_steps", num_steps, integer=True)
  validation.positive("restarts", restarts, integer=True)
  validation.one_of("norm", norm, norms.NORMS)
  validation.one_of("eot_mode", eot_mode, eot_lib.MODES)
  loss_fn = losses.get_loss(loss, targeted)
  validation.positive("eot_samples", eot_samples, integer=True)
  chunk = check_chunk("eot_chunk_size", eot_chunk_size, "eot_samples",
                      eot_samples)  # fmt: skip
  eot = dict(
    defense=defense_core.resolve(defense),
    loss_fn=loss_fn,
    targeted=targeted,
    eot_samples=eot_samples,
    chunk_size=chunk,
    mode=eot_mode,
  )
  return tuple(eot.items())
