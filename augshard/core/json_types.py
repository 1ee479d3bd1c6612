"""The type checks of values against annotations: a record read back from JSON (meta.json, an event line:
`wrong_type`), and a setting a caller gave by keyword (`fits`, `describe`: core/settings.py), so a value of the wrong
type is named where it comes in, not met later as a TypeError."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

# What each annotation (as `from __future__ import annotations` leaves it: a string) accepts from JSON.
_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}


def wrong_type(kind: type, values: dict[str, Any], prefix: str = "") -> str:
    """Why the first of `values` is not of its field's type in the dataclass `kind` (a dict field: any dict; a type
    not above: anything), or "" when every one is."""
    for f in dataclasses.fields(kind):
        if f.name not in values or not isinstance(f.type, str):
            continue
        wanted, value = f.type.removesuffix(" | None"), values[f.name]
        if value is None and f.type.endswith(" | None"):
            continue
        check = _CHECKS.get(wanted) or ((lambda v: isinstance(v, dict)) if wanted.startswith("dict[") else None)
        if check is not None and not check(value):
            return f"'{prefix}{f.name}' is {json.dumps(value, default=str)[:40]}, expected {wanted}"
    return ""


def fits(value: Any, hint: Any) -> bool:
    """Whether `value` fits the resolved annotation `hint` (unions, None, tuples item by item; a bool is never a
    number)."""
    if hint is Any:  # checked where it is used (an estimator, a callback)
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, tuple) and all(fits(v, args[0]) for v in value)
    if isinstance(value, bool):  # a bool is an int to Python, never a count of folds
        return hint is bool
    if hint is float:
        return isinstance(value, int | float)
    return isinstance(value, hint)


def describe(hint: Any) -> str:
    """A resolved annotation in words, for a message: "a whole number or None"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is tuple:
        return f"a tuple of {describe(args[0])}s"
    names = {type(None): "None", int: "a whole number", float: "a number", bool: "True or False", str: "a string",
             Path: "a path"}  # fmt: skip
    return names.get(hint, getattr(hint, "__name__", str(hint)))
