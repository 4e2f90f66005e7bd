"""Gathers experiment workdirs into one markdown report with figures.

    python -m experiments.report --runs=runs --out=runs/report.md

Every sub-folder of --runs with a results.json becomes a section; folders
named after their experiment (table1, fig3, ...) get the paper's numbers
beside ours.
"""

import os

from absl import app, flags

from stochjax.paper import report

_RUNS = flags.DEFINE_string("runs", "runs", "Folder of experiment workdirs.")
_OUT = flags.DEFINE_string("out", "runs/report.md", "The markdown file.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  workdirs = [
    os.path.join(_RUNS.value, name)
    for name in sorted(os.listdir(_RUNS.value))
    if os.path.isdir(os.path.join(_RUNS.value, name))
  ]
  report.write(workdirs, _OUT.value)
  print(f"wrote {_OUT.value} ({len(workdirs)} workdirs)")


if __name__ == "__main__":
  app.run(main)
