r"""Fine-tuning on a defense's augmentation (paper Section 5, Figs. 3-4).

Default (CPU, scikit-learn digits):
  python -m experiments.finetune --config=configs/finetune.py \
      --workdir=runs/finetune
Any defense: ``--config.defense="gaussian_noise(sigma=0.25)"``.
Variants: ``:smoke`` (CI, seconds), ``:paper`` (ImageNette ResNet-34 from the
paper's converted clean checkpoint, 30 epochs, batch 256; needs the data, the
weights and a GPU).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.dataset = "digits"
  config.data_dir = ""
  # The augmentation: BaRT noise injection, the first member of Fig. 3.
  config.defense = "noise_injection()"
  config.num_eval = 360  # Held-out images for the per-epoch accuracies.
  config.pretrain_epochs = 10  # Clean training when no weights are given.
  # Data parallelism: 1 device, N devices, or 0 for all (of every host);
  # `distributed` calls jax.distributed.initialize() first (multi-host).
  config.num_devices = 1
  config.distributed = False

  config.model = ml_collections.ConfigDict()
  config.model.name = "ResNet8"
  config.model.stem = "cifar"
  config.model.weights = ""  # A folder written by `python -m stochjax.convert`.

  config.train = ml_collections.ConfigDict()
  config.train.epochs = 10
  config.train.batch_size = 64
  config.train.learning_rate = 1e-3
  config.train.weight_decay = 1e-2

  if arg == "smoke":
    config.num_eval = 64
    config.pretrain_epochs = 1
    config.model.name = "ResNetTiny"
    config.train.epochs = 2
    config.train.batch_size = 256
  elif arg == "paper":
    config.dataset = "imagenette"
    config.num_eval = 785
    config.model.name = "ResNet34"
    config.model.stem = "imagenet"
    config.model.weights = "weights/imagenette_clean"  # Converted; see README.
    config.train.epochs = 30
    config.train.batch_size = 256
  elif arg not in (None, "", "cpu"):
    raise ValueError(f"Unknown variant {arg!r}; valid: smoke, cpu, paper.")
  return config
