"""What one Section 4 grid row attacks: the model, the attack's EOT draws
and loss, and the detector, for every kind of randomized defense.

A defense entry of the config (`configs.eot_ablation.defense`) names a
pre-processing defense (``spec``), the model it protects (trained here on
``model``, or converted ``weights``), and optionally a defense that lives
elsewhere:

* ``activation``: SAP or k-WTA inside the network
  (`stochjax.models.activations`). A stochastic one (SAP) wraps the ReLU
  network's weights, as Dhillon et al. add SAP to a trained network; a
  deterministic one (k-WTA) is trained here with it.
* ``attack_spec``: the defense the attack's EOT draws from, when not the
  evaluated one (k-WTA, a deterministic network, is attacked through
  Gaussian noise of its inputs, as the paper's code estimates its
  gradient).
* ``noise``: Random Self-Ensemble's ``(init_sigma, inner_sigma)`` noise
  layers (Liu et al. 2018), trained here with them on; the model draws its
  own noise, the undefended control is the same weights without it.
* ``adversarial``: ``{num_steps, step_fraction}``: the network is trained
  here by Madry et al.'s adversarial training, PGD at the entry's (fixed)
  eps; a deterministic model, the reference the others are read against.
* ``detector``: Roth et al.'s odds-are-odd detector, calibrated on clean
  training images; the attack then matches clean logits under the
  detector's noise, and a flagged example is not broken.

The undefended control attacks the network without any of these (SAP's
base network; k-WTA's network without attack noise; the odds model
without its detector).
"""

import dataclasses
import os
from typing import Any

import numpy as np

from stochjax import attacks, defenses, detectors, models, prng
from stochjax.harness import experiment
from stochjax.models import activations, stochastic


@dataclasses.dataclass(frozen=True)
class Attacked:
  """One defense entry, built.

  Attributes:
    model: the logits_fn attacked and voted on (a `StochasticClassifier`
      for SAP).
    undefended: the same network without the defense's randomness.
    attack_defense, attack_spec: the defense of the attack's EOT draws (a
      spec that may say ``{eps}``, for the working radius), or neither for
      the evaluated one.
    loss: the attack's loss (a name or a callable).
    detector: flags ``(keys, logits_fn, images) -> (N,) bool``, or None.
  """

  model: Any
  undefended: Any
  attack_defense: Any = None
  attack_spec: str = ""
  loss: Any = "ce"
  detector: Any = None

  def defense_for_attack(self, eps: float):
    """The defense the attack's EOT draws from at radius `eps` (the
    ``attack_spec`` may say ``{eps}``), or None for the evaluated one."""
    if self.attack_spec:
      return defenses.lookup(self.attack_spec.format(eps=repr(float(eps))))
    return self.attack_defense


def _noise(setting) -> tuple[float, float]:
  return tuple(float(s) for s in setting.get("noise", (0.0, 0.0)))


def _adversarial(config, setting):
  """``(name, attack)`` of the entry's adversarial training (Madry et al.:
  untargeted PGD from a random start at the entry's eps), or None."""
  spec = setting.get("adversarial")
  if not spec:
    return None
  if config.eps_rule.use:
    raise ValueError(
      "Adversarial training needs its radius before training: set "
      "eps_rule.use=False and the entry's eps."
    )
  eps = float(setting.eps)
  name = (f"pgd{spec.num_steps}_eps{255 * eps:.4g}_step"
          f"{spec.step_fraction:g}eps")  # fmt: skip
  attack = attacks.make_pgd(
    eps=eps, step_size=spec.step_fraction * eps, num_steps=spec.num_steps,
    random_init=True,
  )  # fmt: skip
  return name, attack


def _network(config, work, train_key, setting, train_sets: dict):
  """``(module, variables)`` of the entry's network (ReLU for SAP; with
  its noise layers for Random Self-Ensemble)."""
  activation = setting.get("activation", "") or "relu"
  trained_with = "relu" if activations.is_stochastic(activation) else activation
  if setting.weights:
    module, variables = models.load(setting.weights)
    return module.clone(activation=trained_with), variables
  if "train" not in train_sets:
    train_sets["train"] = experiment.dataset(config, "train")
  return experiment.trained_model(
    config, work, train_key, train_sets["train"], setting.model, trained_with,
    noise=_noise(setting), adversarial=_adversarial(config, setting),
  )  # fmt: skip


def _detector(config, work, name, key, network, setting):
  """The entry's calibrated detector, on its first clean training images;
  saved in the workdir, so a resumed run reads it back."""
  path = work.file(f"detector_{name}")
  if os.path.isdir(path):
    return detectors.load(path)
  spec = setting.detector
  train_set = experiment.dataset(config, "train", arrays=True)
  n = spec.num_calibration
  labels = train_set.labels[:n] if spec.get("only_correct", True) else None
  detector = detectors.calibrate(
    key, network, train_set.images[:n], labels,
    fpr=spec.fpr, sigma=spec.sigma, num_noise=spec.num_noise,
    batch_size=config.batch_size,
  )  # fmt: skip
  detectors.save(detector, path)
  return detector


def build(config, work, train_key, detector_key) -> dict[str, Attacked]:
  """Every defense entry of `config`, networks shared by source (weights
  or training spec) and activation."""
  networks, train_sets, built = {}, {}, {}
  for setting in config.defenses.values():  # Refused before any training.
    _adversarial(config, setting)
  for name, setting in config.defenses.items():
    activation = setting.get("activation", "") or "relu"
    adversarial = setting.get("adversarial")
    source = (setting.weights or setting.model, activation, _noise(setting),
              None if not adversarial else (setting.eps, *adversarial.items()))  # fmt: skip
    if activations.is_stochastic(activation):
      source = (source[0], "relu", *source[2:])
    if source not in networks:
      networks[source] = _network(config, work, train_key, setting, train_sets)
    module, variables = networks[source]
    if any(_noise(setting)):  # Random Self-Ensemble: its noise is the defense.
      model = stochastic.stochastic_classifier(module, variables)
      network = models.classifier(model.base, variables)
    else:
      network = models.classifier(module, variables)
      model = network
    if activations.is_stochastic(activation):
      model = stochastic.stochastic_classifier(
        module.clone(activation=activation), variables
      )
    entry = Attacked(model, network)
    if setting.get("attack_spec"):
      entry = dataclasses.replace(entry, attack_spec=setting.attack_spec)
      entry.defense_for_attack(1 / 255)  # A bad spec fails here, not later.
    if setting.get("detector"):
      detector = _detector(
        config, work, name, prng.stream(detector_key, name), network, setting
      )
      entry = dataclasses.replace(
        entry,
        detector=detector,
        loss=detectors.logit_matching_loss(detector),
        attack_defense=detectors.noise_defense(detector),
      )
    built[name] = entry
  return built


def summary(built: dict[str, Attacked]) -> dict:
  """What results.json records of each entry's detector."""
  return {
    name: {
      "detector_threshold": float(np.asarray(entry.detector.threshold)),
      "detector_sigma": entry.detector.sigma,
      "detector_num_noise": entry.detector.num_noise,
    }
    for name, entry in built.items()
    if entry.detector is not None
  }
