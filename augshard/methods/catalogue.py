"""The method catalogue: `MethodSpec` entries read from conf/augment_methods.yaml, validated, and selected."""

from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from augshard.core.config import _load_yaml
from augshard.core.errors import ConfigError, MethodError
from augshard.methods import compat
from augshard.methods.registry import ADAPTERS, registry
from augshard.methods.spec import MethodSpec

LIBS = tuple(ADAPTERS)
ENTRY_KEYS = {"id", "lib", "kind", "args", "requires_gpu", "cost", "model_path", "embedding_path", "description"}
# Ids name output folders (combo_<k>_<ids joined by '+'>): no '/', no '..', no '+', no hidden names.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
ID_RULE = "id may hold only letters, digits, '_', '-' and '.', and may not start with '.'"
ALL = "all"


@dataclass(frozen=True)
class Catalogue:
    """A catalogue as read: its methods by id, and one note per entry the original tool's format made us read
    differently from how it is written (for the CLI to show; nothing here prints)."""

    path: str
    specs: dict[str, MethodSpec]
    notes: tuple[str, ...] = ()


def read_catalogue(path: str | Path) -> Catalogue:
    """Read and validate the catalogue; every problem names the file and the entry.

    Entries whose `kind` is fully qualified (the original tool's format) are read through `compat`; what that
    changes or drops comes back as notes."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"method catalogue not found: {path}")
    registry()  # a bad AUGSHARD_FAMILIES file is one error line here, not every method unavailable later
    data = _load_yaml(path)
    entries = data.get("methods")
    unknown_top = set(data) - {"methods"}
    if unknown_top:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown_top))}; expected 'methods'")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected a non-empty list under 'methods'")
    specs: dict[str, MethodSpec] = {}
    changed: dict[str, list[str]] = {}  # one note per change, naming every entry it applies to
    for n, entry in enumerate(entries, start=1):
        spec, changes = _read_entry(entry, path, n)
        if spec.id in specs:
            raise ConfigError(f"{path}: duplicate method id '{spec.id}'")
        specs[spec.id] = spec
        for change in changes:
            changed.setdefault(change, []).append(spec.id)
    notes = [
        f"catalogue {path}: {'method' if len(ids) == 1 else 'methods'} {', '.join(ids)}: {change}"
        for change, ids in changed.items()
    ]
    return Catalogue(str(path), specs, tuple(notes))


def load_catalogue(path: str | Path) -> dict[str, MethodSpec]:
    """The catalogue's methods by id (`read_catalogue(path).specs`, for callers that show no notes)."""
    return read_catalogue(path).specs


def _read_entry(entry: object, path: Path, n: int) -> tuple[MethodSpec, tuple[str, ...]]:
    """One entry as a `MethodSpec`, and what reading it in the original tool's format changed."""
    where = f"{path}: entry {n}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with id, lib, kind, args")
    if isinstance(entry.get("id"), str):
        where = f"{path}: method {entry['id']!r}"  # repr: one line, whatever the id holds
    elif "id" in entry:
        where = f"{path}: method '{entry['id']}'"
    original = isinstance(entry.get("kind"), str) and compat.is_qualified(entry["kind"])
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown and not original:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(ENTRY_KEYS))})")
    for key in ("id", "lib", "kind"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ConfigError(f"{where}: '{key}' is missing or not a string")
    if not ID_PATTERN.fullmatch(entry["id"]):
        raise ConfigError(f"{where}: {ID_RULE}")
    if entry["lib"] not in LIBS:
        raise ConfigError(f"{where}: lib must be one of {', '.join(LIBS)}, got '{entry['lib']}'")
    kind, args = entry["kind"], entry.get("args") or {}
    if not isinstance(args, dict):
        raise ConfigError(f"{where}: 'args' must be a mapping")
    changes: tuple[str, ...] = ()
    if original:
        read = compat.translate(entry["lib"], kind, args, where)
        kind, args, changes = read.kind, read.args, read.changes
        if unknown:
            changes += (f"ignored key(s) {', '.join(unknown)} (augshard's catalogue has no such keys)",)
    cost = entry.get("cost", 1.0)
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost <= 0:
        raise ConfigError(f"{where}: 'cost' must be a positive number, got {cost!r}")
    requires_gpu = entry.get("requires_gpu", False)
    if not isinstance(requires_gpu, bool):  # "no" is a true string: YAML's booleans are true and false
        raise ConfigError(f"{where}: 'requires_gpu' must be true or false, got {requires_gpu!r}")
    spec = MethodSpec(
        id=entry["id"],
        lib=entry["lib"],
        kind=kind,
        args_json=json.dumps(args, sort_keys=True),
        requires_gpu=requires_gpu,
        cost=float(cost),
        model_path=entry.get("model_path"),
        embedding_path=entry.get("embedding_path"),
        description=str(entry.get("description", "")),
    )
    return spec, changes


@dataclass(frozen=True)
class Selection:
    """The methods a run uses, sorted by id, and the ids the user named one by one (not only through a pattern
    or `all`): an unavailable method named that way is an error, one a pattern reached is skipped."""

    specs: tuple[MethodSpec, ...]
    named: frozenset[str]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(spec.id for spec in self.specs)


def resolve_selection(
    specs: dict[str, MethodSpec],
    include: tuple[str, ...] | None,
    exclude: tuple[str, ...] = (),
    where: str = "--methods",
    *,
    exclude_where: str = "--exclude-methods",
    catalogue_path: str | None = None,
) -> Selection:
    """What a run selects: `include` items are ids, shell-style patterns or `all` (None: the whole catalogue),
    less what `exclude` (ids or patterns) reaches. Every error is one line naming the flag and the item."""
    chosen, named = _reach(specs, (ALL,) if include is None else include, where, catalogue_path)
    excluded, _ = _reach(specs, exclude, exclude_where, catalogue_path)
    kept = chosen - excluded
    if not kept:
        if excluded:
            raise MethodError(f"{exclude_where} {' '.join(exclude)} leaves none of the methods {where} selects")
        raise MethodError(f"{where} selects no method")
    return Selection(tuple(specs[i] for i in sorted(kept)), frozenset(named & kept))


def _is_pattern(item: str) -> bool:
    return item == ALL or any(c in item for c in "*?[")


def _reach(
    specs: dict[str, MethodSpec], items: tuple[str, ...] | str, where: str, catalogue_path: str | None
) -> tuple[set[str], set[str]]:
    """The ids `items` reach in the catalogue, and the ids among them named exactly."""
    items = (items,) if isinstance(items, str) else tuple(items)
    unknown = [item for item in items if not _is_pattern(item) and item not in specs]
    if unknown:
        see = f" or {catalogue_path}" if catalogue_path else ""
        raise MethodError(f"unknown method id(s) {', '.join(unknown)} in {where}; see `augshard methods`{see}")
    reached: set[str] = set()
    named = {item for item in items if not _is_pattern(item)}
    for item in items:
        hits = set(specs) if item == ALL else {i for i in specs if fnmatch.fnmatchcase(i, item)}
        if not hits:
            raise MethodError(f"{where}: pattern '{item}' matches no method in the catalogue")
        reached |= hits
    return reached, named


def select(specs: dict[str, MethodSpec], wanted: tuple[str, ...] | None, catalogue_path: str) -> list[MethodSpec]:
    """The methods a run uses: what `--methods` selects (ids or patterns), or the whole catalogue."""
    return list(resolve_selection(specs, wanted, catalogue_path=catalogue_path).specs)
