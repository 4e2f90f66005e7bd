r"""ε sensitivity of claims (i) and (ii) (docs/analysis_plan.md section 8,
secondary): their primary comparisons at fixed radii.

  stochjax run eps_sensitivity --config=eps_sensitivity \
      --workdir=runs/eps_sensitivity_seed0

Noise injection (untargeted: the main job's primary; targeted: fig1's and
claim (ii)'s) and sigma = 0.25 and 0.5 smoothing (targeted: claim (ii)),
each attacking a model trained here as `fig1` / `fig2` train theirs (the
clean one for noise injection, one per sigma on its own noise), PGD-100 x EOT-1 against PGD-10 x EOT-10 at
steps eps/8, eps/4, eps/2 and every eps in ``eps_values`` (1, 2, 4, 8 /
255; a defense's own ``eps_values`` replace them: 16 and 32 /255 too for
smoothing, whose models the eps rule put at 32/255) instead of the eps
rule's. The verdicts choose each side's step on
the calibration images at each eps and plot EOT - no EOT against eps;
saturated points (both sides' calibration rates <= 5 % or >= 95 %) are
marked, never decided. ``:paper``: the same on ImageNet with the converted
weights, 500 votes.

Default CPU variant: times in docs/results.md.
"""

from stochjax.configs import common, eot_ablation, fig2


def get_config(arg: str | None = None):
  variant = common.check_variant(arg)
  config = eot_ablation.base(arg)
  config.experiment = "eps_sensitivity"
  if variant != "smoke":
    config.defenses.smoothing_0_25 = fig2.get_config(
      arg
    ).defenses.smoothing_0_25
  for name in config.defenses:
    if name.startswith("smoothing"):  # Claim (ii) is targeted only.
      config.defenses[name].grid = dict(targeted=(True,))
      # The eps rule put both smoothing models at 32/255 (fig2): their
      # sweep reaches it.
      if variant != "smoke":
        config.defenses[name].eps_values = tuple(
          e / 255 for e in (1, 2, 4, 8, 16, 32)
        )
  config.grid.targeted = (False, True)
  # The plan's primary pair: PGD-100 x EOT-1 vs PGD-10 x EOT-10.
  config.grid.steps = (10, 100)
  config.grid.eot_samples = (1, 10)
  config.grid.max_budget = 100
  config.grid.step_fractions = (0.125, 0.25, 0.5)
  config.eps_values = tuple(e / 255 for e in (1, 2, 4, 8))
  # The radii are fixed: no eps rule.
  config.eps_rule.use = False
  if variant == "smoke":
    del config.defenses["smoothing_0_50"]
    # The pair PGD-2 x EOT-1 vs PGD-1 x EOT-2.
    config.grid.steps = (1, 2)
    config.grid.eot_samples = (1, 2)
    config.grid.max_budget = 2
    config.grid.step_fractions = (0.5,)
    config.eps_values = (2 / 255, 8 / 255)
  return config
