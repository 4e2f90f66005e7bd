r"""Fig. 4: randomized smoothing sigma in {0.05, ..., 0.5}, before and after
fine-tuning on the defense's noise.

  stochjax run fig4 --config=fig4 --workdir=runs/fig4

The same protocol as Fig. 3 (`stochjax/configs/fig3.py`) with Gaussian noise,
clipped to [0, 1] as the paper's ImageNette runs. CPU default: sigma in
{0.1, 0.25, 0.5}, 2 fine-tuning epochs, PGD-20 at the eps rule's radius;
``:paper``: the ten sigmas, 70 epochs, APGD-200.

Paper (ImageNette, official_code.md §7.4), sigma = 0.05..0.5, untargeted
success on the clean model 99.1 ... 58.1 %, after fine-tuning 99.6 ...
75.7 %; benign accuracy 93.5 ... 14.9 % before, 95.9 ... 91.7 % after.

Default CPU variant: times in docs/results.md.
"""

from stochjax.configs import fig3


def get_config(arg: str | None = None):
  config = fig3.get_config(arg)
  config.experiment = "fig4"
  if arg == "paper":
    sigmas = tuple(round(0.05 * i, 2) for i in range(1, 11))
    config.train.epochs = 70
    config.eval_epochs = tuple(range(0, 71))
  elif arg == "smoke":
    sigmas = (0.25,)
  else:
    sigmas = (0.1, 0.25, 0.5)
    config.eval_epochs = (0, 1, 2)  # Cheap here: keep the by-epoch curve.
  config.defenses = {
    f"sigma_{round(100 * s):03d}": f"gaussian_noise(sigma={s})" for s in sigmas
  }
  config.labels = [f"sigma={s}" for s in sigmas]
  return config
