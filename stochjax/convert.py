"""``python -m stochjax.convert``: the PyTorch-checkpoint converter
(`stochjax.torch_io.cli`)."""

import sys

from stochjax.torch_io import cli

if __name__ == "__main__":
  sys.exit(cli.main())
