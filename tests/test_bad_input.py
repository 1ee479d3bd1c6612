"""The bad-input matrix, beyond tests/test_cli_errors.py: each case a real file and the CLI run as a user runs it.

A user error exits 2 with one stderr line naming the problem and writes nothing; rows augshard cannot use are
skipped and counted in meta.json, and the run succeeds; a disk that fills while a combo is written fails that
combo (exit 1) and leaves neither a combo folder nor a temp file behind.

Tests run as root here, so permission bits stop nothing: an unreadable input is a directory or a dangling symlink,
and an unwritable output root is a path under /proc (or a read-only bind mount where `unshare -m` is allowed).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import CHEAP_RUN_ARGS, run_cli, sample_rows, tree, with_flag, write_csv

pytestmark = pytest.mark.slow

GOOD = CHEAP_RUN_ARGS
COMBO = "combo_1_nlp_keyboard"
ROOT = Path("data/processed/augsets")
# Files a successful one-combo run may add outside data/cache and logs/augment.
OUTPUTS = {
    "data",
    "data/processed",
    str(ROOT),
    str(ROOT / COMBO),
    str(ROOT / COMBO / "dataset.parquet"),
    str(ROOT / COMBO / "meta.json"),
    str(ROOT / "manifest_final.csv"),
    str(ROOT / "run.yaml"),
}


def write(d: Path, name: str, text: str | bytes) -> str:
    path = d / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return name


def in_csv(d: Path) -> str:
    write_csv(d / "in.csv", sample_rows(5))
    return "in.csv"


def parquet(d: Path, name: str, columns: dict[str, pa.Array | list]) -> str:
    pq.write_table(pa.table(columns), d / name)
    return name


def symlink(d: Path, name: str, target: str) -> str:
    (d / name).symlink_to(target)
    return name


def mkdir(d: Path, name: str) -> str:
    (d / name).mkdir()
    return name


KEYBOARD = "  - {id: nlp_keyboard, lib: nlpaug, kind: KeyboardAug, args: {aug_char_min: 1, aug_char_p: 0.05}}\n"
GHOST = "  - {id: nlp_ghost, lib: nlpaug, kind: GhostAug}\n"
IDS = ["a", "b"]

# case -> (build the files in the folder and return the CLI args, the text the one stderr line must hold)
CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    # --- unreadable input (as root, a directory or a dangling symlink: `chmod 000` stops nothing) --------------
    "input is a directory": (lambda d: ["--input", mkdir(d, "in.csv"), *GOOD], "input is a directory, not a file"),
    "input is a dangling symlink": (
        lambda d: ["--input", symlink(d, "in.csv", "gone.csv"), *GOOD],
        "input file not found: in.csv",
    ),
    "input is a corrupt parquet": (
        lambda d: ["--input", write(d, "in.parquet", "id,text\n1,hello\n"), *GOOD],
        "in.parquet: not a readable Parquet file",
    ),
    "utf-16 csv": (
        lambda d: ["--input", write(d, "in.csv", "id,text,evidence\r\nr1,Hi there.,Hi\r\n".encode("utf-16")), *GOOD],
        "in.csv: not UTF-8 text",
    ),
    # --- shape of the table ---------------------------------------------------------------------------------
    "parquet without rows": (
        lambda d: ["--input", parquet(d, "in.parquet", {c: pa.array([], pa.string()) for c in ("id", "text")}), *GOOD],
        "in.parquet: has a header but no data rows",
    ),
    "duplicate column names": (
        lambda d: ["--input", write(d, "in.csv", "id,text,evidence,text\nr1,Hi there.,Hi,x\n"), *GOOD],
        "duplicate column name(s) text",
    ),
    "row with too many fields": (
        lambda d: ["--input", write(d, "in.csv", "id,text,evidence\nr1,Hi there.,Hi\nr2,a,b,c,d\n"), *GOOD],
        "row 3 has 5 fields, the header has 3",
    ),
    "empty id": (
        lambda d: ["--input", write(d, "in.csv", "id,text,evidence\nr1,Hi there.,Hi\n,Bye now.,Bye\n"), *GOOD],
        "data row 2 has no value in id column 'id'",
    ),
    "duplicate ids in parquet": (
        lambda d: [
            "--input",
            parquet(
                d, "in.parquet", {"id": ["x", "x"], "text": ["One here.", "Two here."], "evidence": ["One", "Two"]}
            ),
            *GOOD,
        ],
        "id column 'id' has duplicate values ('x')",
    ),
    "every row unusable": (
        lambda d: ["--input", write(d, "in.csv", "id,text,evidence\nr1,,Hi\nr2,   ,Bye\n"), *GOOD],
        "in.csv: no usable rows (2 empty_text)",
    ),
    "parquet int text column": (
        lambda d: ["--input", parquet(d, "in.parquet", {"id": IDS, "text": [1, 2], "evidence": ["1", "2"]}), *GOOD],
        "column 'text' (--text-col) holds int64, not text",
    ),
    "parquet binary evidence column": (
        lambda d: [
            "--input",
            parquet(d, "in.parquet", {"id": IDS, "text": ["One here.", "Two here."], "evidence": [b"One", b"Two"]}),
            *GOOD,
        ],
        "column 'evidence' (--evidence-col) holds binary, not text",
    ),
    # --- config file and catalogue ----------------------------------------------------------------------------
    "unknown setting in config": (
        lambda d: ["--input", in_csv(d), "--config", write(d, "run.yaml", "seed: 1\nshards: 3\n"), *GOOD],
        "run.yaml: unknown setting 'shards'",
    ),
    "unknown key under input in config": (
        lambda d: [
            "--input",
            in_csv(d),
            "--config",
            write(d, "run.yaml", "input: {path: in.csv, criterion_col: label}\n"),
            *GOOD,
        ],
        "unknown key(s) under 'input': criterion_col",
    ),
    "config is a list": (
        lambda d: ["--input", in_csv(d), "--config", write(d, "run.yaml", "- seed: 1\n"), *GOOD],
        "run.yaml: expected a mapping of settings at the top level",
    ),
    "config inverted similarity range": (
        lambda d: [
            "--input",
            in_csv(d),
            "--config",
            write(d, "run.yaml", "quality_min_sim: 0.9\nquality_max_sim: 0.2\n"),
            *GOOD,
        ],
        "--quality-min-sim (0.9) is greater than --quality-max-sim (0.2)",
    ),
    "config zero variants": (
        lambda d: ["--input", in_csv(d), "--config", write(d, "run.yaml", "variants_per_sample: 0\n"), *GOOD],
        "--variants-per-sample must be at least 1 and at most 1,000, got 0",
    ),
    "unknown top-level key in catalogue": (
        lambda d: [
            "--input",
            in_csv(d),
            "--methods-config",
            write(d, "methods.yaml", "version: 2\nmethods:\n" + KEYBOARD),
            *GOOD,
        ],
        "methods.yaml: unknown top-level key(s) version",
    ),
    "catalogue not utf-8": (
        lambda d: [
            "--input",
            in_csv(d),
            "--methods-config",
            write(d, "methods.yaml", ("# caf\xe9\nmethods:\n" + KEYBOARD).encode("latin-1")),
            *GOOD,
        ],
        "methods.yaml: not UTF-8 text",
    ),
    "method id that would leave combo_*": (
        lambda d: [
            "--input",
            in_csv(d),
            "--methods-config",
            write(d, "methods.yaml", "methods:\n" + KEYBOARD + "  - {id: ../evil, lib: nlpaug, kind: KeyboardAug}\n"),
            *GOOD,
        ],
        "methods.yaml: method '../evil': id may hold only letters, digits, '_', '-' and '.', and may not start with",
    ),
    "only method's class does not exist": (
        lambda d: [
            "--input",
            in_csv(d),
            "--methods-config",
            write(d, "methods.yaml", "methods:\n" + KEYBOARD + GHOST),
            *with_flag("--methods", "nlp_ghost"),
        ],
        "none of the selected methods can run here (nlp_ghost: method 'nlp_ghost': nlpaug class 'GhostAug' is not",
    ),
    # --- flags --------------------------------------------------------------------------------------------------
    "negative similarity": (
        lambda d: ["--input", in_csv(d), *with_flag("--quality-min-sim", "-0.1")],
        "--quality-min-sim must be within [0, 1], got -0.1",
    ),
    "nan similarity": (
        lambda d: ["--input", in_csv(d), *with_flag("--quality-max-sim", "nan")],
        "--quality-max-sim must be within [0, 1], got nan",
    ),
    "negative shards": (
        lambda d: ["--input", in_csv(d), *with_flag("--num-shards", "-2")],
        "--num-shards must be at least 1 (or 'auto'), got -2",
    ),
    "fractional shards": (
        lambda d: ["--input", in_csv(d), *with_flag("--num-shards", "1.5")],
        "--num-shards: expected an integer, got '1.5'",
    ),
    "negative variants": (
        lambda d: ["--input", in_csv(d), *with_flag("--variants-per-sample", "-1")],
        "--variants-per-sample must be at least 1 and at most 1,000, got -1",
    ),
    # --- where outputs go ------------------------------------------------------------------------------------
    "output root below a file": (
        lambda d: ["--input", in_csv(d), "--output-root", write(d, "afile", "x") + "/out", *GOOD],
        "output root is not writable: afile/out (afile is a file, not a folder)",
    ),
    "output root under /proc": (
        lambda d: ["--input", in_csv(d), "--output-root", "/proc/augshard-out", *GOOD],
        "output root is not writable: /proc/augshard-out (cannot create entries in /proc",
    ),
    "log dir under /proc": (
        lambda d: ["--input", in_csv(d), "--log-dir", "/proc/augshard-logs", *GOOD],
        "--log-dir is not writable: /proc/augshard-logs",
    ),
    "cache dir under /proc": (
        lambda d: ["--input", in_csv(d), "--cache-dir", "/proc/augshard-cache", *GOOD],
        "--cache-dir is not writable: /proc/augshard-cache",
    ),
}


def assert_user_error(proc: subprocess.CompletedProcess, message: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and message in lines[0], proc.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: str, tmp_path: Path) -> None:
    build_args, message = CASES[case]
    args = build_args(tmp_path)
    before = tree(tmp_path)
    proc = run_cli("run", *args, cwd=tmp_path, timeout=120)
    assert_user_error(proc, message)
    assert tree(tmp_path) == before
    assert not any(Path("/proc").glob("augshard-*"))


def _can_bind_read_only(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    ok = subprocess.run(
        ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$1" "$1"', "sh", str(probe)], capture_output=True
    ).returncode
    probe.rmdir()
    return ok == 0


def test_output_root_on_a_read_only_mount(tmp_path: Path) -> None:
    """A real read-only filesystem (a bind mount in a private mount namespace), where root cannot write either."""
    if not _can_bind_read_only(tmp_path):
        pytest.skip("cannot make a read-only bind mount here (needs `unshare -m` and mount privileges)")
    args = ["--input", in_csv(tmp_path), "--output-root", "ro/out", *GOOD]
    (tmp_path / "ro").mkdir()
    before = tree(tmp_path)
    script = 'mount --bind -o ro ro ro && shift && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", "x", sys.executable, "-m", "augshard", "run", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert_user_error(proc, "output root is not writable: ro/out (cannot create entries in ro: Read-only file system)")
    assert tree(tmp_path) == before


# --- rows augshard cannot use: skipped, counted, and the run goes on ------------------------------------------


def run_ok(cwd: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    """Run to success; only the combo, the manifest, caches and logs may appear. Returns the combo's meta.json."""
    before = tree(cwd)
    proc = run_cli("run", *args, "--no-live", cwd=cwd, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    added = {p for p in tree(cwd) - before if not p.startswith(("data/cache", "logs"))}
    assert added == OUTPUTS, added
    return proc, json.loads((cwd / ROOT / COMBO / "meta.json").read_text(encoding="utf-8"))


def output_rows(cwd: Path) -> list[dict]:
    return pq.read_table(cwd / ROOT / COMBO / "dataset.parquet").to_pylist()


def manifest(cwd: Path) -> list[dict[str, str]]:
    with open(cwd / ROOT / "manifest_final.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# Whatever the method draws, these bounds accept any changed variant: the tests check rows, not the filter.
ACCEPT_ALL = ["--quality-min-sim", "0", "--quality-max-sim", "1"]


def test_empty_and_missing_text_in_csv_is_skipped_and_counted(tmp_path: Path) -> None:
    records = [["id", "text", "evidence"], *([r["id"], r["text"], r["evidence"]] for r in sample_rows(2))]
    records += [["e1", "", "Hi"], ["e2", "   \t ", "Hi"], ["e3"]]  # "e3": a short row, no text field at all
    records += [["v1", "A text with no evidence.", ""], ["v2", "A text with blank evidence.", "  "]]
    with open(tmp_path / "in.csv", "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(records)
    _, meta = run_ok(tmp_path, "--input", "in.csv", *GOOD, *ACCEPT_ALL)
    assert meta["rows_input"] == 2
    assert meta["rows_skipped"] == 5
    assert meta["rows_skipped_by_reason"] == {"empty_text": 3, "empty_evidence": 2}
    assert {r["id"] for r in output_rows(tmp_path)} == {"r001", "r002"}
    assert manifest(tmp_path)[0]["rows_skipped"] == "5"


def test_nan_and_null_text_in_parquet_is_skipped_and_counted(tmp_path: Path) -> None:
    import pandas as pd

    good = sample_rows(2)
    frame = pd.DataFrame(
        {
            "id": ["r001", "r002", "n1", "n2", "n3", "n4"],
            "text": [good[0]["text"], good[1]["text"], math.nan, None, "", "A text whose evidence is NaN."],
            "evidence": [good[0]["evidence"], good[1]["evidence"], "x", "y", "z", math.nan],
        }
    )
    frame.to_parquet(tmp_path / "in.parquet")
    assert pq.read_table(tmp_path / "in.parquet").column("text").null_count == 2  # pandas' NaN is a null
    _, meta = run_ok(tmp_path, "--input", "in.parquet", *GOOD, *ACCEPT_ALL)
    assert meta["rows_skipped_by_reason"] == {"empty_text": 3, "empty_evidence": 1}
    assert meta["rows_skipped"] == 4 and meta["rows_input"] == 2
    assert {r["id"] for r in output_rows(tmp_path)} == {"r001", "r002"}


def test_evidence_not_in_its_text_is_skipped_and_counted(tmp_path: Path) -> None:
    rows = sample_rows(3)
    rows[1]["evidence"] = "Quantum flux capacitors hum at midnight in Reykjavik."
    write_csv(tmp_path / "in.csv", rows)
    _, meta = run_ok(tmp_path, "--input", "in.csv", *GOOD, *ACCEPT_ALL)
    assert meta["rows_skipped_by_reason"] == {"evidence_not_found": 1}
    assert meta["rows_skipped"] == 1 and meta["rows_input"] == 2
    assert {r["id"] for r in output_rows(tmp_path)} == {rows[0]["id"], rows[2]["id"]}


def test_a_one_megabyte_text_changes_only_its_evidence(tmp_path: Path) -> None:
    filler = "Filler sentence number one goes on and on. " * 12000
    evidence = "The battery lasted three full days of heavy use."
    text = filler + evidence + " " + filler
    assert len(text.encode()) > 1_000_000
    write_csv(tmp_path / "in.csv", [{"id": "big", "text": text, "evidence": evidence}])
    _, meta = run_ok(tmp_path, "--input", "in.csv", *GOOD, *ACCEPT_ALL)
    assert meta["rows_input"] == 1 and meta["rows_skipped"] == 0
    out = output_rows(tmp_path)
    assert out, meta
    for row in out:
        assert row["evidence_match"] == "exact" and row["evidence_original"] == evidence
        assert row["evidence"] != evidence
        assert row["text"] == filler + row["evidence"] + " " + filler


def test_quotes_commas_and_newlines_round_trip_exactly(tmp_path: Path) -> None:
    rows = [
        {
            "id": 'q"1,',
            "note": 'She said "no, thanks",\nthen left.\r\nTwo lines, "quoted".',
            "text": 'Intro, with "quotes".\nHe said "hi, there", then left the shop.\r\nOutro, "done".',
            "evidence": 'He said "hi, there", then left the shop.',
        },
        {
            "id": "q2",
            "note": "",
            "text": "Line one, with a comma.\n\nThe café's espresso was bitter, thin and cold today.\n",
            "evidence": "The café's espresso was bitter, thin and cold today.",
        },
    ]
    write_csv(tmp_path / "in.csv", rows)
    _, meta = run_ok(tmp_path, "--input", "in.csv", *GOOD, *ACCEPT_ALL)
    assert meta["rows_skipped"] == 0
    out = output_rows(tmp_path)
    assert {r["id"] for r in out} == {r["id"] for r in rows}
    by_id = {r["id"]: r for r in rows}
    for row in out:
        src = by_id[row["id"]]
        start = src["text"].index(src["evidence"])
        assert row["note"] == src["note"]
        assert row["evidence_original"] == src["evidence"] and row["evidence_match"] == "exact"
        assert row["text"] == src["text"][:start] + row["evidence"] + src["text"][start + len(src["evidence"]) :]


def test_a_method_class_that_does_not_exist_is_unavailable_and_the_rest_run(tmp_path: Path) -> None:
    write(tmp_path, "methods.yaml", "methods:\n" + KEYBOARD + GHOST)
    args = ["--input", in_csv(tmp_path), "--methods-config", "methods.yaml", "--combo-mode", "single"]
    # Reached through a pattern: reported and skipped, the others run.
    proc, meta = run_ok(tmp_path, *args, *with_flag("--methods", "nlp_*"))
    assert "warning: method nlp_ghost is unavailable" in proc.stderr and "GhostAug" in proc.stderr
    assert "unavailable method nlp_ghost" in proc.stdout  # the run's summary says so too
    assert meta["rows"] > 0
    status = {m["methods"]: m["status"] for m in manifest(tmp_path)}
    assert status == {"nlp_keyboard": "ok", "nlp_ghost": "unavailable"}


def test_a_method_named_by_its_id_that_cannot_run_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "methods.yaml", "methods:\n" + KEYBOARD + GHOST)
    args = ["--input", in_csv(tmp_path), "--methods-config", "methods.yaml", "--combo-mode", "single"]
    proc = run_cli("run", *args, *with_flag("--methods", "nlp_keyboard,nlp_ghost"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "method nlp_ghost cannot run here" in proc.stderr and "GhostAug" in proc.stderr
    assert not (tmp_path / "data").exists()


# --- a disk that fills up while a combo is written -------------------------------------------------------------

FAULT = '''"""Injected by tests/test_bad_input.py: the disk fills up at one ParquetWriter call."""
import errno
import os

_where = os.environ.get("AUGSHARD_TEST_ENOSPC")
if _where:
    import pyarrow.parquet as pq

    def _disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    setattr(pq.ParquetWriter, _where, _disk_full)
'''


@pytest.mark.parametrize("where", ["write_table", "close"])
def test_disk_full_fails_the_combo_and_leaves_nothing_half_written(where: str, tmp_path: Path) -> None:
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(FAULT, encoding="utf-8")
    cwd = tmp_path / "work"
    cwd.mkdir()
    args = ["--input", in_csv(cwd), *GOOD]
    before = tree(cwd)
    env = {"PYTHONPATH": str(inject), "AUGSHARD_TEST_ENOSPC": where}
    proc = run_cli("run", *args, "--no-live", cwd=cwd, timeout=300, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("failed ")]
    assert len(failed) == 1 and failed[0].startswith(f"failed {COMBO}: "), proc.stdout
    assert "No space left on device" in failed[0], failed[0]
    root = cwd / ROOT
    assert not (root / COMBO).exists()
    tmp = root / ".augshard-tmp"
    assert not tmp.exists() or not any(tmp.iterdir())
    assert {m["status"] for m in manifest(cwd)} == {"failed"}
    added = {p for p in tree(cwd) - before if not p.startswith(("data/cache", "logs"))}
    assert added <= {"data", "data/processed", *(str(ROOT / name) for name in ("", "manifest_final.csv", "run.yaml"))}


# --- an input column named like one augshard adds ---------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_column_named_like_an_added_one_is_refused_naming_the_rename(tmp_path: Path, dry_run: bool) -> None:
    rows = [{**r, "row_key": f"k{n}"} for n, r in enumerate(sample_rows(5))]
    write_csv(tmp_path / "in.csv", rows)
    before = tree(tmp_path)
    proc = run_cli("run", "--input", "in.csv", *GOOD, *(["--dry-run"] if dry_run else []), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "column 'row_key'" in lines[0] and "rename it in the input (e.g. to 'input_row_key')" in lines[0]
    assert tree(tmp_path) == before  # nothing written: no output root, no logs


def test_a_reserved_id_column_is_told_the_flag_to_pass_with_its_new_name(tmp_path: Path) -> None:
    rows = [{"similarity": r["id"], "text": r["text"], "evidence": r["evidence"]} for r in sample_rows(5)]
    write_csv(tmp_path / "in.csv", rows)
    proc = run_cli("run", "--input", "in.csv", *with_flag("--id-col", "similarity"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "column 'similarity'" in proc.stderr and "and pass --id-col input_similarity" in proc.stderr
    assert not (tmp_path / "data").exists()


# --- a megabyte in one cell ---------------------------------------------------------------------------------------


def test_a_megabyte_cell_under_char_ratio_finishes_with_heartbeats_and_says_why_in_the_shard_log(
    tmp_path: Path,
) -> None:
    """The whole text augmented (no evidence column) and scored by char_ratio: difflib's ratio of two 1 MB texts
    takes minutes and, compiled, holds the GIL (no heartbeat meanwhile). Bounded, the run takes seconds more than
    the method's own calls, the shard log names the bound, and the heartbeat never pauses."""
    from augshard.events.stream import read_events

    big = " ".join(r["text"] for r in sample_rows(50))
    rows = [{"id": r["id"], "text": r["text"]} for r in sample_rows(4)]
    rows[1]["text"] = ((big + " ") * 200)[:1_000_000]
    write_csv(tmp_path / "in.csv", rows)
    args = ["--input", "in.csv", "--text-col", "text", "--id-col", "id", "--methods", "nlp_keyboard", "--no-live",
            "--quality-metric", "char_ratio", "--num-shards", "1", "--variants-per-sample", "1"]  # fmt: skip
    proc = run_cli("run", *args, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (tmp_path / "logs/augment/shard_0_of_1.log").read_text(encoding="utf-8")
    assert f"{COMBO}: 3 char_ratio score(s) of a text over 10,000 characters bounded in time" in log, log
    stamps = [e.ts for e in read_events(tmp_path / "logs/augment/shard_0_of_1.events.jsonl")]
    assert max(b - a for a, b in zip(stamps, stamps[1:], strict=False)) < 10.0
    meta = json.loads((tmp_path / ROOT / COMBO / "meta.json").read_text(encoding="utf-8"))
    assert meta["rows_input"] == 4
