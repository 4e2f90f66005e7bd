"""Audit a stochastic defense: the paper's lessons as a report.

`audit(...)` measures, on one model, defense and data set:

1. **accuracy**: clean and defended (vote of n draws), with intervals;
2. **randomness**: how much the defense moves the model (draws that change
   the prediction, the logits' spread across draws);
3. **adaptive vs transfer**: PGD on the undefended model judged through
   the defense, against PGD x EOT through it;
4. **EOT needed?**: PGD without EOT (eps/4 and smaller steps) against
   PGD x EOT at equal budgets, exact paired tests;
5. **where robustness comes from**: the same PGD on the undefended model;
6. **sanity checks** (Carlini et al. 2019): success rises with eps to
   ~100 %, an unbounded attack succeeds, more steps never lose, transfer
   does not beat white-box, BPDA does not beat the defense's gradients;
7. **cost**: input gradients and forward passes spent, wall time, devices.

Each section carries its numbers and a verdict. ``stochjax audit
--workdir=W`` (`stochjax.audit.run`) runs it from a config and writes
``W/audit.json``, ``W/audit.md`` and plots.
"""

import time

import jax

from stochjax import evaluate
from stochjax.audit import sections
from stochjax.audit.sections import Setting


def _cost(cells: dict, seconds: float) -> dict:
  """Gradients and forward passes the finished evaluations spent."""
  grads = forwards = 0
  for cell in cells.values():
    if not isinstance(cell, dict) or "attack" not in cell:
      continue  # Not an evaluation (accuracy, randomness).
    ev = evaluate.Evaluation.from_json(cell)
    cost = ev.attack.cost  # Per attacked (retained) example.
    grads += cost.grad_evals * ev.num_retained
    forwards += (cost.forward_evals * ev.num_retained
                 + ev.vote_forward_evals_per_sample * ev.num_samples)  # fmt: skip
  return {"grad_evals": int(grads), "forward_evals": int(forwards),
          "wall_seconds": seconds,
          "devices": [str(d) for d in jax.devices()]}  # fmt: skip


def audit(setting: Setting, *, steps: int = 20, eot_samples: int = 10,
          budgets=(20,), small_fraction: float = 0.025,
          step_fractions=(0.25, 0.5), num_draws: int = 20,
          eps_scales=(0.5, 1.0, 2.0, 4.0, 8.0),
          blackbox_queries: int = 1000) -> dict:  # fmt: skip
  """Runs every section on `setting` (resuming through ``setting.cell``).

  Args:
    setting: the model, defense, data, threat and evaluation settings.
    steps, eot_samples: the adaptive attack, PGD-steps x EOT-eot_samples at
      step eps/4.
    budgets: k x m budgets at which EOT is compared with no EOT (each a
      multiple of `eot_samples`).
    small_fraction: the smaller no-EOT step, as a fraction of eps (the
      paper's ablations: eps/40).
    step_fractions: the steps (fractions of eps) both sides of "EOT
      needed?" choose from on the calibration images.
    num_draws: defense draws per image for the randomness measures.
    eps_scales: multiples of eps for the success-vs-eps check.
    blackbox_queries: Square's forward passes per image (EOT-Square's
      `eot_samples` draws per query at a m-th of the queries); 0 skips the
      black-box section.

  Returns:
    ``{"accuracy", "randomness", "adaptive_vs_transfer", "eot_needed",
    "robustness_source", "blackbox", "sanity", "cost", "settings"}``, each
    section a dict with a ``verdict`` ("blackbox" only with queries).

  Raises:
    ValueError: a budget (or `blackbox_queries`) that is not a multiple of
      `eot_samples`, or bad inputs.
  """
  bad = [b for b in (*budgets, *([blackbox_queries] if blackbox_queries
                                  else [])) if b % eot_samples or b < eot_samples]  # fmt: skip
  if bad:
    raise ValueError(
      f"budgets {bad} must be positive multiples of eot_samples={eot_samples}."
    )
  started = time.time()
  s = setting
  for name, section in (
    ("accuracy", lambda: sections.accuracy(s)),
    ("randomness", lambda: sections.randomness(s, num_draws)),
  ):
    s.cached(name, section)
  transfer = sections.adaptive_vs_transfer(s, steps, eot_samples)
  report = {
    "accuracy": s.done["accuracy"],
    "randomness": s.done["randomness"],
    "adaptive_vs_transfer": transfer,
    "eot_needed": sections.eot_needed(
      s, budgets, eot_samples, small_fraction, step_fractions
    ),
    "robustness_source": sections.robustness_source(s, steps, eot_samples),
  }
  black = None
  if blackbox_queries:
    black = sections.blackbox(
      s, blackbox_queries, eot_samples, steps, eot_samples
    )
    report["blackbox"] = black
  report["sanity"] = sections.sanity(
    s, steps, eot_samples, eps_scales, transfer, black
  )
  report["cost"] = _cost(s.done, time.time() - started)
  report["settings"] = {
    "eps": s.eps, "norm": s.norm, "num_votes": s.num_votes,
    "num_examples": int(len(s.labels)), "steps": steps,
    "eot_samples": eot_samples,
    "budgets": list(budgets), "small_fraction": small_fraction,
    "step_fractions": list(step_fractions),
    "num_calibration": int(len(s.calibration)),
    "num_draws": num_draws, "eps_scales": list(eps_scales),
    "blackbox_queries": blackbox_queries,
  }  # fmt: skip
  return report


def verdicts(report: dict) -> dict[str, str]:
  """Each section's verdict."""
  return {
    name: section["verdict"]
    for name, section in report.items()
    if isinstance(section, dict) and "verdict" in section
  }


__all__ = ["Setting", "audit", "sections", "verdicts"]
