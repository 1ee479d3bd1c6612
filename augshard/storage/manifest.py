"""Manifests: one CSV per shard, merged (deduped, one plan only) into manifest_final.csv, with a summary."""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from augshard.core.config import DEFAULT_OUTPUT_NAME
from augshard.core.errors import OutputError
from augshard.storage.outcome import COLUMNS, ComboOutcome, Status
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


@dataclass
class ManifestSummary:
    combos: int = 0
    ok: int = 0
    failed: int = 0
    unavailable: int = 0
    rows: int = 0
    per_k: Counter = field(default_factory=Counter)
    min_rows: int = 0
    max_rows: int = 0
    avg_rows: float = 0.0
    failed_combos: list[str] = field(default_factory=list)
    interrupted: int = 0  # stopped by a signal: not failed, a rerun resumes them
    interrupted_combos: list[str] = field(default_factory=list)

    @property
    def unfinished(self) -> int:
        return self.failed + self.interrupted

    def as_json(self) -> dict[str, Any]:
        """The summary as a JSON object (`merge --format json`, and a run's); ManifestSummary(**doc) reads it back."""
        return {
            "combos": self.combos,
            "ok": self.ok,
            "failed": self.failed,
            "unavailable": self.unavailable,
            "rows": self.rows,
            "per_k": {str(k): n for k, n in sorted(self.per_k.items())},
            "min_rows": self.min_rows,
            "max_rows": self.max_rows,
            "avg_rows": round(self.avg_rows, 3),
            "failed_combos": list(self.failed_combos),
            "interrupted": self.interrupted,
            "interrupted_combos": list(self.interrupted_combos),
        }

    def lines(self) -> list[str]:
        per_k = ", ".join(f"k={k}: {n}" for k, n in sorted(self.per_k.items(), key=lambda kn: int(kn[0])))
        out = [
            f"Total combos: {self.combos} ({self.ok} ok, {self.failed} failed, {self.unavailable} unavailable"
            + (f", {self.interrupted} interrupted)" if self.interrupted else ")"),
            f"Total rows: {self.rows:,}",
            f"Combos per k: {per_k or '-'}",
            f"Rows per combo: min {self.min_rows:,} / max {self.max_rows:,} / avg {self.avg_rows:,.1f}",
        ]
        return out


def summarize(outcomes: list[ComboOutcome]) -> ManifestSummary:
    s = ManifestSummary(combos=len(outcomes))
    counts = []
    for o in outcomes:
        s.per_k[o.k] += 1
        if o.ok:
            s.ok += 1
            counts.append(o.rows)
        elif o.status is Status.UNAVAILABLE:
            s.unavailable += 1
        elif o.status is Status.INTERRUPTED:
            s.interrupted += 1
            s.interrupted_combos.append(o.combo_dir or o.combo_id)
        else:
            s.failed += 1
            s.failed_combos.append(o.combo_dir or o.combo_id)
    if counts:
        s.rows = sum(counts)
        s.min_rows, s.max_rows, s.avg_rows = min(counts), max(counts), sum(counts) / len(counts)
    return s


def find_shard_manifests(output_root: Path) -> dict[int, dict[int, Path]]:
    """{num_shards: {index: path}} for every shard manifest in the output root."""
    found: dict[int, dict[int, Path]] = {}
    if output_root.is_dir():
        for path in sorted(output_root.iterdir()):
            m = SHARD_MANIFEST.match(path.name)
            if m:
                found.setdefault(int(m.group(2)), {})[int(m.group(1))] = path
    return found


def merged_before(output_root: str | Path, output_name: str = DEFAULT_OUTPUT_NAME) -> bool:
    """No shard manifest left, and a merged manifest: an earlier merge (or run) removed them after merging."""
    root = Path(output_root)
    return root.is_dir() and not find_shard_manifests(root) and (root / output_name).is_file()


def merge(
    output_root: str | Path, output_name: str = DEFAULT_OUTPUT_NAME, keep_shards: bool = False
) -> ManifestSummary:
    """Merge every shard manifest of one plan; refuse mixed plans or shard counts, and missing shards.

    Repeatable: once the shard manifests are gone (a merge removes them), merging again summarises the merged
    manifest as it is, so a second merge says what the first said and exits the same."""
    root = Path(output_root)
    if not root.is_dir():
        raise OutputError(f"output root not found: {root}")
    if merged_before(root, output_name):
        return summarize(read_manifest(root / output_name))
    found = find_shard_manifests(root)
    if not found:
        raise OutputError(f"no shard manifests (manifest_shard<i>_of_<N>.csv) in {root}")
    if len(found) > 1:
        sizes = ", ".join(f"of_{n}" for n in sorted(found))
        raise OutputError(
            f"{root}: shard manifests from different shard counts ({sizes}); "
            f"remove the ones of the old run and merge again"
        )
    ((num_shards, by_index),) = found.items()
    missing = [i for i in range(num_shards) if i not in by_index]
    if missing:
        raise OutputError(
            f"{root}: missing manifest(s) for shard(s) {', '.join(map(str, missing))} of "
            f"{num_shards}; run them with --shard-index and merge again"
        )
    fingerprints: dict[str, list[int]] = {}
    shard_rows: dict[int, list[ComboOutcome]] = {}
    for index, path in sorted(by_index.items()):
        rows = read_manifest(path)
        shard_rows[index] = rows
        fps = {r.plan_fingerprint for r in rows} or {"(empty)"}
        for fp in fps:
            fingerprints.setdefault(fp, []).append(index)
    real = {fp: idx for fp, idx in fingerprints.items() if fp != "(empty)"}
    if len(real) > 1:
        majority = max(real, key=lambda fp: len(real[fp]))
        odd = sorted(i for fp, idx in real.items() if fp != majority for i in idx)
        names = ", ".join(by_index[i].name for i in odd)
        raise OutputError(
            f"{root}: {names} come(s) from a different plan (fingerprint differs from "
            f"{majority}); rerun those shards with the same catalogue, config and shard count"
        )
    merged: dict[str, ComboOutcome] = {}
    for index in sorted(shard_rows):
        for r in shard_rows[index]:
            prev = merged.get(r.combo_id)
            if prev is None or (not prev.ok and r.ok):
                merged[r.combo_id] = r
    final_rows = sorted(merged.values(), key=lambda r: (r.k, r.methods))
    write_manifest(root / output_name, final_rows)
    if not keep_shards:
        for path in by_index.values():
            path.unlink()
    return summarize(final_rows)
