"""Atomic outputs: every file through one writer (`atomic_file`: a temporary beside it, fsynced, renamed, removed on
any failure), combos as folders renamed into place (rows, and with --keep-vectors their vectors), and `meta.json` as
one typed record (`ComboMeta`), with the readers of both."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from augshard.combos import Combo
from augshard.errors import OutputError
from augshard.json_types import wrong_type
from augshard.labels import LabelCheck
from augshard.temporaries import create_file, is_stale, parse_leftover, remove, sweep
from augshard.vectors import VECTORS, VectorsMeta, VectorsWriter, read_vectors

__all__ = ["VECTORS", "VectorsMeta", "read_vectors"]  # the kept vectors' names, where combo folders are read

TMP_DIR = ".augshard-tmp"
DATASET = "dataset.parquet"
DATASET_CSV = "dataset.csv"  # beside the Parquet with --save-format csv
META = "meta.json"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_temp_file_name(name: str) -> tuple[str, int] | None:
    """(host, pid) of a temporary file's writer, in any format it has had (`temporaries.LEFTOVERS`); else None."""
    found = parse_leftover(name, ("file",))
    return None if found is None or found.pid is None else (found.host, found.pid)


def stale_temp_file(path: Path) -> bool:
    """A temporary file of this writer whose process (on this host) is gone: left by a crash or a full disk."""
    found = parse_leftover(path.name, ("file",))
    return found is not None and is_stale(path, found)


def sweep_temp_files(folder: str | Path) -> list[Path]:
    """Remove the stale temporary files (`stale_temp_file`) and staging folders directly in `folder`."""
    return sweep(folder, "file", "folder")


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w", **open_args: Any) -> Iterator[IO[Any]]:
    """Write `path` whole or not at all: the body writes a temporary file in the same folder (created exclusively
    under a random name, never through a link: `temporaries.create_file`), which is fsynced and renamed over
    `path`; on any failure (a full disk, an exception, a signal) the temporary is removed."""
    path = Path(path)
    tmp: Path | None = None
    try:
        tmp, fd = create_file(path)
        try:
            fh = os.fdopen(fd, mode, **open_args)
        except BaseException:
            os.close(fd)
            raise
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None  # a full disk, said of the file it hit
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """`data` into `path` through `atomic_file` (text as UTF-8)."""
    if isinstance(data, bytes):
        with atomic_file(path, "wb") as fh:
            fh.write(data)
    else:
        with atomic_file(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(data)


def move_folder_into_place(staging: Path, target: Path, aside: Path) -> None:
    """`staging` (complete, on the same file system) becomes `target` by one rename; an earlier `target` is first
    renamed to `aside`, put back if the rename fails, and removed once the new one is in place."""
    if not target.exists():
        staging.rename(target)
        return
    target.rename(aside)
    try:
        staging.rename(target)
    except BaseException:
        aside.rename(target)
        raise
    finally:
        remove(aside)


def temp_name(dir_name: str, host: str, pid: int, token: str) -> str:
    """`<pid>~<token>~<host>~<combo dir>`: '~' appears in neither hostnames nor combo folders, so the owner
    parses back even from a dotted hostname or a `.old` folder left behind."""
    return f"{pid}~{token}~{host}~{dir_name}"


def parse_temp_name(name: str) -> tuple[str, int] | None:
    """(host, pid) of a temp folder's writer, or None for a name augshard did not make."""
    found = parse_leftover(name, ("combo",))
    return None if found is None or found.pid is None else (found.host, found.pid)


def clean_stale_temp(output_root: str | Path) -> list[Path]:
    """Remove temporary combo folders left by dead processes of this host (others may still be writing), and
    anything else in the hidden temp folder that augshard did not name; links are removed, never followed."""
    return sweep(Path(output_root) / TMP_DIR, "combo", strays=True)


def remove_empty_temp(output_root: str | Path) -> None:
    """Drop the hidden temp folder once nothing is being written in it."""
    try:
        (Path(output_root) / TMP_DIR).rmdir()
    except OSError:
        pass


@dataclass(frozen=True)
class QualityMeta:
    metric: str
    min_sim: float
    max_sim: float
    model: str | None = None  # the sentence model, with the embedding metric
    backend: str | None = None
    scope: str = "final"  # or each-step: every step's output judged against its input too
    device: str | None = None  # where the sentence model ran


@dataclass(frozen=True)
class LabelMeta(LabelCheck):
    """The label-preservation check of a combo: the run's check (how far its classifier can be trusted: the same
    fields, one type) and how many of the combo's variants it predicts a different label for than for their
    original."""

    labelled: int
    flips: int

    @classmethod
    def of(cls, check: LabelCheck, labelled: int, flips: int) -> LabelMeta:
        return cls(**dataclasses.asdict(check), labelled=labelled, flips=flips)

    @property
    def flip_share(self) -> float | None:
        return round(self.flips / self.labelled, 4) if self.labelled else None


@dataclass(frozen=True)
class SourceMeta:
    path: str
    sha256: str
    text_col: str
    evidence_col: str | None = None
    id_col: str | None = None


@dataclass(frozen=True)
class TimingMeta:
    duration_seconds: float
    rows_per_second: float | None = None
    input_rows_per_second: float | None = None


@dataclass(frozen=True)
class YieldMeta:
    """The variants a combo asked for (rows x variants per sample) and kept, and where its other candidates went."""

    asked: int
    kept: int
    candidates: int = 0
    unchanged: int = 0  # empty, or the original ignoring case and surrounding space
    duplicates: int = 0  # another variant of the row, ignoring case and surrounding space
    below_min_sim: int = 0
    above_max_sim: int = 0
    call_errors: int = 0
    step_rejected: int = 0  # --quality-scope each-step: stopped at an intermediate step
    rows_short: int = 0  # rows that ran out of attempts before getting every variant
    explanation: str = ""  # set when fewer than half were kept: the numbers above and the bound to move

    @property
    def candidates_rejected(self) -> int:
        """Candidates turned down: unchanged, duplicate, out of the similarity range, or at a step."""
        return self.unchanged + self.duplicates + self.below_min_sim + self.above_max_sim + self.step_rejected

    @classmethod
    def from_legacy(cls, data: dict[str, Any], asked: int, kept: int) -> YieldMeta:
        """A meta.json written before `variants` existed: its top-level totals (the split between unchanged and
        duplicate, and between below and above the range, was not recorded: each total counts as the first)."""
        return cls(
            asked=asked,
            kept=kept,
            candidates=int(data.get("candidates", 0)),
            unchanged=int(data.get("rejected_unchanged", 0)),
            below_min_sim=int(data.get("rejected_similarity", 0)),
            call_errors=int(data.get("candidate_errors", 0)),
            rows_short=int(data.get("rows_short", 0)),
        )


# Written for the original tool's readers, derived from augshard's own fields (timing.rows_skipped too).
ORIGINAL_KEYS = ("combo_methods", "source_input")
# Counts an earlier meta.json also held at its top level, each a copy (or a sum) of one in `variants`: read, never
# written (`rows_rejected` counted candidates; `candidate_errors` was `variants.call_errors`).
LEGACY_COUNTS = ("rows_rejected", "rejected_similarity", "rejected_unchanged", "rows_short", "candidates",
                 "candidate_errors")  # fmt: skip


@dataclass(frozen=True)
class ComboMeta:
    """What `meta.json` says of a complete combo: what made it (methods, settings, input, libraries) and what it
    holds (rows, rejections, timing), with the fingerprints that decide whether it is still complete."""

    combo_id: str
    combo_dir: str
    methods: list[str]
    k: int
    method_args: dict[str, Any]
    method_specs: dict[str, str]
    seed: int
    variants_per_sample: int
    max_candidates_per_variant: int
    quality: QualityMeta
    rows: int
    rows_input: int
    rows_skipped: int
    rows_skipped_by_reason: dict[str, int]
    variants: YieldMeta  # the run's counts of candidates and variants, each once (see LEGACY_COUNTS)
    first_candidate_error: str
    source: SourceMeta
    library_versions: dict[str, str]
    timing: TimingMeta
    plan_fingerprint: str
    config_fingerprint: str
    combo_fingerprint: str
    shard: int = 0
    columns: list[str] = field(default_factory=list)  # dataset.parquet's columns (the original tool's `columns`)
    label_check: LabelMeta | None = None  # with --label-col
    vectors: VectorsMeta | None = None  # with --keep-vectors
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # keys this version does not know

    @property
    def candidates(self) -> int:
        return self.variants.candidates

    @property
    def candidates_rejected(self) -> int:
        return self.variants.candidates_rejected

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(out.pop("extra"))
        # The original tool's keys, for the scripts that read its meta.json (derived here, never read back).
        out["combo_methods"] = list(self.methods)
        out["source_input"] = self.source.path
        out["timing"]["rows_skipped"] = self.rows_skipped
        if self.vectors is None:  # a meta.json without vectors reads as it always did
            del out["vectors"]
        if self.label_check is None:
            del out["label_check"]
        else:
            out["label_check"]["flip_share"] = self.label_check.flip_share
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ComboMeta:
        """The record of a parsed `meta.json`; ValueError naming what is missing or of the wrong kind."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        nested = {
            "quality": QualityMeta,
            "source": SourceMeta,
            "timing": TimingMeta,
            "variants": YieldMeta,
            "label_check": LabelMeta,
            "vectors": VectorsMeta,
        }
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values: dict[str, Any] = {k: v for k, v in data.items() if k in names}
        try:
            if values.get("variants") is None and "candidates" in data:  # written before `variants` existed
                asked = int(data.get("rows_input", 0)) * int(data.get("variants_per_sample", 0))
                values["variants"] = dataclasses.asdict(YieldMeta.from_legacy(data, asked, int(data.get("rows", 0))))
            for key, kind in nested.items():
                if key in ("label_check", "vectors") and values.get(key) is None:
                    continue  # optional
                if not isinstance(values.get(key), dict):
                    raise ValueError(f"'{key}' is missing or not an object")
                values[key] = _known(kind, values[key], f"{key}.")
            extra = {k: v for k, v in data.items() if k not in names and k not in (*LEGACY_COUNTS, *ORIGINAL_KEYS)}
            _check_types(cls, {k: v for k, v in values.items() if k not in nested})
            return cls(**values, extra=extra)
        except TypeError as exc:  # a required key absent
            raise ValueError(" ".join(str(exc).split()[1:]) or str(exc)) from None


def _check_types(kind: type, values: dict[str, Any], prefix: str = "") -> None:
    why = wrong_type(kind, values, prefix)
    if why:
        raise ValueError(why)


def _known(kind: type, data: dict[str, Any], prefix: str = "") -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    values = {k: v for k, v in data.items() if k in names}
    _check_types(kind, values, prefix)
    return kind(**values)


def write_meta(path: Path, meta: ComboMeta) -> None:
    write_atomic(path, json.dumps(meta.to_dict(), indent=2, sort_keys=True) + "\n")


class MetaError(OutputError, ValueError):
    """A `meta.json` that is not one: an OutputError (one line from the CLI) and a ValueError (a reader that skips
    an unreadable combo catches it as it always did). `reason` says what is wrong without the path."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: not a usable meta.json ({reason})")
        self.path, self.reason = Path(path), reason


def read_meta(path: str | Path) -> ComboMeta:
    """A combo's `meta.json`; OSError when it cannot be read, MetaError (a ValueError) when it is not a meta.json."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MetaError(path, f"not JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError as exc:
        raise MetaError(path, f"not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise MetaError(path, "JSON nested too deep") from None
    try:
        return ComboMeta.from_dict(data)
    except ValueError as exc:
        raise MetaError(path, str(exc)) from None


def read_complete(output_root: str | Path, combo: Combo, fingerprint: str) -> ComboMeta | None:
    """The combo's meta.json if the combo is complete for this fingerprint, else None (recompute it)."""
    final = Path(output_root) / combo.dir_name
    meta_path, data_path = final / META, final / DATASET
    if not (meta_path.is_file() and data_path.is_file()):
        return None
    try:
        meta = read_meta(meta_path)
    except (OSError, ValueError):
        return None
    if meta.combo_fingerprint != fingerprint or meta.combo_id != combo.combo_id:
        return None
    return meta


class ComboWriter:
    """Stream one combo's records into a hidden temporary folder; `commit` makes it appear whole or not at all."""

    def __init__(
        self, output_root: str | Path, combo: Combo, schema: Any, csv: bool = False, vectors: bool = False
    ) -> None:
        import pyarrow.parquet as pq

        self.root = Path(output_root)
        self.combo = combo
        self.schema = schema
        tmp_root = self.root / TMP_DIR
        tmp_root.mkdir(parents=True, exist_ok=True)
        if not stat.S_ISDIR(os.lstat(tmp_root).st_mode):  # a link planted there: never written through
            raise OutputError(f"{tmp_root} is not a folder augshard made (a link?); remove it and run again")
        self.tmp = tmp_root / temp_name(combo.dir_name, socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
        self.tmp.mkdir()
        self._writer = pq.ParquetWriter(self.tmp / DATASET, schema, compression="zstd")
        self.csv = csv
        self.rows = 0
        self.vectors = VectorsWriter(self.tmp) if vectors else None
        self.seconds = 0.0  # spent writing: records and vectors to Parquet, then the commit (a shard's time split)

    def write(self, records: list[dict[str, Any]]) -> None:
        """One chunk of records becomes one row group, so memory stays flat however many rows there are."""
        import pyarrow as pa

        if records:
            t0 = time.perf_counter()
            self._writer.write_table(pa.Table.from_pylist(records, schema=self.schema))
            self.rows += len(records)
            self.seconds += time.perf_counter() - t0

    def write_vectors(self, keys: list[tuple[str, int]], vectors: Any) -> None:
        """The vectors of the records just written, row for row (`(row_key, variant)` and an (n, dim) array)."""
        if self.vectors is None:
            raise ValueError("a combo writer opened without vectors")
        t0 = time.perf_counter()
        self.vectors.write(keys, vectors)
        self.seconds += time.perf_counter() - t0

    @property
    def vector_rows(self) -> int:
        return self.vectors.rows if self.vectors is not None else 0

    @property
    def vector_dim(self) -> int | None:
        return self.vectors.dim if self.vectors is not None else None

    def commit(self, meta: ComboMeta) -> Path:
        t0 = time.perf_counter()
        self._writer.close()
        files = [self.tmp / DATASET]
        if self.vectors is not None:
            if meta.vectors is None:
                raise ValueError("a combo written with vectors needs meta.vectors")
            # meta.json records the closed file's digest: verify and evaluate then know these are its vectors
            meta = dataclasses.replace(meta, vectors=self.vectors.close(meta.vectors, self.rows))
            files.append(self.vectors.path)
        if self.csv:
            files.append(self._write_csv())
        meta_path = self.tmp / META
        write_meta(meta_path, meta)
        for path in (*files, meta_path, self.tmp):
            _fsync(path)
        final = self.root / self.combo.dir_name
        # An out-of-date or forced combo: its old folder waits beside the temporary one while the new one moves in.
        move_folder_into_place(self.tmp, final, self.tmp.with_name(self.tmp.name + ".old"))
        _fsync(self.root)
        self.seconds += time.perf_counter() - t0
        return final

    def _write_csv(self) -> Path:
        """The same rows as CSV, read back from the Parquet one row group at a time."""
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        path = self.tmp / DATASET_CSV
        source = pq.ParquetFile(self.tmp / DATASET)
        with pacsv.CSVWriter(path, source.schema_arrow) as out:
            for i in range(source.num_row_groups):
                out.write_table(source.read_row_group(i))
        return path

    def abort(self) -> None:
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the folder is removed anyway
            # A close that failed (a full disk) is not retried by the writer's __del__, which would print a
            # traceback into the shard's output long after the combo was reported failed.
            self._writer.is_open = False
        if self.vectors is not None:
            self.vectors.abort()
        shutil.rmtree(self.tmp, ignore_errors=True)
