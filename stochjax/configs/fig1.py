r"""Fig. 1: BaRT noise injection, success over PGD steps x EOT samples.

  stochjax run fig1 --config=fig1 --workdir=runs/fig1

One heatmap per goal (untargeted, targeted) and step size (eps/8, eps/4,
eps/2), plus the best step size per cell (the paper's panels c and f). The
CPU default attacks a ResNet-8 trained on the upsampled digits at the eps
rule's radius, 20 votes; ``:paper`` is ImageNet (torchvision's ResNet-50,
eps 8/255, steps up to 1,000, 500 votes; many GPU hours: the grid is 2
goals x 2 step sizes x 3 EOT rows of PGD-1000).

Paper: PGD-10 x EOT-10 and PGD-100 x EOT-1 both near 100 % (panel f).
Claim (i): at equal budget, no EOT is about as strong as EOT. Its targeted
PGD-100 x EOT-1 vs PGD-10 x EOT-10 is a primary comparison of claims (i)
and (ii) (docs/analysis_plan.md); the untargeted panels are secondary
(`eot_ablation` holds that primary comparison, over three seeds).

Default CPU variant: times in docs/results.md.
"""

from stochjax.configs import eot_ablation


def get_config(arg: str | None = None):
  config = eot_ablation.base(arg)
  config.experiment = "fig1"
  del config.defenses["smoothing_0_50"]
  config.grid.step_fractions = (0.125, 0.25, 0.5)
  config.grid.targeted = (False, True)
  if arg == "smoke":
    config.grid.step_fractions = (0.25, 0.5)
  elif arg == "paper":
    config.grid.step_fractions = (0.125, 0.5)
  return config
