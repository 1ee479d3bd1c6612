"""Manifests: one CSV per shard and the merged one, written whole, read back typed, rows outside the output root
refused; the merge itself is `merge.py`."""

from __future__ import annotations

import csv
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from augshard.core.errors import OutputError
from augshard.storage.outcome import COLUMNS, ComboOutcome
from augshard.storage.temporaries import atomic_file

SHARD_MANIFEST = re.compile(r"^manifest_shard(\d+)_of_(\d+)\.csv$")


def shard_manifest_name(index: int, num_shards: int) -> str:
    return f"manifest_shard{index}_of_{num_shards}.csv"


def write_csv_atomic(path: Path, rows: list[dict[str, Any]], columns: list[str] = COLUMNS) -> None:
    with atomic_file(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_manifest(path: Path, outcomes: list[ComboOutcome]) -> Path:
    write_csv_atomic(path, [o.as_row() for o in outcomes])
    return path


def write_shard_manifest(output_root: str | Path, index: int, num_shards: int, outcomes: list[ComboOutcome]) -> Path:
    return write_manifest(Path(output_root) / shard_manifest_name(index, num_shards), outcomes)


def read_manifest(path: Path, contained: bool = True) -> list[ComboOutcome]:
    """The rows of a manifest; an OutputError (one line) for a file that is not one. With `contained` (every reader
    but `verify`, which lists them), a row whose combo points outside the manifest's folder is refused too."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            missing = [c for c in ("combo_id", "status", "rows", "k", "plan_fingerprint") if c not in fields]
            if missing:
                raise OutputError(f"{path}: not an augshard manifest (missing column(s) {', '.join(missing)})")
            rows = []
            for row in reader:
                try:
                    outcome = ComboOutcome.from_row(row)
                except ValueError as exc:
                    raise OutputError(f"{path}: line {reader.line_num}: not an augshard manifest row ({exc})") from None
                why = outside_root(outcome) if contained else None
                if why:
                    raise OutputError(f"{path}: line {reader.line_num}: {why}; no reader follows it (`augshard verify` "
                                      "lists such rows)")  # fmt: skip
                rows.append(outcome)
            return rows
    except UnicodeDecodeError as exc:
        raise OutputError(f"{path}: not an augshard manifest (not UTF-8 text at byte {exc.start})") from None
    except csv.Error as exc:
        raise OutputError(f"{path}: not an augshard manifest ({exc})") from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def outside_root(outcome: ComboOutcome) -> str | None:
    """Why a manifest row's combo lies outside its output root (a combo folder is a plain name in the root; its
    dataset a relative path without `..`), or None when it does not."""
    name, data = outcome.combo_dir, outcome.dataset_path
    if name and (name in (".", "..") or any(c in name for c in "/\\\0")):
        return f"combo {outcome.combo_id}: combo_dir {name!r} is not a folder of the output root"
    if data and (PurePosixPath(data).is_absolute() or PureWindowsPath(data).is_absolute() or ".." in
                 PureWindowsPath(data).parts or "\0" in data):  # fmt: skip
        return f"combo {outcome.combo_id}: dataset_path {data!r} points outside the output root"
    return None


def find_shard_manifests(output_root: Path) -> dict[int, dict[int, Path]]:
    """{num_shards: {index: path}} for every shard manifest in the output root."""
    found: dict[int, dict[int, Path]] = {}
    if output_root.is_dir():
        for path in sorted(output_root.iterdir()):
            m = SHARD_MANIFEST.match(path.name)
            if m:
                found.setdefault(int(m.group(2)), {})[int(m.group(1))] = path
    return found
