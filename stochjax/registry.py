"""Named components built from spec strings with literal arguments.

A spec is a Python expression made only of calls with keyword literals,
optionally piped with ``|``::

    noise_injection() | rotation(max_degrees=90)
    gaussian_noise(sigma=0.25, clip=False)
    pgd(eps=0.03, step_size=0.004, num_steps=10)

Names are looked up in a `Registry`; a bare name without parentheses means
"all defaults". Nothing in a spec is executed: arguments go through
`ast.literal_eval`.
"""

import ast
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any


@dataclasses.dataclass(frozen=True)
class Entry:
  """A registered component.

  Attributes:
    name: the name used in specs.
    fn: the function (a defense, or an attack factory).
    info: free-form metadata, e.g. ``{"gradient": "bpda"}`` for defenses.
  """

  name: str
  fn: Callable[..., Any]
  info: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Call:
  """One parsed ``name(k=v, ...)`` term of a spec."""

  name: str
  kwargs: dict[str, Any]


class Registry:
  """A name -> function table with spec parsing.

  Example:
    >>> reg = Registry("toy")
    >>> @reg.register("double", gradient="exact")
    ... def double(x, *, times=2):
    ...   return x * times
    >>> reg.lookup("double(times=3)")(2)
    6
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, Entry] = {}

  def register(self, name: str, **info: Any) -> Callable[[Callable], Callable]:
    """Decorator registering `fn` under `name`; duplicate names are an error."""

    def decorate(fn: Callable) -> Callable:
      if name in self._entries:
        raise ValueError(f"{self.kind} {name!r} is already registered.")
      self._entries[name] = Entry(name, fn, dict(info))
      return fn

    return decorate

  def names(self) -> list[str]:
    return sorted(self._entries)

  def knows(self, name: str) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[Entry]:
    return iter(self._entries[n] for n in self.names())

  def entry(self, name: str) -> Entry:
    """The entry for `name`, or a ValueError listing the valid names."""
    if name not in self._entries:
      raise ValueError(
        f"Unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}."
      )
    return self._entries[name]

  def bind(self, call: Call, **extra: Any) -> Callable:
    """`functools.partial` of the entry with the call's keyword arguments.

    Raises:
      ValueError: unknown name, or an argument the function does not take.
    """
    fn = self.entry(call.name).fn
    kwargs = {**call.kwargs, **extra}
    params = inspect.signature(fn).parameters
    keyword_only = [p.name for p in params.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(kwargs) - set(keyword_only))
    if unknown:
      raise ValueError(
        f"{self.kind} {call.name!r} got unknown argument(s) {unknown}; "
        f"valid: {', '.join(keyword_only) or 'none'}."
      )
    _check_ranges(self.kind, call.name, self.entry(call.name).info, kwargs)
    return functools.partial(fn, **kwargs)

  def lookup(self, spec: str, **extra: Any) -> Callable:
    """Parses a single-term spec and returns the bound function.

    `extra` adds non-literal keyword arguments (e.g. a defense function).
    """
    calls = parse(spec)
    if len(calls) != 1:
      raise ValueError(
        f"Expected one {self.kind}, got a pipeline of {len(calls)}: {spec!r}."
      )
    return self.bind(calls[0], **extra)


def _check_ranges(kind: str, name: str, info: dict, kwargs: dict) -> None:
  """Checks arguments against the entry's declared ``ranges`` at lookup,
  not at first use: ``{arg: (low, high)}`` is inclusive, ``{arg: (low,
  high, "open")}`` excludes `low`.

  Raises:
    ValueError: a non-numeric or out-of-range value.
  """
  for arg, (low, high, *open_low) in info.get("ranges", {}).items():
    if arg not in kwargs:
      continue
    value = kwargs[arg]
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    above = numeric and (value > low if open_low else value >= low)
    if not (above and value <= high):
      interval = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
      raise ValueError(
        f"{kind} {name!r}: {arg} must lie in {interval}, got {value!r}."
      )


def _parse_term(node: ast.expr, spec: str) -> Call:
  if isinstance(node, ast.Name):
    return Call(node.id, {})
  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
    if node.args:
      raise ValueError(
        f"Arguments must be keywords (name=value) in {ast.unparse(node)!r}."
      )
    kwargs = {}
    for kw in node.keywords:
      if kw.arg is None:
        raise ValueError(f"'**' is not allowed in a spec: {spec!r}.")
      try:
        kwargs[kw.arg] = ast.literal_eval(kw.value)
      except ValueError:
        raise ValueError(
          f"Argument {kw.arg}={ast.unparse(kw.value)} in {spec!r} is not a "
          "literal (numbers, strings, booleans, None, tuples, lists)."
        ) from None
    return Call(node.func.id, kwargs)
  raise ValueError(
    f"Cannot parse {ast.unparse(node)!r} in spec {spec!r}; expected "
    "name(key=literal, ...) terms joined by '|'."
  )


def parse(spec: str) -> list[Call]:
  """Parses ``"a(k=1)|b"`` into ``[Call("a", {"k": 1}), Call("b", {})]``."""
  if not isinstance(spec, str) or not spec.strip():
    raise ValueError(f"A spec must be a non-empty string, got {spec!r}.")
  try:
    tree = ast.parse(spec.strip(), mode="eval").body
  except SyntaxError as e:
    raise ValueError(f"Spec {spec!r} is not valid syntax: {e.msg}.") from None
  terms: list[ast.expr] = []

  def flatten(node: ast.expr) -> None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
      flatten(node.left)
      flatten(node.right)
    else:
      terms.append(node)

  flatten(tree)
  return [_parse_term(t, spec) for t in terms]
