"""Safe XLA:CPU settings, applied before JAX's backend starts.

jaxlib 0.10.x routes most CPU convolutions to YNNPACK fusions, and with them a
ResNet input gradient was measured wrong by 3.4e-2 (relative max-norm) while
the logits stayed right (see README, "Correct gradients on CPU"). Turning the
fusions off fixes the gradient and is faster. This module adds
``--xla_cpu_experimental_ynn_fusion_type=`` to ``XLA_FLAGS`` when stochjax is
imported, unless the user already chose a value for that flag.

XLA reads ``XLA_FLAGS`` once, when the first backend is created. If JAX has
already run a computation before ``import stochjax``, the flag can no longer
take effect; then stochjax warns and says how to fix it.
"""

import os
import warnings

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
SAFE_SETTING = f"{YNN_FLAG}="


def _user_chose_ynn(flags: str) -> bool:
  return any(f.split("=")[0] == YNN_FLAG for f in flags.split())


def configure() -> bool:
  """Adds the safe YNN setting to XLA_FLAGS if nobody set it.

  Returns:
    True if the safe setting is (or will be) in force for the CPU backend.
  """
  from jax._src import xla_bridge  # noqa: PLC0415  (private, but stable)

  flags = os.environ.get("XLA_FLAGS", "")
  if _user_chose_ynn(flags):
    return SAFE_SETTING in flags.split()
  if xla_bridge.backends_are_initialized():
    warnings.warn(
      "JAX's backend started before stochjax was imported, so XLA:CPU may use"
      " YNNPACK fusions, which gave wrong input gradients on jaxlib 0.10. "
      f"Import stochjax first, or export XLA_FLAGS='{SAFE_SETTING}' before "
      "starting Python.",
      RuntimeWarning,
      stacklevel=3,
    )
    return False
  os.environ["XLA_FLAGS"] = f"{SAFE_SETTING} {flags}".strip()
  return True
