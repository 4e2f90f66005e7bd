"""The harness: what runs experiments, above the library.

The library (`stochjax.attacks`, `defenses`, `evaluate`, `models`, `data`,
`train`, `stats`, ...) is functions and values a user calls from their own
code; nothing in it imports this package. The harness turns configs into
runs: flags and ``main`` (`app`, `cli`: the ``stochjax`` command), run keys,
meshes and trained models (`experiment`), the workdir with its lock and
resumable cells (`workdir`), dry runs (`dry_run`), the bill of a run
(`plan`), grid axes (`grid`) and the markdown report (`report`). The
paper's drivers (`stochjax.paper`) and the audit's (`stochjax.audit.run`)
are peers above it; the shipped configs are `stochjax.configs`.
"""
