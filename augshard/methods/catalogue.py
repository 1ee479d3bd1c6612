"""The method catalogue: `MethodSpec` entries read from conf/augment_methods.yaml and validated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augshard.errors import ConfigError, MethodError

LIBS = ("nlpaug", "textattack")
ENTRY_KEYS = {"id", "lib", "kind", "args", "requires_gpu", "cost", "model_path", "embedding_path", "description"}


@dataclass(frozen=True)
class MethodSpec:
    """One catalogue entry: which library class to build, with which arguments."""

    id: str
    lib: str
    kind: str
    args_json: str = "{}"
    requires_gpu: bool = False
    cost: float = 1.0
    model_path: str | None = None
    embedding_path: str | None = None
    description: str = ""

    @property
    def args(self) -> dict[str, Any]:
        return json.loads(self.args_json)

    def canonical(self) -> str:
        """What identifies this method's behaviour: library, class and arguments (not its cost)."""
        return json.dumps(
            {
                "lib": self.lib,
                "kind": self.kind,
                "args": self.args,
                "model_path": self.model_path,
                "embedding_path": self.embedding_path,
            },
            sort_keys=True,
            separators=(",", ":"),
        )


def load_catalogue(path: str | Path) -> dict[str, MethodSpec]:
    """Read and validate the catalogue; every problem names the file and the entry."""
    from augshard.config import _load_yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"method catalogue not found: {path}")
    data = _load_yaml(path)
    entries = data.get("methods")
    unknown_top = set(data) - {"methods"}
    if unknown_top:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown_top))}; expected 'methods'")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected a non-empty list under 'methods'")
    specs: dict[str, MethodSpec] = {}
    for n, entry in enumerate(entries, start=1):
        where = f"{path}: entry {n}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with id, lib, kind, args")
        if "id" in entry:
            where = f"{path}: method '{entry['id']}'"
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(ENTRY_KEYS))})"
            )
        for key in ("id", "lib", "kind"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ConfigError(f"{where}: '{key}' is missing or not a string")
        if entry["id"] in specs:
            raise ConfigError(f"{path}: duplicate method id '{entry['id']}'")
        if entry["lib"] not in LIBS:
            raise ConfigError(f"{where}: lib must be one of {', '.join(LIBS)}, got '{entry['lib']}'")
        args = entry.get("args") or {}
        if not isinstance(args, dict):
            raise ConfigError(f"{where}: 'args' must be a mapping")
        cost = entry.get("cost", 1.0)
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost <= 0:
            raise ConfigError(f"{where}: 'cost' must be a positive number, got {cost!r}")
        specs[entry["id"]] = MethodSpec(
            id=entry["id"],
            lib=entry["lib"],
            kind=entry["kind"],
            args_json=json.dumps(args, sort_keys=True),
            requires_gpu=bool(entry.get("requires_gpu", False)),
            cost=float(cost),
            model_path=entry.get("model_path"),
            embedding_path=entry.get("embedding_path"),
            description=str(entry.get("description", "")),
        )
    return specs


def select(specs: dict[str, MethodSpec], wanted: tuple[str, ...] | None, catalogue_path: str) -> list[MethodSpec]:
    """The methods a run uses: the `--methods` subset, or the whole catalogue; unknown ids are an error."""
    if wanted is None:
        return [specs[k] for k in sorted(specs)]
    unknown = [m for m in wanted if m not in specs]
    if unknown:
        raise MethodError(
            f"unknown method id(s) {', '.join(unknown)} in --methods; see `augshard methods` or {catalogue_path}"
        )
    return [specs[k] for k in sorted(wanted)]
