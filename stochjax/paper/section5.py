"""The Section 5 experiment: closed forms beside a simulation, one figure.

For each eps, over a grid of sigma: the closed-form robust accuracy of the
four stages (`stochjax.theory`), a Monte-Carlo estimate of each (shared
theta for "defended" and "trained"; fresh draws per evaluation for the
finite-n votes), and a figure of robust accuracy against sigma.
"""

import functools
import time

import ml_collections

from stochjax import prng, progress, theory
from stochjax.harness import workdir as workdir_lib
from stochjax.paper import plots


def markdown(results: dict) -> str:
  head = ["eps", "sigma", *theory.STAGES]
  votes = [f"{n}-vote" for n in results["num_votes"]]
  lines = [
    "| " + " | ".join(head + votes) + " |",
    "|---" * (len(head) + len(votes)) + "|",
  ]
  for r in results["rows"]:
    cells = [
      f"{r['closed'][s]:.4f}"
      + (f" ({r['simulated'][s]:.4f})" if s in r["simulated"] else "")
      for s in theory.STAGES
    ]
    cells += [f"{r['vote'][str(n)]:.4f}" for n in results["num_votes"]]
    lines.append(f"| {r['eps']} | {r['sigma']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def _cell(config, key, eps: float, sigma: float) -> dict:
  """One (eps, sigma) cell: closed forms beside simulations."""
  simulated = {
    stage: theory.simulate(
      prng.stream(key, stage), stage, eps, sigma,
      num_samples=config.num_samples,
    )["robust"]
    for stage in ("undefended", "defended", "trained")
  }  # fmt: skip
  return {
    "eps": eps,
    "sigma": sigma,
    "closed": {s: theory.robust_accuracy(s, eps, sigma) for s in theory.STAGES},
    "clean": {s: theory.clean_accuracy(s, sigma) for s in theory.STAGES},
    "simulated": simulated,
    "vote": {
      str(n): theory.voted_accuracy(eps, sigma, n) for n in config.num_votes
    },
  }


def run(
  config: ml_collections.ConfigDict, workdir: workdir_lib.Workdir
) -> dict:
  """Computes every (eps, sigma) cell (resumable), writes results.json,
  table.md and section5.png."""
  key = prng.root(config.seed)
  start = time.time()
  grid = [(e, s) for e in config.eps for s in config.sigmas]
  rows = [
    workdir.cell(
      f"eps={eps}/sigma={sigma}",
      functools.partial(
        _cell, config, prng.stream(key, f"eps={eps}/sigma={sigma}"), eps, sigma
      ),
    )
    for eps, sigma in progress.bar(grid, desc="(eps, sigma)")
  ]
  results = {
    "rows": rows,
    "num_votes": list(config.num_votes),
    "num_samples": config.num_samples,
    "max_abs_simulation_error": max(
      abs(r["simulated"][s] - r["closed"][s])
      for r in rows
      for s in r["simulated"]
    ),
    "seconds": time.time() - start,
  }
  plots.section5(results, workdir.file("section5.png"))
  table = markdown(results)
  with open(workdir.file("table.md"), "w") as f:
    f.write(table)
  print(table)
  return results
