r"""Fine-tuning on a defense's augmentation (paper Section 5, Figs. 3-4).

Default (CPU, scikit-learn digits):
  stochjax run finetune --config=finetune \
      --workdir=runs/finetune
Any defense: ``--config.defense="gaussian_noise(sigma=0.25)"``.
Variants: ``:smoke`` (CI, seconds), ``:paper`` (ImageNette ResNet-34 from the
paper's converted clean checkpoint, 30 epochs, batch 256; needs the data, the
weights and a GPU).
"""

import ml_collections

from stochjax.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = common.check_variant(arg)
  config = ml_collections.ConfigDict()
  common.run_settings(config)
  # The augmentation: BaRT noise injection, the first member of Fig. 3.
  config.defense = "noise_injection()"
  config.num_eval = 360  # Held-out images for the per-epoch accuracies.
  config.pretrain_epochs = 10  # Clean training when no weights are given.
  config.model = common.model(weights="")
  config.train = common.train()

  if variant == "smoke":
    config.num_eval = 64
    config.pretrain_epochs = 1
    common.smoke_model(config)
    config.train.epochs = 2
  elif variant == "paper":
    config.dataset = "imagenette"
    config.num_eval = 785
    common.imagenet_model(config, "ResNet34")
    config.model.weights = "weights/imagenette_clean"  # Converted; see README.
    config.train.epochs = 30
    config.train.batch_size = 256
  return config
