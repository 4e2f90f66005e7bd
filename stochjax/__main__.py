"""``python -m stochjax`` = the ``stochjax`` command
(`stochjax.harness.cli`)."""

import sys

from stochjax.harness import cli

if __name__ == "__main__":
  sys.exit(cli.main())
