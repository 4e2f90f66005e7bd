"""A 2-D convolution whose input gradient stays fast inside XLA:CPU loops.

Inside a rolled `lax.scan`/`while`, XLA:CPU runs the convolution that JAX's
transpose rule emits for the input gradient (kernel features swapped through
dimension numbers, ``b01f_01oi`` plus a reverse) on a slow path: a PGD step
became 2.6-3x slower than unrolled. Writing the input gradient as an ordinary
forward convolution with an explicitly flipped, in/out-swapped kernel keeps
the fast layout inside the loop and gives the same numbers.

`conv_general_dilated` has `jax.lax.conv_general_dilated`'s signature and can
be passed to Flax: ``nn.Conv(..., conv_general_dilated=conv_general_dilated)``.
It takes the explicit path on CPU for NHWC/HWIO, undilated, ungrouped 2-D
convolutions, and defers to `jax.lax.conv_general_dilated` otherwise.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = lax.ConvDimensionNumbers(
  lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2)
)


def _conv(lhs, rhs, strides, padding, precision, lhs_dilation=None):
  return lax.conv_general_dilated(
    lhs,
    rhs,
    strides,
    padding,
    lhs_dilation=lhs_dilation,
    dimension_numbers=_NHWC,
    precision=precision,
  )


def input_gradient_padding(
  in_size: int, out_size: int, kernel: int, stride: int, pad: tuple[int, int]
) -> tuple[int, int]:
  """Padding of the forward conv that computes a strided conv's input grad.

  The cotangent, dilated by `stride`, has ``(out_size - 1) * stride + 1``
  entries; padding it by the returned pair and correlating with the flipped
  kernel gives exactly `in_size` outputs.
  """
  before = kernel - 1 - pad[0]
  after = in_size + kernel - 1 - ((out_size - 1) * stride + 1) - before
  return before, after


def _loop_invariant(kernel):
  """`kernel` unchanged, computed once before an attack's loop.

  XLA's loop-invariant code motion does not hoist a reverse or transpose on
  its own (they count as cheap), so the flipped kernel was recomputed every
  step: a strided copy of every kernel, 45 % of a batch-2 ResNet-18 PGD
  step on XLA:CPU. A reduce-precision to the dtype's own widths is the
  identity, but it is an op worth hoisting, and the reverse and transpose
  move out of the loop with it.
  """
  info = jnp.finfo(kernel.dtype)
  return lax.reduce_precision(
    kernel, exponent_bits=info.nexp, mantissa_bits=info.nmant
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def explicit_vjp_conv(lhs, rhs, strides, padding, precision):
  """NHWC x HWIO conv with an explicit-kernel input gradient.

  Args:
    lhs: ``(N, H, W, Cin)`` input.
    rhs: ``(KH, KW, Cin, Cout)`` kernel.
    strides: ``(sh, sw)``.
    padding: ``((lo_h, hi_h), (lo_w, hi_w))``.
    precision: a `jax.lax.Precision` or None.

  Returns:
    ``(N, OH, OW, Cout)``.
  """
  return _conv(lhs, rhs, strides, padding, precision)


def _explicit_vjp_conv_fwd(lhs, rhs, strides, padding, precision):
  return _conv(lhs, rhs, strides, padding, precision), (lhs, rhs)


def _explicit_vjp_conv_bwd(strides, padding, precision, residuals, g):
  lhs, rhs = residuals
  pads = tuple(
    input_gradient_padding(lhs.shape[1 + i], g.shape[1 + i], k, s, p)
    for i, (k, s, p) in enumerate(
      zip(rhs.shape[:2], strides, padding, strict=True)
    )
  )
  # (KH, KW, Cout, Cin), made once before a loop that holds this step.
  flipped = _loop_invariant(rhs[::-1, ::-1].transpose(0, 1, 3, 2))
  d_lhs = _conv(g, flipped, (1, 1), pads, precision, lhs_dilation=strides)
  _, kernel_vjp = jax.vjp(
    lambda w: _conv(lhs, w, strides, padding, precision), rhs
  )
  (d_rhs,) = kernel_vjp(g)
  return d_lhs, d_rhs


explicit_vjp_conv.defvjp(_explicit_vjp_conv_fwd, _explicit_vjp_conv_bwd)


def _is_nhwc(dimension_numbers) -> bool:
  if dimension_numbers is None:
    return False
  if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
    return dimension_numbers == _NHWC
  return tuple(dimension_numbers) == ("NHWC", "HWIO", "NHWC")


def _trivial(dilation: Sequence[int] | None) -> bool:
  return dilation is None or all(d == 1 for d in dilation)


def explicit_conv(
  lhs,
  rhs,
  window_strides,
  padding,
  lhs_dilation=None,
  rhs_dilation=None,
  dimension_numbers=None,
  feature_group_count=1,
  batch_group_count=1,
  precision=None,
  preferred_element_type=None,
  *,
  backends=("cpu",),
):
  """Like `conv_general_dilated`, choosing the explicit path on `backends`."""
  explicit = (
    jax.default_backend() in backends
    and lhs.ndim == 4
    and _is_nhwc(dimension_numbers)
    and _trivial(lhs_dilation)
    and _trivial(rhs_dilation)
    and feature_group_count == 1
    and batch_group_count == 1
    and preferred_element_type is None
  )
  if not explicit:
    return lax.conv_general_dilated(
      lhs,
      rhs,
      window_strides,
      padding,
      lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      batch_group_count=batch_group_count,
      precision=precision,
      preferred_element_type=preferred_element_type,
    )
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(
      lhs.shape[1:3], rhs.shape[:2], window_strides, padding
    )
  padding = tuple(tuple(int(p) for p in pair) for pair in padding)
  return explicit_vjp_conv(
    lhs, rhs, tuple(int(s) for s in window_strides), padding, precision
  )


# Drop-in for `jax.lax.conv_general_dilated`, with fast input grads on CPU.
conv_general_dilated = explicit_conv
