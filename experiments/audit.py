"""Audit a stochastic defense: accuracy, randomness, EOT, sanity checks.

    python -m experiments.audit --config=configs/audit.py --workdir=runs/audit

Writes audit.json, audit.md, success_vs_eps.png and randomness.png (and
what every experiment writes) into the workdir; see `stochjax.audit`.
"""

import stochjax  # noqa: F401  (safe XLA flags before JAX starts)
from stochjax import app
from stochjax.audit import run as audit_run
from stochjax.paper import dry_run

if __name__ == "__main__":
  app.run(dry_run.supporting(audit_run.run))
