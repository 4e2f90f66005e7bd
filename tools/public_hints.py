"""Public functions and methods of attacks, defenses, voting, evaluate,
stats and prng that lack a parameter or return annotation.

    python tools/public_hints.py [-v]

Prints ``<hinted> of <total> fully hinted``; with ``-v`` also each function
missing a hint (its unannotated parameters, ``->?`` for the return).
"""

import importlib
import inspect
import pkgutil
import sys

PACKAGES = ("stochjax.attacks", "stochjax.defenses")
MODULES = ("stochjax.voting", "stochjax.evaluate", "stochjax.stats",
           "stochjax.prng")  # fmt: skip


def _modules() -> list[str]:
  names = []
  for package in PACKAGES:
    path = importlib.import_module(package).__path__
    names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(path)]
  return names + list(MODULES)


def _public(module) -> list[tuple[str, object]]:
  """``(name, function)`` of the module's own public functions and of its
  classes' public methods (and ``__call__``)."""
  out = []
  for name, value in vars(module).items():
    if name.startswith("_") or getattr(value, "__module__", "") != (
      module.__name__
    ):
      continue
    if inspect.isfunction(value):
      out.append((name, value))
    elif inspect.isclass(value):
      out += [
        (f"{name}.{m}", f)
        for m, f in vars(value).items()
        if inspect.isfunction(f) and (not m.startswith("_") or m == "__call__")
      ]
  return out


def _missing(fn) -> tuple[list[str], bool]:
  """The unannotated parameters of `fn`, and whether its return is."""
  signature = inspect.signature(fn)
  skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
  bare = [
    p.name
    for p in signature.parameters.values()
    if p.name not in ("self", "cls")
    and p.annotation is inspect.Parameter.empty
    and p.kind not in skip
  ]
  return bare, signature.return_annotation is inspect.Signature.empty


def main() -> None:
  total = missing = 0
  for name in _modules():
    for qualname, fn in _public(importlib.import_module(name)):
      total += 1
      bare, no_return = _missing(fn)
      if bare or no_return:
        missing += 1
        if "-v" in sys.argv[1:]:
          print(f"{name}.{qualname}: {bare}{' ->?' if no_return else ''}")
  print(f"{total - missing} of {total} fully hinted")


if __name__ == "__main__":
  main()
