"""`augshard verify`: the manifest checked against the datasets on disk, every disagreement named."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augshard.core import columns as col
from augshard.core.config import DEFAULT_OUTPUT_NAME
from augshard.core.errors import OutputError
from augshard.runner.procs import pid_alive
from augshard.storage.manifest import outside_root, read_manifest
from augshard.storage.meta import ComboMeta, read_meta
from augshard.storage.outcome import ComboOutcome
from augshard.storage.store import DATASET, DATASET_CSV, META, TMP_DIR, parse_temp_name
from augshard.storage.temporaries import stale_temp_file
from augshard.storage.vectors import VECTORS, dataset_keys, vectors_problems

AUGSHARD_COLUMNS = (col.ROW_KEY, col.VARIANT, col.SIMILARITY, col.COMBO_ID, col.METHODS)


@dataclass
class Verification:
    manifest: Path
    combos: int = 0
    datasets: int = 0  # datasets that passed every check
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    # Temporaries a dead writer left (a crash, a full disk): not damage; the next run sweeps them.
    stale: list[str] = field(default_factory=list)
    # Combos whose meta.json predates the vectors' sha256: their vectors are checked (rows, dimension, keys, values)
    # but cannot be told from other well-formed vectors of the same rows.
    unchecked: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """`verify --format json` (schema in docs/cli.md)."""
        return {
            "manifest": str(self.manifest),
            "combos": self.combos,
            "datasets": self.datasets,
            "rows": self.rows,
            "ok": not self.problems,
            "problems": list(self.problems),
            "stale": list(self.stale),
            "vectors_unchecked": list(self.unchecked),
        }

    def lines(self) -> list[str]:
        head = f"{self.manifest}: {self.combos} combos listed, {self.datasets} datasets ({self.rows:,} rows) verified"
        stale = [f"stale temporary (harmless; the next run removes it): {p}" for p in self.stale]
        stale += [f"{name}: {VECTORS} has no sha256 in meta.json (written before augshard recorded it): rows, "
                  "dimension, keys and values checked, its digest unchecked" for name in self.unchecked]  # fmt: skip
        if not self.problems:
            return [head, *stale, "OK: the manifest and the datasets agree"]
        return [head, *stale, f"{len(self.problems)} problem(s)"]


def verify(output_root: str | Path, output_name: str = DEFAULT_OUTPUT_NAME) -> Verification:
    """Every ok combo's dataset exists, opens, has its recorded rows, and agrees with its meta.json; nothing else
    (orphan combo folders, temporary files) lies in the output root."""
    root = Path(output_root)
    if not root.is_dir():
        raise OutputError(f"output root not found: {root}")
    result = Verification(root / output_name)
    if not result.manifest.is_file():
        shards = sorted(p.name for p in root.glob("manifest_shard*_of_*.csv"))
        hint = f" (shard manifests {', '.join(shards)} are not merged: run `augshard merge`)" if shards else ""
        result.problems.append(f"manifest missing: {result.manifest}{hint}")
        entries: list[ComboOutcome] = []
    else:
        entries = read_manifest(result.manifest, contained=False)  # rows outside the root are listed below
    result.combos = len(entries)
    seen: dict[str, int] = {}
    for e in entries:
        seen[e.combo_id] = seen.get(e.combo_id, 0) + 1
    for combo_id, n in sorted(seen.items()):
        if n > 1:
            result.problems.append(f"combo {combo_id} is listed {n} times in the manifest")
    plans = {e.plan_fingerprint for e in entries}
    if len(plans) > 1:
        result.problems.append(f"the manifest mixes plans: {', '.join(sorted(plans))}")
    listed = set()
    for e in entries:
        outside = outside_root(e)
        if outside:
            result.problems.append(f"{outside} (every other reader refuses the manifest)")
            continue
        if not e.ok:
            continue
        listed.add(e.combo_dir)
        problems = _check_combo(root, e, result.unchecked)
        result.problems += problems
        if not problems:
            result.datasets += 1
            result.rows += e.rows
    result.problems += _stray(root, listed, result.stale)
    return result


def _check_combo(root: Path, e: ComboOutcome, unchecked: list[str]) -> list[str]:
    import pyarrow.parquet as pq

    name = e.combo_dir or e.combo_id
    data = root / e.dataset_path
    meta_path = data.parent / META
    if not data.is_file():
        return [f"{name}: dataset missing ({data})"]
    try:
        table = pq.read_table(data)  # reads every page, so a truncated or corrupt file shows here
    except Exception as exc:  # noqa: BLE001 - any failure to read is the problem being reported
        return [f"{name}: dataset does not open ({data}): {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"]
    problems = []
    if table.num_rows != e.rows:
        problems.append(f"{name}: dataset has {table.num_rows:,} rows, the manifest says {e.rows:,}")
    meta = _read_meta(meta_path)
    if isinstance(meta, str):
        return [*problems, f"{name}: {meta}"]
    expected = {
        "rows": (meta.rows, e.rows),
        "combo_id": (meta.combo_id, e.combo_id),
        "methods": ("+".join(meta.methods), e.methods),
        "k": (meta.k, e.k),
        "plan_fingerprint": (meta.plan_fingerprint, e.plan_fingerprint),
    }
    for key, (in_meta, in_manifest) in expected.items():
        if in_meta != in_manifest:
            problems.append(f"{name}: meta.json {key} is {in_meta!r}, the manifest says {in_manifest!r}")
    wanted = [*AUGSHARD_COLUMNS, meta.source.text_col]
    if meta.source.evidence_col:
        wanted += [meta.source.evidence_col, col.EVIDENCE_ORIGINAL, col.EVIDENCE_MATCH]
    else:
        wanted.append(col.TEXT_ORIGINAL)
    missing = [c for c in wanted if c and c not in table.column_names]
    if missing:
        problems.append(f"{name}: dataset lacks column(s) {', '.join(missing)} that meta.json implies")
    if meta.vectors is not None and meta.vectors.sha256 is None:
        unchecked.append(name)
    if {col.ROW_KEY, col.VARIANT} <= set(table.column_names):
        keys = dataset_keys(table)
        problems += [f"{name}: {p}" for p in vectors_problems(data.parent, meta.vectors, keys)]
    if col.COMBO_ID in table.column_names and table.num_rows:
        ids = set(table.column(col.COMBO_ID).to_pylist())
        if ids != {e.combo_id}:
            problems.append(f"{name}: dataset rows carry combo ids {sorted(map(str, ids))}, expected {e.combo_id}")
    return problems


def _read_meta(path: Path) -> ComboMeta | str:
    if not path.is_file():
        return f"meta.json missing ({path})"
    try:
        return read_meta(path)
    except (OSError, ValueError) as exc:
        return f"meta.json unreadable ({path}): {getattr(exc, 'reason', exc)}"


def _stray(root: Path, listed: set[str], stale: list[str]) -> list[str]:
    """Combo folders the manifest does not list as ok, extra files in combo folders, and temporary leftovers (those
    of a writer that is gone go to `stale`: what a crash or a full disk leaves is not damage)."""
    problems = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and path.name.startswith("combo_"):
            if path.name not in listed:
                problems.append(f"orphan combo folder (not listed as ok in the manifest): {path}")
                continue
            extra = sorted(p.name for p in path.iterdir() if p.name not in (DATASET, DATASET_CSV, META, VECTORS))
            if extra:
                problems.append(f"{path.name}: unexpected file(s) {', '.join(extra)}")
        elif path.name == TMP_DIR and path.is_dir():
            for p in sorted(path.iterdir()):
                if _dead_writer(p.name):
                    stale.append(str(p))
                else:
                    problems.append(f"temporary folder left behind: {p}")
        elif path.name.endswith(".tmp"):
            if stale_temp_file(path):
                stale.append(str(path))
            else:
                problems.append(f"temporary file left behind: {path}")
    return problems


def _dead_writer(name: str) -> bool:
    owner = parse_temp_name(name.removesuffix(".old"))
    return owner is not None and owner[0] == socket.gethostname() and not pid_alive(owner[1])
