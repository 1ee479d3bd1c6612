"""The merge: every shard manifest of one plan into manifest_final.csv (deduped; mixed plans, shard counts and
missing shards refused), repeatable, and what it says (`ManifestSummary`). A run's end calls it, as `augshard merge`
does; nothing else merges."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augshard.core.config import DEFAULT_OUTPUT_NAME
from augshard.core.errors import OutputError
from augshard.storage.manifest import find_shard_manifests, read_manifest, write_manifest
from augshard.storage.outcome import ComboOutcome, Status


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


def merged_outcomes(shards: Iterable[list[ComboOutcome]]) -> list[ComboOutcome]:
    """The merged manifest's rows from each shard's, in shard order: one per combo (an ok one over any other), sorted
    by k and methods. The merge writes these; the API types a finished run's combos the same way."""
    merged: dict[str, ComboOutcome] = {}
    for rows in shards:
        for r in rows:
            prev = merged.get(r.combo_id)
            if prev is None or (not prev.ok and r.ok):
                merged[r.combo_id] = r
    return sorted(merged.values(), key=lambda r: (r.k, r.methods))


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
    final_rows = merged_outcomes(shard_rows[index] for index in sorted(shard_rows))
    write_manifest(root / output_name, final_rows)
    if not keep_shards:
        for path in by_index.values():
            path.unlink()
    return summarize(final_rows)
