"""The type checks of records against their dataclass annotations: one read back from JSON (meta.json, an event
line: `wrong_type`), and one a caller built from keywords (the API's export and evaluate options: `check_fields`),
so a value of the wrong type is named where it comes in, not met later as a TypeError."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from augshard.core.errors import ConfigError

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


def check_fields(record: Any, what: str) -> None:
    """Each field of the dataclass `record` against its annotation, resolved (unions, None, tuples item by item; a
    bool is never a number): a ConfigError "<what> '<field>' must be ..., got ..." for the first that does not fit."""
    hints = typing.get_type_hints(type(record))
    for f in dataclasses.fields(record):
        value, hint = getattr(record, f.name), hints[f.name]
        if not _fits(value, hint):
            raise ConfigError(f"{what} '{f.name}' must be {_describe(hint)}, got {value!r}")


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any:  # checked where it is used (an estimator, a callback)
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, tuple) and all(_fits(v, args[0]) for v in value)
    if isinstance(value, bool):  # a bool is an int to Python, never a count of folds
        return hint is bool
    if hint is float:
        return isinstance(value, int | float)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        return f"a tuple of {_describe(args[0])}s"
    names = {type(None): "None", int: "a whole number", float: "a number", bool: "True or False", str: "a string",
             Path: "a path"}  # fmt: skip
    return names.get(hint, getattr(hint, "__name__", str(hint)))
