"""The Section 5 experiment: closed forms beside a simulation, one figure.

For each eps, over a grid of sigma: the closed-form robust accuracy of the
four stages (`stochjax.theory`), a Monte-Carlo estimate of each (shared
theta for "defended" and "trained"; fresh draws per evaluation for the
finite-n votes), and a figure of robust accuracy against sigma.
"""

import time

import jax
import matplotlib.pyplot as plt
import ml_collections
import tqdm

from stochjax import app, theory

_LABELS = {
  "undefended": "undefended F (Eq. 4)",
  "defended": "defended F_theta (Eq. 5)",
  "trained": "trained invariant F+ (Eq. 6)",
  "voted": "vote limit = invariant (Eqs. 7-8)",
}


def plot(results: dict, path: str) -> None:
  """Robust accuracy vs sigma: closed forms (lines), simulations (dots),
  finite-n votes (dashed), one panel per eps."""
  rows = results["rows"]
  epsilons = sorted({r["eps"] for r in rows})
  fig, axes = plt.subplots(
    1, len(epsilons), figsize=(5 * len(epsilons), 3.8), squeeze=False
  )
  for ax, eps in zip(axes[0], epsilons, strict=True):
    mine = [r for r in rows if r["eps"] == eps]
    sigmas = [r["sigma"] for r in mine]
    for i, stage in enumerate(theory.STAGES):
      color = f"C{i}"
      ax.plot(sigmas, [r["closed"][stage] for r in mine], color=color,
              label=_LABELS[stage])  # fmt: skip
      if stage != "voted":
        ax.plot(sigmas, [r["simulated"][stage] for r in mine], "o",
                color=color, markersize=3)  # fmt: skip
    for j, n in enumerate(results["num_votes"]):
      ax.plot(sigmas, [r["vote"][str(n)] for r in mine], "--",
              color=f"C{4 + j}", label=f"{n}-vote, fresh draws")  # fmt: skip
    ax.set_xlabel("sigma (std of the randomness)")
    ax.set_ylabel("robust accuracy")
    ax.set_title(f"eps = {eps}")
    ax.grid(alpha=0.3)
  axes[0][-1].legend(fontsize=7, loc="lower right")
  fig.suptitle("Section 5: lines closed form, dots Monte Carlo", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


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


def run(config: ml_collections.ConfigDict, workdir: app.Workdir) -> dict:
  """Computes every (eps, sigma) cell (resumable), writes results.json,
  table.md and section5.png."""
  key = jax.random.key(config.seed)
  cells = workdir.cells()
  start = time.time()
  grid = [(e, s) for e in config.eps for s in config.sigmas]
  for index, (eps, sigma) in enumerate(tqdm.tqdm(grid, desc="(eps, sigma)")):
    name = f"eps={eps}/sigma={sigma}"
    if name in cells:
      continue
    cell_key = jax.random.fold_in(key, index)
    simulated = {
      stage: theory.simulate(
        jax.random.fold_in(cell_key, i), stage, eps, sigma,
        num_samples=config.num_samples,
      )["robust"]
      for i, stage in enumerate(("undefended", "defended", "trained"))
    }  # fmt: skip
    cells[name] = {
      "eps": eps,
      "sigma": sigma,
      "closed": {
        s: theory.robust_accuracy(s, eps, sigma) for s in theory.STAGES
      },
      "clean": {s: theory.clean_accuracy(s, sigma) for s in theory.STAGES},
      "simulated": simulated,
      "vote": {
        str(n): theory.voted_accuracy(eps, sigma, n) for n in config.num_votes
      },
    }
    workdir.save_cell(name, cells[name])
  rows = [cells[f"eps={e}/sigma={s}"] for e, s in grid]
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
  plot(results, workdir.file("section5.png"))
  table = markdown(results)
  with open(workdir.file("table.md"), "w") as f:
    f.write(table)
  print(table)
  return results
