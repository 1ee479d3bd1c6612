"""The CLI as scripts and pipes see it: whole values on one line off a terminal, `--format tsv|json` checked against
the files on disk, method patterns, the shard count, clean stderr, honest states, and the original tool's names."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import REPO, beyond_probes, run_cli, sample_rows, write_csv

from augshard.events.status import fold
from augshard.events.stream import ShardDone, read_events

pytestmark = pytest.mark.slow

# Long ids, so that an 80-column table would have to wrap or cut them; a narrow COLUMNS makes sure nothing does.
METHODS = "nlp_randword_delete,nlp_wordnet_syn,nlp_randchar_swap"
NARROW = {"COLUMNS": "50"}
BASE = ("--text-col", "text", "--evidence-col", "evidence", "--id-col", "id", "--quality-metric", "char_ratio")


def cli(*args: str, cwd: Path, **kw: object) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, env=NARROW, **kw)  # type: ignore[arg-type]


def whole_on_a_line(value: str, text: str) -> bool:
    """`value` appears on some line as a whole whitespace-separated word (not cut, not folded)."""
    return any(value in line.split() for line in text.splitlines())


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("piped")
    write_csv(cwd / "in.csv", sample_rows(12))
    proc = cli("run", "--input", "in.csv", *BASE, "--methods", METHODS, "--keep-shards", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd, proc


def disk_rows(cwd: Path) -> dict[str, int]:
    root = cwd / "data/processed/augsets"
    return {p.parent.name: pq.read_metadata(p).num_rows for p in root.glob("combo_*/dataset.parquet")}


def test_a_piped_run_prints_whole_paths_and_no_warning(done: tuple[Path, subprocess.CompletedProcess]) -> None:
    cwd, proc = done
    # No resource-tracker or library warning: stderr holds at most the probes of methods this machine had not
    # probed yet (the suite's probe cache is shared by its tests, so whether they run depends on the order).
    assert beyond_probes(proc.stderr) == []
    cores = os.cpu_count() or 1
    shards = min(cores, 6)
    assert f"6 combos on {shards} shard" in proc.stdout and f"auto: {cores} CPU core" in proc.stdout
    for i in range(shards):
        assert whole_on_a_line(f"logs/augment/shard_{i}_of_{shards}.log", proc.stdout), proc.stdout
    assert "┃" not in proc.stdout  # no box drawing off a terminal


def test_methods_piped_lists_every_id_whole(done: tuple[Path, subprocess.CompletedProcess]) -> None:
    cwd, _ = done
    proc = cli("methods", "--no-check", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    ids = [line.split()[0] for line in proc.stdout.splitlines()[2:]]
    assert len(ids) == 28 and "nlp_cwe_insert_roberta" in ids and "ta_wordswap_homoglyph" in ids
    grep = [line for line in proc.stdout.splitlines() if "nlp_keyboard" in line]
    assert len(grep) == 1 and grep[0].split()[:4] == ["nlp_keyboard", "nlpaug", "KeyboardAug", "not"]


def test_methods_json_with_a_pattern_selection(done: tuple[Path, subprocess.CompletedProcess]) -> None:
    cwd, _ = done
    proc = cli("methods", "--methods", "nlp_rand*", "--exclude-methods", "nlp_randword_swap", "--format", "json",
               cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    expected = ["nlp_randchar_del", "nlp_randchar_ins", "nlp_randchar_sub", "nlp_randchar_swap",
                "nlp_randword_delete", "nlp_randword_sub"]  # fmt: skip
    assert [m["id"] for m in doc["methods"]] == expected
    assert {m["status"] for m in doc["methods"]} == {"ok"} and doc["available"] == doc["total"] == 6
    assert doc["catalogue"].endswith("augment_methods.yaml")


def test_dry_run_piped_tsv_and_json_agree_with_the_run(done: tuple[Path, subprocess.CompletedProcess]) -> None:
    cwd, _ = done
    args = ("run", "--dry-run", "--input", "in.csv", *BASE, "--methods", METHODS)
    plain = cli(*args, cwd=cwd)
    assert plain.returncode == 0, plain.stderr
    on_disk = disk_rows(cwd)
    assert len(on_disk) == 6
    for combo_dir in on_disk:
        assert whole_on_a_line(combo_dir, plain.stdout), plain.stdout
    assert f"methods (3): {', '.join(sorted(METHODS.split(',')))}" in plain.stdout
    tsv = cli(*args, "--format", "tsv", cwd=cwd)
    rows = list(csv.DictReader(io.StringIO(tsv.stdout), delimiter="\t"))
    assert {r["combo_dir"] for r in rows} == set(on_disk)
    assert {r["action"] for r in rows} == {"skip"}
    doc = json.loads(cli(*args, "--format", "json", cwd=cwd).stdout)
    assert {c["combo_dir"] for c in doc["combos"]} == set(on_disk)
    assert doc["to_run"] == 0 and doc["complete"] == 6 and doc["methods"] == sorted(METHODS.split(","))


def test_monitor_verify_merge_json_match_the_disk(done: tuple[Path, subprocess.CompletedProcess]) -> None:
    cwd, _ = done
    on_disk = disk_rows(cwd)
    total = sum(on_disk.values())
    snap = cli("monitor", cwd=cwd)
    assert snap.returncode == 0 and "Overall:" in snap.stdout and "┃" not in snap.stdout
    mon = json.loads(cli("monitor", "--format", "json", cwd=cwd).stdout)
    assert {s["state"] for s in mon["shards"]} == {"done"} and mon["rows"] == total
    ver = json.loads(cli("verify", "--format", "json", cwd=cwd).stdout)
    assert ver["ok"] is True and ver["rows"] == total and ver["datasets"] == 6 and ver["problems"] == []
    merged = cli("merge", "--keep-shards", "--format", "json", cwd=cwd)
    doc = json.loads(merged.stdout)
    assert doc["rows"] == total and doc["combos"] == doc["ok"] == 6 and doc["per_k"] == {"1": 3, "2": 3}
    with open(cwd / doc["manifest"], newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert {m["combo_dir"]: int(m["rows"]) for m in manifest} == on_disk
    tsv = cli("merge", "--keep-shards", "--format", "tsv", cwd=cwd)
    assert dict(line.split("\t") for line in tsv.stdout.splitlines()[1:])["rows"] == str(total)


def test_run_json_puts_progress_on_stderr_and_one_document_on_stdout(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(8))
    proc = cli("run", "--input", "in.csv", *BASE, "--methods", "nlp_keyboard", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "augshard: 1 combo on 1 shard (auto: " in proc.stderr and "Overall:" in proc.stderr
    assert doc["summary"]["rows"] == sum(disk_rows(tmp_path).values()) and doc["exit_code"] == 0
    assert doc["num_shards"] == 1 and doc["shards"][0]["log"] == "logs/augment/shard_0_of_1.log"


def test_patterns_that_match_nothing_and_powersets_are_refused(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(4))
    args = ("run", "--dry-run", "--input", "in.csv", *BASE)
    proc = cli(*args, "--methods", "nlp_key*,zz_*", cwd=tmp_path)
    assert proc.returncode == 2 and "pattern 'zz_*' matches no method" in proc.stderr
    proc = cli(*args, "--methods", "all", "--combo-mode", "all", cwd=tmp_path)
    assert proc.returncode == 2 and "--combo-mode all makes 268,435,455 combos" in proc.stderr
    assert "--confirm-powerset" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    ok = cli(*args, "--methods", "nlp_keyboard,nlp_ocr,nlp_spelling", "--combo-mode", "all", "--confirm-powerset",
             "--format", "json", cwd=tmp_path)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(ok.stdout)["combos"]) == 7
    assert not (tmp_path / "data").exists()


@pytest.mark.serial  # a signal at a moment of the run
def test_a_stopped_run_is_stopped_not_failed_and_prints_no_warning(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(200))
    (tmp_path / "cfg.yaml").write_text("chunk_size: 2\n", encoding="utf-8")  # many chunks: a run of some seconds
    cmd = [sys.executable, "-m", "augshard", "run", "--config", "cfg.yaml", "--input", "in.csv", *BASE, "--methods",
           "nlp_keyboard,nlp_randword_delete,nlp_spelling", "--num-shards", "2", "--no-live"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env={**os.environ, **NARROW}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    streams = [tmp_path / f"logs/augment/shard_{i}_of_2.events.jsonl" for i in (0, 1)]
    deadline = time.time() + 120
    while not all(any(e.kind == "progress" and e.rows_done > 0 for e in read_events(p)) for p in streams):
        assert time.time() < deadline and proc.poll() is None, "the run never got going"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert beyond_probes(err) == []
    stopped = 0
    for i, path in enumerate(streams):
        events = read_events(path)
        last = events[-1]
        assert isinstance(last, ShardDone) and not any(e.kind == "combo_failed" for e in events)
        # A shard that had finished its combos before the signal is done; every other one is stopped.
        assert fold(i, events).state == ("stopped" if last.interrupted else "done")
        stopped += last.interrupted
    assert stopped >= 1
    assert f"| {stopped} stopped" in out and "| 0 failed" in out
    assert "interrupted: " in out and ("1 combo complete" in out or "combos complete" in out)
    snap = cli("monitor", cwd=tmp_path)
    assert snap.stdout.count("⏹ stopped") == stopped, snap.stdout


def test_a_low_yield_is_explained_in_the_summary_and_meta(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(12))
    proc = cli("run", "--input", "in.csv", *BASE, "--methods", "ta_wordswap_qwerty", "--quality-max-sim", "0.9",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = json.loads((tmp_path / "data/processed/augsets/combo_1_ta_wordswap_qwerty/meta.json").read_text())
    why = meta["variants"]["explanation"]
    assert meta["variants"]["asked"] == 24 and meta["variants"]["kept"] * 2 < 24
    assert meta["variants"]["above_max_sim"] > meta["variants"]["below_min_sim"]
    assert "above max_sim 0.9" in why and "raise --quality-max-sim (now 0.9)" in why
    assert f"low yield combo_1_ta_wordswap_qwerty: {why}" in " ".join(proc.stdout.split())


def test_the_original_tools_catalogue_and_flags_run_as_they_are(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(10))
    original = REPO / "tests/fixtures/original_augment_methods.yaml"
    proc = cli("run", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--label-col",
               "label", "--criterion-col", "label", "--methods-yaml", str(original), "--combo-mode", "singletons",
               "--methods", "nlp_keyboard,ta_char_rand_del", "--num-proc", "2", "--save-format", "csv",
               "--disk-cache", "cache/aug.db", "--global-dedupe", "--quality-metric", "char_ratio",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ta_char_rand_del" in proc.stdout and "read as WordSwapRandomCharacterDeletion" in proc.stderr
    assert "augshard export" in proc.stderr  # --global-dedupe's note says where duplicates are dropped
    root = tmp_path / "data/processed/augsets"
    for name in ("combo_1_nlp_keyboard", "combo_1_ta_char_rand_del"):
        table = pq.read_table(root / name / "dataset.parquet")
        with open(root / name / "dataset.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["evidence"] for r in rows] == table.column("evidence").to_pylist()
        assert table.num_rows > 0 or name == "combo_1_ta_char_rand_del"  # one deleted letter is often > 0.95
        assert set(table.column("label").to_pylist()) <= {"positive", "negative", "neutral", "mixed"}
    assert (tmp_path / "cache/aug.db").is_file() and not list((tmp_path / "data/cache").glob("augment_shard*.db"))
    assert "2 shards" in proc.stdout
    assert cli("verify", cwd=tmp_path).returncode == 0


def test_the_quality_scope_is_recorded_in_meta_and_the_report(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(8))
    args = ("run", "--input", "in.csv", *BASE, "--methods", "nlp_keyboard,nlp_randword_delete")
    each = cli(*args, "--quality-scope", "each-step", cwd=tmp_path)
    assert each.returncode == 0, each.stdout + each.stderr
    metas = [json.loads(p.read_text()) for p in (tmp_path / "data/processed/augsets").glob("combo_*/meta.json")]
    assert len(metas) == 3 and {m["quality"]["scope"] for m in metas} == {"each-step"}
    assert cli("report", "--out", "r.html", cwd=tmp_path).returncode == 0
    assert "(each-step scope)" in (tmp_path / "r.html").read_text(encoding="utf-8")
    # The scope is part of the fingerprint: the same run with the final scope recomputes every combo.
    final = cli(*args, "--dry-run", cwd=tmp_path)
    assert ": 3 to run, 0 already complete" in final.stdout
    bad = cli(*args, "--quality-scope", "each", cwd=tmp_path)
    assert bad.returncode == 2 and "--quality-scope must be one of final, each-step, got 'each'" in bad.stderr


def test_shell_completion_offers_commands_and_method_ids(tmp_path: Path) -> None:
    """What bash's completion script asks the installed `augshard`: commands, then ids after the last comma."""
    exe = Path(sys.executable).with_name("augshard")

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_AUGSHARD_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - 1)}  # fmt: skip
        proc = subprocess.run([str(exe)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert complete("augshard ex") == ["export"]
    assert complete("augshard run --methods nlp_key") == ["nlp_keyboard"]
    assert complete("augshard run --methods nlp_keyboard,ta_char_rand_") == [
        "nlp_keyboard,ta_char_rand_del", "nlp_keyboard,ta_char_rand_ins", "nlp_keyboard,ta_char_rand_swap",
    ]  # fmt: skip
    assert complete("augshard methods --methods al") == ["all"]


def test_dropping_label_flips_of_a_run_without_a_label_check_is_refused(
    done: tuple[Path, subprocess.CompletedProcess],
) -> None:
    cwd, _ = done
    proc = cli("export", "--to", "flips", "--drop-label-flips", cwd=cwd)
    assert proc.returncode == 2 and not (cwd / "flips").exists()
    assert proc.stderr.strip() == (
        "error: --drop-label-flips: this run has no label check; run it with --label-col COL first"
    )


def test_json_output_is_valid_json_whatever_the_numbers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """JSON has no NaN or infinity: they go out as null, never as Python's `NaN` that no parser reads."""
    from augshard.events.output import write_json

    write_json({"cost": float("nan"), "rows_per_second": [float("inf"), -float("inf"), 1.5], "n": {"x": 2}})
    doc = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))
    assert doc == {"cost": None, "rows_per_second": [None, None, 1.5], "n": {"x": 2}}
    # A catalogue with such a cost is one line, not a listing that scripts cannot read.
    path = tmp_path / "conf.yaml"
    path.write_text("methods:\n  - {id: m, lib: nlpaug, kind: KeyboardAug, cost: .nan}\n", encoding="utf-8")
    proc = run_cli("methods", "--methods-config", str(path), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 2 and "'cost' must be a positive number" in proc.stderr and not proc.stdout


def test_the_plan_header_says_the_range_and_what_is_augmented_and_warns_of_methods_out_of_range(
    tmp_path: Path,
) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(6))
    args = ("run", "--input", "in.csv", "--text-col", "text", "--methods", "ta_wordswap_qwerty,nlp_randword_delete",
            "--quality-metric", "char_ratio", "--dry-run")  # fmt: skip
    whole = cli(*args, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert (
        "similarity: char_ratio; kept in [0.4, 0.98] (final scope; char_ratio's default range); the whole text is "
        "augmented" in whole.stdout
    )
    # One changed character of a sentence of L characters scores about 1 - 1/L: said before the run, with numbers.
    warned = [line for line in whole.stderr.splitlines() if line.startswith("warning: method ")]
    assert warned == [
        "warning: method ta_wordswap_qwerty changes one character per edit (its probe): that scores under max_sim "
        "0.98 (char_ratio) only on texts of 50 characters or fewer, and 0 of 6 input texts are; expect almost none "
        "of its variants to be kept (raise --quality-max-sim)"
    ]
    wide = cli(*args, "--evidence-col", "evidence", "--quality-max-sim", "0.999", cwd=tmp_path)
    assert wide.returncode == 0, wide.stderr
    assert "kept in [0.4, 0.999] (final scope)" in wide.stdout and "whole text" not in wide.stdout
    assert "warning:" not in wide.stderr
