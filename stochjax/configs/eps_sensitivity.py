r"""ε sensitivity of claims (i) and (ii) (docs/analysis_plan.md section 8,
secondary): their primary comparisons at fixed radii.

  stochjax run eps_sensitivity --config=eps_sensitivity \
      --workdir=runs/eps_sensitivity_seed0
  stochjax run eps_sensitivity --config=eps_sensitivity:targeted \
      --workdir=runs/eps_sensitivity_targeted_seed0
  (and :smoothing_0_25, :smoothing_0_50)

PGD-100 x EOT-1 against PGD-10 x EOT-10 at steps eps/8, eps/4, eps/2 and
every radius, instead of the eps rule's; the verdicts choose each side's
step on the calibration images at each eps and plot EOT - no EOT against
eps; saturated points (both sides' calibration rates <= 5 % or >= 95 %)
are marked, never decided. Each defense attacks a model trained here as
`fig1` / `fig2` train theirs (the clean one for noise injection, one per
sigma on its own noise).

The CPU default runs in four parts of one experiment (each within 30
minutes on 2 cores; the verdicts pool the parts of a seed, amendment 6):
noise injection untargeted (the default: the main job's primary) and
targeted (``:targeted``: fig1's and claim (ii)'s) at 1, 2, 4, 8 /255;
sigma = 0.25 and 0.5 smoothing, targeted (claim (ii)), at 4, 8, 16, 32
/255 (``:smoothing_0_25``, ``:smoothing_0_50``: their eps rule put them at
32/255; at 1 and 2/255 undefended PGD succeeded on <= 3 % of their
calibration images, so both sides would be saturated). ``:paper``: every
defense and goal at 1, 2, 4, 8 /255 on ImageNet with the converted
weights, 500 votes.
"""

from stochjax.configs import common, eot_ablation, fig2

# The CPU default's parts (one experiment; see the docstring).
PARTS = ("targeted", "smoothing_0_25", "smoothing_0_50")
VARIANTS = ("smoke", None, "paper", *PARTS)


def get_config(arg: str | None = None):
  part = arg if arg in PARTS else None
  variant = common.check_variant(None if part else arg)
  config = eot_ablation.base(None if part else arg)
  config.experiment = "eps_sensitivity"
  if variant != "smoke":
    config.defenses.smoothing_0_25 = fig2.get_config(
      None if part else arg
    ).defenses.smoothing_0_25
  for name in config.defenses:
    if name.startswith("smoothing"):  # Claim (ii) is targeted only.
      config.defenses[name].grid = dict(targeted=(True,))
  config.grid.targeted = (False, True)
  # The plan's primary pair: PGD-100 x EOT-1 vs PGD-10 x EOT-10.
  config.grid.steps = (10, 100)
  config.grid.eot_samples = (1, 10)
  config.grid.max_budget = 100
  config.grid.step_fractions = (0.125, 0.25, 0.5)
  config.eps_values = tuple(e / 255 for e in (1, 2, 4, 8))
  # The radii are fixed: no eps rule.
  config.eps_rule.use = False
  if variant == "cpu":  # In parts, each within 30 minutes.
    keep = {None: "noise_injection", "targeted": "noise_injection"}.get(
      part, part
    )
    for name in list(config.defenses):
      if name != keep:
        del config.defenses[name]
    if keep == "noise_injection":
      config.grid.targeted = (part == "targeted",)
    else:
      config.defenses[keep].eps_values = tuple(e / 255 for e in (4, 8, 16, 32))
  if variant == "smoke":
    del config.defenses["smoothing_0_50"]
    # The pair PGD-2 x EOT-1 vs PGD-1 x EOT-2.
    config.grid.steps = (1, 2)
    config.grid.eot_samples = (1, 2)
    config.grid.max_budget = 2
    config.grid.step_fractions = (0.5,)
    config.eps_values = (2 / 255, 8 / 255)
  return config
