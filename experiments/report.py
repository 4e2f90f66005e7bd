"""Gathers experiment workdirs into one markdown report with figures.

    python -m experiments.report --runs=runs --out=docs/results.md \
        --json=docs/results.json

Every sub-folder of --runs with a results.json becomes a section; their
comparisons (exact tests with verdicts) go to --json and lead the markdown,
beside the paper's numbers; the same comparison run with several seeds
(e.g. runs/eot_ablation_seed1) is checked for agreement.
"""

import os

from absl import app, flags

from stochjax.paper import report

_RUNS = flags.DEFINE_string("runs", "runs", "Folder of experiment workdirs.")
_OUT = flags.DEFINE_string("out", "docs/results.md", "The markdown file.")
_JSON = flags.DEFINE_string(
  "json", "docs/results.json", "The comparisons as JSON ('' for none)."
)
_ALLOW_DRY_RUN = flags.DEFINE_bool(
  "allow_dry_run",
  False,
  "Include dry runs (marked as such) instead of refusing them.",
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  workdirs = [
    os.path.join(_RUNS.value, name)
    for name in sorted(os.listdir(_RUNS.value))
    if os.path.isdir(os.path.join(_RUNS.value, name))
  ]
  report.write(
    workdirs, _OUT.value, _JSON.value or None,
    allow_dry_run=_ALLOW_DRY_RUN.value,
  )  # fmt: skip
  print(f"wrote {_OUT.value} ({len(workdirs)} workdirs)")


if __name__ == "__main__":
  app.run(main)
