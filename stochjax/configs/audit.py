r"""Audit a stochastic defense (`stochjax.audit`): the paper's lessons as
one report.

  stochjax run audit --config=audit --workdir=runs/audit
  stochjax run audit --config=audit \
      --config.defense="gaussian_noise(sigma=0.25)" \
      --config.model.weights=weights/my_model --workdir=runs/audit_mine

The model: ``model.weights`` (a folder from ``python -m stochjax.convert``),
``model.factory`` (``module:function`` returning a logits_fn or
``(apply_fn, params)``), or else a ResNet trained here on ``model.train_on``
("" = clean). The defense: a spec string or ``module:function``.

Default (CPU): BaRT's noise injection on the clean ResNet-8 trained on the
digits, 200 test images, eps 2/255 (the main job's eps rule's answer for
this model) and 4/255, PGD-20 x EOT-10 as the adaptive attack, EOT
compared at budgets 20 and 100. ``:smoke``: seconds. ``:paper``: the
torchvision ResNet-50 on ImageNet's 1,000 images at 8/255.
"""

import ml_collections

from stochjax.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = common.check_variant(arg)
  config = ml_collections.ConfigDict()
  common.run_settings(config)
  config.defense = "noise_injection()"
  config.model = common.model()
  config.model.weights = ""
  config.model.factory = ""
  config.model.train_on = ""
  config.train = common.train()
  # 100 calibrate (the step choice of "EOT needed?"), 200 evaluate.
  config.num_examples = 300
  config.calibration_size = 100
  config.batch_size = 100
  config.num_votes = 20  # Draws per defended vote.
  config.num_draws = 20  # Draws per image for the randomness measures.
  config.threat = ml_collections.ConfigDict(
    dict(norm="linf", eps=(2 / 255, 4 / 255))
  )
  config.budget = ml_collections.ConfigDict(
    dict(
      steps=20,  # The adaptive attack: PGD-steps x EOT-eot_samples, step eps/4.
      eot_samples=10,
      budgets=(20, 100),  # k x m where EOT meets no-EOT PGD.
      small_fraction=0.025,  # The smaller no-EOT step: eps/40.
      # The steps (x eps) both sides choose from on calibration images.
      step_fractions=(0.25, 0.5),
      eps_scales=(0.5, 1.0, 2.0, 4.0, 8.0),  # Success against eps.
      # Square's forward passes per image (EOT-Square: eot_samples draws
      # per query at a m-th of the queries); 0 skips the black-box section.
      blackbox_queries=1000,
    )
  )
  if variant == "smoke":
    common.smoke_model(config)
    config.train.epochs = 1
    config.num_examples = config.batch_size = 16
    config.num_votes = config.num_draws = 3
    config.budget.update(dict(steps=2, eot_samples=2, budgets=(4,),
                              eps_scales=(1.0, 4.0), blackbox_queries=4))  # fmt: skip
  elif variant == "paper":
    config.dataset = "imagenet"
    config.data_dir = "data/imagenet"
    common.imagenet_model(config, "ResNet50")
    config.model.weights = "weights/resnet50_torchvision"
    config.num_examples = 1000
    config.calibration_size = 300
    config.batch_size = 128
    config.num_votes = 100
    config.threat.eps = (8 / 255,)
    config.budget.update(dict(steps=100, eot_samples=10, budgets=(100, 1000),
                              blackbox_queries=5000))  # fmt: skip
  return config
