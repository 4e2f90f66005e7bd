"""Lists functions longer than a limit (default 100 lines, docstring included).

    python tools/long_functions.py stochjax [--limit 100]

Exits 1 when any is found, so it can guard a tree.
"""

import argparse
import ast
import pathlib
import sys


def long_functions(root: str, limit: int) -> list[tuple[str, str, int]]:
  """``(file, qualified name, lines)`` of every function over `limit`."""
  found = []
  for path in sorted(pathlib.Path(root).rglob("*.py")):
    tree = ast.parse(path.read_text(), filename=str(path))
    stack = [(tree, "")]
    while stack:
      node, prefix = stack.pop()
      for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
          name = f"{prefix}{child.name}"
          lines = child.end_lineno - child.lineno + 1
          if lines > limit:
            found.append((str(path), name, lines))
          stack.append((child, f"{name}."))
        elif isinstance(child, ast.ClassDef):
          stack.append((child, f"{prefix}{child.name}."))
  return found


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("root")
  parser.add_argument("--limit", type=int, default=100)
  args = parser.parse_args(argv)
  found = long_functions(args.root, args.limit)
  for path, name, lines in found:
    print(f"{path}: {name} ({lines} lines)")
  return 1 if found else 0


if __name__ == "__main__":
  sys.exit(main())
