"""The ``stochjax`` command (and ``stochjax-audit``): every job of an
installed stochjax, from any directory.

    stochjax run EXPERIMENT [--config=NAME[:variant] | --config=FILE.py]
        --workdir=DIR [--config.FIELD=VALUE ...]
    stochjax audit --config=audit:smoke --workdir=DIR
        [--config.defense=mymodule:my_defense --config.model.factory=...]
    stochjax convert CHECKPOINT OUT_DIR --arch ResNet50 --source torchvision
    stochjax report --runs=runs --out=docs/results.md --json=docs/results.json
        [--archive=docs/runs] [--readme=README.md]
    stochjax plan
    stochjax configs

``stochjax COMMAND --help`` lists a command's flags. EXPERIMENT's default
config is the shipped one of the same name (its CPU variant). A user's own
``module:function`` (a defense, a model factory) is imported with the
current directory on the path (after the installed packages).
"""

import os
import sys
from collections.abc import Sequence

# experiment -> (driver module, its default shipped config).
EXPERIMENTS = {
  "eot_ablation": ("stochjax.paper.section4", "eot_ablation"),
  "table1": ("stochjax.paper.section4", "table1"),
  "table2": ("stochjax.paper.section4", "table2"),
  "fig1": ("stochjax.paper.section4", "fig1"),
  "fig2": ("stochjax.paper.section4", "fig2"),
  "fig3": ("stochjax.paper.figs3_4", "fig3"),
  "fig4": ("stochjax.paper.figs3_4", "fig4"),
  "eps_sensitivity": ("stochjax.paper.eps_sensitivity", "eps_sensitivity"),
  "rse": ("stochjax.paper.rse", "rse"),
  "blackbox": ("stochjax.paper.blackbox", "blackbox"),
  "finetune": ("stochjax.paper.finetune", "finetune"),
  "section5": ("stochjax.paper.section5", "section5"),
  "audit": ("stochjax.audit.run", "audit"),
}

USAGE = __doc__.split("\n\n")[1]


def _run_experiment(name: str, argv: Sequence[str]) -> None:
  import importlib  # noqa: PLC0415  (only the chosen driver is imported)

  from stochjax.harness import app, dry_run  # noqa: PLC0415

  module, config = EXPERIMENTS[name]
  driver = importlib.import_module(module)
  app.run(dry_run.supporting(driver.run), argv, default_config=config)


def _report(argv: Sequence[str]) -> None:
  from absl import app, flags  # noqa: PLC0415

  from stochjax.harness import app as app_lib  # noqa: PLC0415
  from stochjax.harness import report, verdicts  # noqa: PLC0415
  from stochjax.harness import workdir as workdir_lib  # noqa: PLC0415

  if "runs" not in flags.FLAGS:  # Defined once per process.
    flags.DEFINE_string("runs", "runs", "Folder of experiment workdirs.")
    flags.DEFINE_string("out", "docs/results.md", "The markdown file.")
    flags.DEFINE_string(
      "json", "docs/results.json", "The comparisons as JSON ('' for none)."
    )
    flags.DEFINE_string(
      "readme",
      "",
      "A README whose generated verdict summary (between "
      "its 'verdicts' markers) to rewrite ('' for none).",
    )
    flags.DEFINE_string(
      "archive",
      "",
      "A folder (docs/runs) that keeps each finished run's results.json and "
      "config.json: the runs are copied there first and the report covers "
      "every run archived so far ('' for the runs alone).",
    )
    flags.DEFINE_bool(
      "allow_dry_run",
      False,
      "Include dry runs (marked as such) instead of refusing them.",
    )
  if flags.FLAGS.is_parsed():
    flags.FLAGS.unparse_flags()
  runs, out, json_out, allow, readme, kept = (
    flags.FLAGS[name]
    for name in ("runs", "out", "json", "allow_dry_run", "readme", "archive")
  )

  if app_lib.print_help(argv, __name__):
    return

  def main(args):
    if len(args) > 1:
      raise app.UsageError(f"Unexpected arguments: {args[1:]}")
    workdirs = [
      os.path.join(runs.value, name)
      for name in sorted(os.listdir(runs.value))
      if os.path.isdir(os.path.join(runs.value, name))
    ] if os.path.isdir(runs.value) else []  # fmt: skip
    try:
      if kept.value:
        os.makedirs(kept.value, exist_ok=True)
        workdirs = report.archive(workdirs, kept.value)
      report.write(
        workdirs, out.value, json_out.value or None, allow_dry_run=allow.value,
        readme=readme.value or None,
      )  # fmt: skip
    except (workdir_lib.CorruptFileError, verdicts.PlanMismatchError) as e:
      raise SystemExit(f"FATAL: {e}") from None
    print(f"wrote {out.value} ({len(workdirs)} workdirs)")

  app.run(main, argv=argv)


def _plan(argv: Sequence[str]) -> None:
  from absl import app  # noqa: PLC0415

  from stochjax.harness import plan  # noqa: PLC0415

  def main(args):
    if len(args) > 1:
      raise app.UsageError(f"Unexpected arguments: {args[1:]}")
    print(plan.table())

  app.run(main, argv=argv)


def main(argv: Sequence[str] | None = None) -> int:
  """``stochjax COMMAND ...`` (see the module docstring)."""
  argv = list(sys.argv if argv is None else argv)
  command, rest = (argv[1], argv[2:]) if len(argv) > 1 else ("--help", [])
  if command in ("-h", "--help", "help"):
    print(USAGE)
    print("\nExperiments: " + ", ".join(EXPERIMENTS))
    return 0
  # A user's module:function resolves from the current directory (after the
  # installed packages, so a user's file cannot shadow one of them).
  if os.getcwd() not in sys.path and "" not in sys.path:
    sys.path.append(os.getcwd())
  if command == "run":
    if not rest or rest[0].startswith("-"):
      print("usage: stochjax run EXPERIMENT [flags]; experiments: "
            + ", ".join(EXPERIMENTS), file=sys.stderr)  # fmt: skip
      return 2
    if rest[0] not in EXPERIMENTS:
      print(f"stochjax run: unknown experiment {rest[0]!r}; one of "
            + ", ".join(EXPERIMENTS), file=sys.stderr)  # fmt: skip
      return 2
    _run_experiment(rest[0], [f"stochjax run {rest[0]}", *rest[1:]])
  elif command == "audit":
    _run_experiment("audit", ["stochjax audit", *rest])
  elif command == "convert":
    from stochjax.torch_io import cli  # noqa: PLC0415

    return cli.main(rest, prog="stochjax convert")
  elif command == "report":
    _report(["stochjax report", *rest])
  elif command == "plan":
    _plan(["stochjax plan", *rest])
  elif command == "configs":
    from stochjax.harness import app  # noqa: PLC0415

    print("\n".join(app.shipped_configs()))
  else:
    print(f"stochjax: unknown command {command!r}.\n\n{USAGE}", file=sys.stderr)
    return 2
  return 0


def audit_main() -> int:
  """``stochjax-audit ...`` = ``stochjax audit ...``."""
  return main(["stochjax", "audit", *sys.argv[1:]])
