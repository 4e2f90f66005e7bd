"""Detectors beside a model: ``detector(keys (N,), logits_fn, images) ->
(N,) bool`` flags, True for an input judged adversarial.
`stochjax.evaluate.evaluate_attack` counts an example broken only when it
meets the attack's goal and is not flagged."""

from stochjax.detectors.odds import (
  OddsDetector,
  calibrate,
  load,
  logit_matching_loss,
  logit_shifts,
  noise_defense,
  save,
)

__all__ = [
  "OddsDetector",
  "calibrate",
  "load",
  "logit_matching_loss",
  "logit_shifts",
  "noise_defense",
  "save",
]
