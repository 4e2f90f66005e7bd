r"""The paper's Section 5 theory: Eqs. 4-8, simulated and plotted.

  stochjax run section5 --config=section5 \
      --workdir=runs/section5

Variants: ``:smoke`` (CI, seconds), default ``cpu`` (1M samples per cell,
about a minute), ``:paper`` (4M samples, the precision of official_code.md
§9's table; a few minutes on CPU, no accelerator needed).

Expected: the simulated stages match the closed forms to ~1e-3; at eps =
0.5 the defended classifier (Eq. 5) beats the trained-invariant one (Eq. 6),
which beats the undefended one (Eq. 4), for every sigma > 0; at eps = 0.25
and small sigma the ordering fails (official_code.md §9).
"""

import ml_collections

from stochjax.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = common.check_variant(arg)
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.dry_run = False  # See configs.common.run_settings.
  config.eps = (0.25, 0.5, 1.0)
  config.sigmas = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
  config.num_samples = 1_000_000
  config.num_votes = (1, 11, 101)  # Finite votes with fresh draws.
  if variant == "smoke":
    config.eps = (0.5,)
    config.sigmas = (0.0, 1.0)
    config.num_samples = 10_000
    config.num_votes = (1, 11)
  elif variant == "paper":
    config.num_samples = 4_000_000
  return config
