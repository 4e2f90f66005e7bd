"""The book's Random Self-Ensemble against adversarial training, and the
blog's contrast (docs/analysis_plan.md, amendment 5; `configs/rse.py`).

The Section 4 grid (`stochjax.paper.section4`) over three entries: RSE
(a network with noise layers, trained with them), Madry et al.'s
adversarially trained network and BaRT's noise injection on the clean
network (`stochjax.paper.attacked` trains each), each attacked at one
fixed eps, every arm recorded for the verdicts
(`stochjax.harness.verdicts.book`). Beside them, RSE's invariance to its
own noise (`stochjax.voting.invariance`): the clean weights with RSE's
noise switched on (before training with it) against the RSE-trained
weights (after), on the evaluation images.
"""

import ml_collections
import numpy as np

from stochjax import models, prng, stats, voting
from stochjax.harness import experiment
from stochjax.harness import workdir as workdir_lib
from stochjax.models import stochastic
from stochjax.paper import section4


def _rse_entry(config) -> str | None:
  """The config's entry with noise layers; None in a part without one
  (``rse:reference``).

  Raises:
    ValueError: more than one.
  """
  names = [n for n, s in config.defenses.items() if any(s.get("noise", ()))]
  if len(names) > 1:
    raise ValueError(
      f"The rse experiment takes one entry with noise layers, got {names}."
    )
  return names[0] if names else None


def _invariance(config, work, train_key, eval_key, evaluation) -> dict:
  """Per evaluation image, the fraction of RSE's noise draws that keep the
  noiseless prediction: with the clean weights and with RSE's; their
  means with 95 % bootstrap intervals."""
  setting = config.defenses[_rse_entry(config)]
  noise = tuple(float(s) for s in setting.noise)
  train_set = experiment.dataset(config, "train")
  test_set = experiment.dataset(config, "test", arrays=True)
  images = test_set.images[np.asarray(evaluation, int)]
  out = {"num_draws": config.invariance_draws, "n": len(images)}
  for when, sigma in (("before", (0.0, 0.0)), ("after", noise)):
    # Resumes from the grid's own checkpoints: nothing trains twice.
    _, variables = experiment.trained_model(
      config, work, train_key, train_set, "", noise=sigma
    )
    noisy = stochastic.stochastic_classifier(
      models.get_model(
        config.model.name, num_classes=test_set.num_classes,
        stem=config.model.stem, noise=noise,
      ),
      variables,
    )  # fmt: skip
    per_image = np.asarray(
      voting.invariance(
        prng.stream(eval_key, "rse_invariance"), noisy, images,
        defense="identity()", num_draws=config.invariance_draws,
        chunk_size=config.vote_chunk_size,
      )
    )  # fmt: skip
    mean, low, high = stats.bootstrap_interval(per_image)
    out[when] = {"mean": mean, "ci": [low, high],
                 "per_image": per_image.tolist()}  # fmt: skip
  return out


def run(config: ml_collections.ConfigDict, work: workdir_lib.Workdir) -> dict:
  """The grid (resuming), then RSE's invariance before and after training
  (in the part holding RSE); returns the results.

  Raises:
    ValueError: more than one entry with noise layers.
  """
  has_rse = _rse_entry(config) is not None  # Before any training.
  results = section4.run(config, work)
  if not has_rse:
    return results
  train_key, eval_key = experiment.run_streams(config, ("train", "evaluation"))
  evaluation = results["split"]["evaluation_indices"]
  results["rse_invariance"] = work.cell(
    "rse_invariance",
    lambda: _invariance(config, work, train_key, eval_key, evaluation),
  )
  return results
