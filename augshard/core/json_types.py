"""The one type check of a record read back from JSON (meta.json, an event line): each field's value against its
dataclass annotation, so a value of the wrong JSON type is named where it is read, not met later as a TypeError."""

from __future__ import annotations

import dataclasses
import json
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
