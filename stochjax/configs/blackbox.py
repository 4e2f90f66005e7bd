r"""The blog's black-box claim (docs/analysis_plan.md, amendment 7).

  stochjax run blackbox --config=blackbox --workdir=runs/blackbox_seed0

"Randomized defenses do make the attack harder in the black-box setting …
we cannot find evidence that stochastic pre-processing defenses work in
the white-box setting." Per defense entry, untargeted, at the entry's eps
by the rule: Square (score-based, one draw per query) on the undefended
network and under the defense, EOT-Square (m draws per query, a m-th of
the queries: equal forward passes) and PGD x EOT (white-box) under the
defense. Square keeps its points after each budget of the
`budgets` (forward passes per image; one scan, snapshots).

CPU default, in three parts of one experiment pooled per seed: noise
injection on the clean ResNet-8 (the default), ``:bart``, BaRT (six
members) on it, and ``:smoothing``, sigma = 0.25 and 0.5 on ResNet-8s
trained on their noise

  stochjax run blackbox --config=blackbox:bart \
      --workdir=runs/blackbox_bart_seed0
  stochjax run blackbox --config=blackbox:smoothing \
      --workdir=runs/blackbox_smoothing_seed0

(Seed 0 ran before BaRT had its own part: its first run holds noise
injection and BaRT, 3,862 s, half of it beside another job. EOT-Square
under BaRT is the costly arm: no batch of its points stops early, as
Square's do when one draw suffices.)

360 digits images, Square up to 1,000 forward passes (the blog's
"low-query" regime; the CPU cap). ``:paper``: ImageNet with the converted
ResNet-50s, all four defenses in one run, eps 8/255, up to 10,000
queries, 100 votes; GPU hours.
"""

import ml_collections

from stochjax import analysis
from stochjax.configs import common, eot_ablation, fig3

# The CPU default runs in parts of one experiment (plan amendment 7),
# pooled per seed: noise injection (the default), BaRT, and the smoothing
# models; each part's defenses.
PARTS = ("bart", "smoothing")
_PART_DEFENSES = {
  None: ("noise_injection",),
  "bart": ("bart",),
  "smoothing": ("smoothing_0_25", "smoothing_0_50"),
}
VARIANTS = ("smoke", None, "paper", *PARTS)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  part = arg if arg in PARTS else None
  variant = common.check_variant(None if part else arg)
  arg = None if part else arg
  config = eot_ablation.base(arg)
  config.experiment = "blackbox"
  smoothing = config.defenses.smoothing_0_50
  config.defenses.smoothing_0_25 = eot_ablation.defense(
    "gaussian_noise(sigma=0.25, clip=False)",
    eps=smoothing.eps,
    model="gaussian_noise(sigma=0.25, clip=False)",
    weights=smoothing.weights.replace("0.50", "0.25"),
  )
  members = list(fig3._STACK_DIGITS)
  if variant == "paper":
    members[1:4] = ["gaussian_blur()", "median()", "swirl()"]
  config.defenses.bart = eot_ablation.defense(
    fig3.bart_prefixes(members, len(members))[f"bart_k{len(members)}"],
    eps=config.defenses.noise_injection.eps,
    model="",
    weights=config.defenses.noise_injection.weights,
  )
  config.grid.targeted = (False,)
  config.blackbox = ml_collections.ConfigDict(
    dict(
      # Forward passes per image at which Square's points are kept; the
      # plan's primary budget is among them.
      budgets=(100, 300, analysis.BLOG_BUDGET),
      eot_samples=analysis.BLOG_EOT_SAMPLES,
      p_init=0.8,
      # The white-box arm: PGD-steps x EOT-eot_samples, its step chosen on
      # calibration images among the fractions of eps.
      whitebox=dict(steps=10, eot_samples=10, step_fractions=(0.25, 0.5)),
    )
  )
  if variant == "cpu":
    for name in list(config.defenses):
      if name not in _PART_DEFENSES[part]:
        del config.defenses[name]
  if variant == "smoke":
    del config.defenses["smoothing_0_25"]
    del config.defenses["bart"]
    config.blackbox.budgets = (4, 8)
    config.blackbox.eot_samples = 2
    config.blackbox.whitebox = dict(
      steps=2, eot_samples=2, step_fractions=(0.5,)
    )
  elif variant == "paper":
    config.blackbox.budgets = (100, 1000, 10000)
    config.attack.num_votes = 100
  return config
