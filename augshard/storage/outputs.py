"""The one rule for every path a user names for a command to write (export `--to`, evaluate `--out`, report
`--out`, merge `--output-name`, `methods --bench --out`, and the API's same arguments), and the marks by which
augshard knows a file or folder it made itself."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from augshard.core.config import DEFAULT_CACHE_DIR, DEFAULT_LOG_DIR
from augshard.core.errors import OutputError
from augshard.evaluation.document import EVALUATION
from augshard.exporting.model import FACTS, ExportFacts, is_export
from augshard.storage.outcome import COLUMNS
from augshard.storage.store import META

REPORT_TITLE = b"<title>augshard report: "  # in the head of every page `augshard report` writes
RUN_RECORD = "run.yaml"  # a run's settings, in its output root (runner/run_record.py)
RUN_RECORD_HEAD = b"# Written by `augshard run`: "  # its first line begins so


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested too deep
        return None


def _is_evaluation(path: Path) -> bool:
    doc = _json(path)
    return (
        isinstance(doc, dict)
        and "schema" in doc
        and isinstance(doc.get("libraries"), dict)
        and ("augshard" in doc["libraries"])
    )


def _is_costs(path: Path) -> bool:
    doc = _json(path)
    return isinstance(doc, dict) and isinstance(doc.get("method_costs"), dict) and "measured_at" in doc


def _is_report(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>") and REPORT_TITLE in head


def _is_run_record(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(RUN_RECORD_HEAD)) == RUN_RECORD_HEAD
    except OSError:
        return False


def _is_manifest(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            header = fh.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):
        return False
    return header[:2] == COLUMNS[:2] and {"status", "plan_fingerprint"} <= set(header)


# What each kind of output looks like when augshard made it: the mark `--force` is not needed to replace. The
# file carries it already: evaluation.json its `libraries.augshard`, the costs file `method_costs` and
# `measured_at`, the report `<title>augshard report: ` in its head, a manifest its header row, an export its
# export.json whose `made_by` is "augshard export", a run.yaml its first line.
MARKS: dict[str, tuple[str, Callable[[Path], bool]]] = {
    "evaluation": ("an evaluation.json", _is_evaluation),
    "costs": ("a method costs file", _is_costs),
    "report": ("an augshard report", _is_report),
    "manifest": ("a manifest", _is_manifest),
    "export": ("an augshard export", is_export),
    "run": ("a run.yaml", _is_run_record),
}


def made_by_augshard(path: Path, kind: str) -> bool:
    """Whether `path` is an output of `kind` that augshard made (a real file or folder, never a link)."""
    return not path.is_symlink() and MARKS[kind][1](path)


@dataclass(frozen=True)
class Protected:
    """What an output may never touch: the run's input files, its folders (output root, cache, logs: named) and,
    inside those folders, the one path that is the command's own file (evaluation.json in the root, ...)."""

    inputs: tuple[Path, ...] = ()
    folders: tuple[tuple[str, Path], ...] = ()
    own: tuple[Path, ...] = ()


def run_inputs(output_root: str | Path) -> tuple[Path, ...]:
    """The input files the run in `output_root` read, as its combos' meta.json record them (absolute)."""
    found: set[str] = set()
    root = Path(output_root)
    if root.is_dir():
        for meta in root.glob(f"*/{META}"):
            doc = _json(meta)
            source = doc.get("source") if isinstance(doc, dict) else None
            if isinstance(source, dict) and isinstance(source.get("path"), str):
                found.add(source["path"])
    return tuple(Path(p) for p in sorted(found))


def export_inputs(folder: str | Path) -> tuple[Path, ...]:
    """The input an `augshard export` folder was made from (its export.json's `source`)."""
    try:
        facts = ExportFacts.read(Path(folder))
    except (OSError, ValueError):
        return ()
    return () if facts.input_path is None else (Path(facts.input_path),)


def run_protected(
    output_root: str | Path,
    cache_dir: str | Path | None = None,
    log_dir: str | Path | None = None,
    own: Iterable[str | Path] = (),
    inputs: Iterable[str | Path] = (),
) -> Protected:
    """A run's input (its meta.json files' and `inputs`), output root, cache and log folder; `own` inside them."""
    folders = (
        ("output root", Path(output_root)),
        ("cache folder", Path(cache_dir or DEFAULT_CACHE_DIR)),
        ("log folder", Path(log_dir or DEFAULT_LOG_DIR)),
    )
    found = (*(Path(p) for p in inputs), *run_inputs(output_root))
    return Protected(found, folders, tuple(Path(p) for p in own))


def _where(path: Path) -> Path:
    """`path` made absolute with its folder resolved but its own name kept: a link there is seen, not followed."""
    absolute = Path(os.path.abspath(path))
    if absolute.name in ("", ".", ".."):
        return absolute.resolve()
    return absolute.parent.resolve() / absolute.name


def _what(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_output(
    path: str | Path, option: str, protected: Protected, kind: str, force: bool = False, folder: bool = False
) -> Path:
    """The rule every user-named output path of every command passes before anything is written (OutputError,
    one line, otherwise). `path` may not be, hold or sit inside a protected input or folder (but for the command's
    own file there), nor be a symbolic link; a file output may not be anything but a regular file; an existing one
    is replaced when augshard made it as this `kind` of output, or with `force` (never one of augshard's other
    outputs). A folder output (export) is replaced only with `force` and only when augshard made it.
    Returns `path`, absolute."""
    shown = f"{option} {path}"
    target = _where(Path(path))
    own = {_where(p) for p in protected.own}
    tail = "an export goes to a folder of its own" if folder else f"choose another {option}"
    for what, where in protected.folders:
        kept = where.resolve()
        if target in own or not (target == kept or target in kept.parents or kept in target.parents):
            continue
        how = "is" if target == kept else "contains" if target in kept.parents else "is inside"
        raise OutputError(f"{shown} {how} the run's {what} {where}; {tail}")
    for source in protected.inputs:
        kept = source.resolve()
        if target == kept or target in kept.parents:
            how = "is" if target == kept else "holds"
            raise OutputError(f"{shown} {how} the run's input {source}; {tail}")
    try:
        mode = os.lstat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return target
    if stat.S_ISLNK(mode):
        raise OutputError(f"{shown} is a symbolic link; augshard writes through none: name the file itself")
    if any(source.exists() and os.path.samefile(source, target) for source in protected.inputs):
        raise OutputError(f"{shown} is the run's input (another name of it); choose another {option}")
    if folder:
        if stat.S_ISDIR(mode) and not any(target.iterdir()):
            return target
        if not force:
            raise OutputError(f"{path} exists and is not empty; choose another {option}, or pass --force to replace it")
        if not made_by_augshard(target, kind):
            raise OutputError(
                f"--force replaces only a folder an earlier `augshard export` made, and {path} is not one (no "
                f"{FACTS} made by it); choose another {option}, or remove it yourself"
            )
        return target
    if not stat.S_ISREG(mode):
        raise OutputError(f"{shown} is {_what(mode)}, not a regular file; augshard writes only files it can replace")
    if made_by_augshard(target, kind):
        return target
    others = [name for k, (name, _) in MARKS.items() if k not in (kind, "export") and made_by_augshard(target, k)]
    if others:
        raise OutputError(f"{shown} is {others[0]} augshard made, not {MARKS[kind][0]}; choose another {option}")
    if not force:
        raise OutputError(
            f"{shown} exists and is not {MARKS[kind][0]} augshard made; choose another {option}, or pass --force to "
            "replace it"
        )
    return target


SHARD_MANIFEST = re.compile(r"^manifest_shard\d+_of_\d+\.csv$")


def check_merged_manifest(
    output_root: str | Path,
    output_name: str,
    cache_dir: str | Path | None = None,
    log_dir: str | Path | None = None,
    force: bool = False,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """`--output-name`: the merged manifest is a file directly in the output root (its one file there), neither
    hidden (the locks, the temporaries) nor a shard manifest, and it passes `check_output` as a manifest."""
    root = Path(output_root)
    name = Path(output_name)
    if name.is_absolute() or len(name.parts) != 1 or name.name.startswith(".") or SHARD_MANIFEST.match(name.name):
        raise OutputError(
            f"--output-name {output_name}: the merged manifest is a file of its own directly in the output root "
            f"{root} (a plain name like manifest_final.csv, not a path, a hidden name or a shard manifest's)"
        )
    path = root / name
    protected = run_protected(root, cache_dir, log_dir, own=(path,), inputs=inputs)
    return check_output(path, "--output-name", protected, "manifest", force)


def check_evaluation_out(
    out: str | Path,
    output_root: str | Path,
    export_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
) -> Path:
    """evaluate's `--out` (its default included): evaluation.json in the output root or the export folder (or an
    evaluation of some combos' own evaluation-<hex>.json beside it) is the command's own file there; nothing else of
    the run, the export, the cache or the logs, nor their inputs."""
    own = Path(export_dir or output_root) / EVALUATION
    if Path(out).parent == own.parent and Path(out).name.startswith(f"{own.stem}-") and Path(out).suffix == ".json":
        own = Path(out)  # a subset's evaluation (evaluation.options.subset_name): never the full one
    protected = run_protected(output_root, cache_dir, own=(own,))
    if export_dir is not None:
        folders = (*protected.folders, ("export folder", Path(export_dir)))
        protected = Protected((*protected.inputs, *export_inputs(export_dir)), folders, protected.own)
    return check_output(out, "--out", protected, "evaluation", force)


def check_run_record(output_root: str | Path, force: bool = False) -> Path:
    """The output root's run.yaml, which every run writes: replaced when an earlier run wrote it (or with --force),
    never a file of the user's own of that name."""
    path = Path(output_root) / RUN_RECORD
    return check_output(path, "--output-root", Protected(), "run", force)
