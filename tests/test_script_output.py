"""Output for scripts: every command's `--format tsv` parsed by `csv` with typed values (whole integers, seconds as
numbers, states as words, no glyphs), one kind of row on stdout, and every `note:` and `warning:` on stderr in
every format (issue 22, point 4)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from helpers import REPO, beyond_probes, run_cli, sample_rows, write_csv

from augshard.cli.catalogue import BENCH_TSV, METHOD_COLUMNS
from augshard.cli.export import EXPORT_TSV
from augshard.events.monitor import STATUS_TSV
from augshard.runner.dry_run import DRY_RUN_TSV
from augshard.runner.summary import SUMMARY_KEYS

pytestmark = pytest.mark.slow

GLYPHS = "✓▶✗⏳⏹☠"
CATALOGUE = (
    "methods:\n"
    "  - {id: nlp_keyboard, lib: nlpaug, kind: KeyboardAug, args: {aug_char_min: 1, aug_char_p: 0.05}}\n"
    "  - {id: nlp_ghost, lib: nlpaug, kind: GhostAug}\n"
)
# A pattern reaches the ghost: it is a warning (unavailable), not an error; --global-dedupe prints a note.
RUN = ("run", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--id-col", "id",
       "--methods-config", "methods.yaml", "--methods", "nlp_*", "--combo-mode", "single", "--quality-metric",
       "char_ratio", "--num-shards", "1", "--keep-shards", "--global-dedupe")  # fmt: skip
NOTE = "note: --global-dedupe"
WARNING = "warning: method nlp_ghost is unavailable"


def tsv(stdout: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a TSV document; every line has the header's number of fields."""
    lines = list(csv.reader(io.StringIO(stdout), delimiter="\t"))
    assert lines, "no TSV on stdout"
    header, body = lines[0], lines[1:]
    assert all(len(row) == len(header) for row in body), stdout
    assert not any(g in stdout for g in GLYPHS) and "note:" not in stdout and "warning:" not in stdout, stdout
    return header, [dict(zip(header, row, strict=True)) for row in body]


def ints(rows: list[dict[str, str]], *cols: str) -> None:
    for row in rows:
        for col in cols:
            int(row[col])  # no thousands separator, no "-"


def floats(rows: list[dict[str, str]], *cols: str, empty: bool = False) -> None:
    for row in rows:
        for col in cols:
            if not (empty and row[col] == ""):
                float(row[col])  # seconds and fractions as numbers: no "2m43s", no "%"


@pytest.fixture(scope="module")
def cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scripts")
    write_csv(folder / "in.csv", sample_rows(6))
    (folder / "methods.yaml").write_text(CATALOGUE, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def ran(cwd: Path) -> subprocess.CompletedProcess:
    proc = run_cli(*RUN, "--format", "tsv", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_run_tsv_is_one_typed_row_per_shard_and_the_rest_is_on_stderr(ran: subprocess.CompletedProcess) -> None:
    header, rows = tsv(ran.stdout)
    assert header == list(SUMMARY_KEYS) and len(rows) == 1
    ints(rows, "shard", "combos", "ok", "resumed", "failed", "rows")
    floats(rows, "duration_s")
    assert rows[0]["outcome"] == "done" and rows[0]["log"] == "logs/augment/shard_0_of_1.log"
    assert NOTE in ran.stderr and WARNING in ran.stderr and "Total rows:" in ran.stderr


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_run_notes_and_warnings_go_to_stderr_in_every_format(
    cwd: Path, ran: subprocess.CompletedProcess, fmt: str
) -> None:
    proc = run_cli(*RUN, "--format", fmt, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert NOTE in proc.stderr and WARNING in proc.stderr
    assert "note:" not in proc.stdout and "warning:" not in proc.stdout
    if fmt == "json":
        assert json.loads(proc.stdout)["exit_code"] == 0
    else:
        assert "Total rows:" in proc.stdout and "shards" in proc.stdout


def test_dry_run_tsv_has_combo_rows_only_and_its_summary_on_stderr(cwd: Path, ran: subprocess.CompletedProcess) -> None:
    proc = run_cli(*RUN, "--dry-run", "--format", "tsv", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    header, rows = tsv(proc.stdout)
    assert header == list(DRY_RUN_TSV)
    assert {r["action"]: r["combo_dir"] for r in rows} == {
        "skip": "combo_1_nlp_keyboard",
        "unavailable": "combo_1_nlp_ghost",
    }
    assert "shard total" not in proc.stdout and "shard total" not in proc.stderr
    ints(rows, "k")
    ints([r for r in rows if r["action"] != "unavailable"], "shard")
    floats(rows, "cost", empty=True)
    assert "dry run: nothing was written" in proc.stderr and WARNING in proc.stderr and NOTE in proc.stderr
    table = run_cli(*RUN, "--dry-run", cwd=cwd)
    assert "shard total: 1 combo" in table.stdout and "dry run: nothing was written" in table.stdout
    assert "note:" not in table.stdout and WARNING in table.stderr


def test_monitor_tsv_is_typed(cwd: Path, ran: subprocess.CompletedProcess) -> None:
    proc = run_cli("monitor", "--format", "tsv", cwd=cwd)
    assert proc.returncode == 0 and beyond_probes(proc.stderr) == [], proc.stderr
    header, rows = tsv(proc.stdout)
    assert header == list(STATUS_TSV) and [r["state"] for r in rows] == ["done"]
    ints(rows, "shard", "combos_total", "combos_done", "combos_failed", "rows", "rejected", "pid")
    floats(rows, "fraction", "duration_s")
    assert float(rows[0]["fraction"]) == 1.0 and "%" not in proc.stdout


def test_verify_tsv_lists_problems_and_its_counts_go_to_stderr(cwd: Path, ran: subprocess.CompletedProcess) -> None:
    proc = run_cli("verify", "--format", "tsv", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    header, rows = tsv(proc.stdout)
    assert header == ["problem"] and rows == []
    assert "OK: the manifest and the datasets agree" in proc.stderr


def test_merge_tsv_is_one_typed_value_per_field(cwd: Path, ran: subprocess.CompletedProcess) -> None:
    proc = run_cli("merge", "--keep-shards", "--format", "tsv", cwd=cwd)
    assert proc.returncode == 0 and beyond_probes(proc.stderr) == [], proc.stderr
    header, rows = tsv(proc.stdout)
    values = {r["field"]: r["value"] for r in rows}
    assert header == ["field", "value"]
    for field in ("combos", "ok", "failed", "unavailable", "rows", "min_rows", "max_rows", "interrupted", "per_k.1"):
        int(values[field])
    float(values["avg_rows"])
    assert values["combos"] == "2" and values["unavailable"] == "1" and values["per_k.1"] == "2"


def test_export_tsv_is_typed_and_its_summary_is_on_stderr(cwd: Path, ran: subprocess.CompletedProcess) -> None:
    proc = run_cli("export", "--to", "exported", "--format", "tsv", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    header, rows = tsv(proc.stdout)
    assert header == list(EXPORT_TSV) and [r["methods"] for r in rows] == ["nlp_keyboard"]
    ints(rows, "k", "rows", "kept", "exact_duplicates", "near_duplicates", "label_flips")
    assert "exported " in proc.stderr and "card: " in proc.stderr


def test_methods_tsv_and_its_notes(cwd: Path) -> None:
    proc = run_cli("methods", "--methods-config", "methods.yaml", "--format", "tsv", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    header, rows = tsv(proc.stdout)
    assert header == list(METHOD_COLUMNS)
    assert {r["id"]: r["status"] for r in rows} == {"nlp_keyboard": "ok", "nlp_ghost": "unavailable"}
    # The original tool's catalogue is read with notes: on stderr, with a table as with TSV.
    original = str(REPO / "tests/fixtures/original_augment_methods.yaml")
    table = run_cli("methods", "--methods-config", original, "--no-check", cwd=cwd)
    assert table.returncode == 0, table.stderr
    assert "note:" in table.stderr and "note:" not in table.stdout and "nlp_keyboard" in table.stdout


def test_methods_bench_tsv_is_typed(cwd: Path) -> None:
    proc = run_cli("methods", "--bench", "--methods", "nlp_keyboard", "--rows", "3", "--out", "costs.json",
                   "--format", "tsv", cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    header, rows = tsv(proc.stdout)
    assert header == list(BENCH_TSV) and [r["id"] for r in rows] == ["nlp_keyboard"]
    floats(rows, "rows_per_second", "seconds_per_row", "relative_cost")
    ints(rows, "errors")
    assert "costs: costs.json" in proc.stderr and (cwd / "costs.json").is_file()
