"""The one output-path rule (augshard.storage.outputs): every command that writes a path the user names refuses the
run's
input, the run's files, its cache and logs, links and anything but a regular file, in one line with exit 2 and
nothing touched; the locks name who holds them; two evaluations never write one evaluation.json at once."""

from __future__ import annotations

import importlib
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CHEAP_RUN_ARGS, run_cli, sample_rows, write_csv

from augshard.core.errors import OutputError
from augshard.exporting.model import ExportOptions
from augshard.runner.lock import ReadLock, RunLock, TargetLock
from augshard.storage import temporaries
from augshard.storage.outputs import check_output, run_protected

ROOT = Path("data/processed/augsets")
EVALUATE = ("evaluate", "--label-col", "label", "--folds", "2")
COMMANDS = {
    "evaluate": (*EVALUATE, "--out"),
    "report": ("report", "--out"),
    "bench": ("methods", "--bench", "--methods", "nlp_keyboard", "--rows", "3", "--out"),
    "export": ("export", "--to"),
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-combo run of 20 sample rows, and beside it the things an output must never replace."""
    cwd = tmp_path_factory.mktemp("outputs")
    write_csv(cwd / "in.csv", sample_rows(20))
    proc = run_cli("run", "--input", "in.csv", *CHEAP_RUN_ARGS, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    os.mkfifo(cwd / "fifo")
    (cwd / "folder").mkdir()
    (cwd / "folder" / "notes.txt").write_text("keep me", encoding="utf-8")
    (cwd / "link").symlink_to(cwd / "in.csv")
    os.link(cwd / "in.csv", cwd / "hardlink.csv")
    return cwd


def state(cwd: Path) -> dict[str, object]:
    """Every entry under cwd: a file's bytes, a link's target, anything else its kind."""
    out: dict[str, object] = {}
    for path in sorted(cwd.rglob("*")):
        mode = os.lstat(path).st_mode
        key = str(path.relative_to(cwd))
        if stat.S_ISLNK(mode):
            out[key] = ("link", os.readlink(path))
        elif stat.S_ISREG(mode):
            out[key] = path.read_bytes()
        else:
            out[key] = stat.S_IFMT(mode)
    return out


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (proc.args, proc.stderr)
    assert all(w in lines[0] for w in words), (proc.args, lines[0])
    return lines[0]


def _targets(cwd: Path) -> dict[str, tuple[str, str]]:
    meta = next((cwd / ROOT).glob("combo_*/meta.json"))
    return {
        "the input": (str(cwd / "in.csv"), "is the run's input"),
        "another name of the input": ("hardlink.csv", "is the run's input"),
        "a combo's meta.json": (str(meta.relative_to(cwd)), "is inside the run's output root"),
        "the manifest": (str(ROOT / "manifest_final.csv"), "is inside the run's output root"),
        "the cache": ("data/cache/augment_shard0.db", "is inside the run's cache folder"),
        "a log": ("logs/augment/shard_0_of_1.log", "is inside the run's log folder"),
        "a device": ("/dev/null", "character device"),
        "a FIFO": ("fifo", "FIFO"),
        "a folder": ("folder", "a folder"),
        "a link": ("link", "symbolic link"),
    }


@pytest.mark.parametrize("command", ["evaluate", "report", "bench"])
def test_a_file_output_never_replaces_the_input_the_runs_files_a_device_a_fifo_a_folder_or_a_link(
    finished: Path, command: str
) -> None:
    before = state(finished)
    for what, (target, words) in _targets(finished).items():
        # --force replaces a file augshard did not make, never one of these.
        forced = what in ("the input", "a combo's meta.json", "a device", "a link")
        for force in ((), ("--force",)) if forced else ((),):
            refused(run_cli(*COMMANDS[command], target, *force, cwd=finished, timeout=120), words)
            assert state(finished) == before, (command, what, force)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_an_export_never_goes_to_the_input_the_runs_files_a_device_a_fifo_or_a_link(finished: Path) -> None:
    before = state(finished)
    cases = {k: v for k, v in _targets(finished).items() if k not in ("a device", "a FIFO", "a folder")}
    cases |= {"a device": ("/dev/null", "exists and is not empty"), "a FIFO": ("fifo", "exists and is not empty")}
    for what, (target, words) in cases.items():
        refused(run_cli(*COMMANDS["export"], target, cwd=finished, timeout=120), words)
        assert state(finished) == before, what
    refused(run_cli(*COMMANDS["export"], "fifo", "--force", cwd=finished, timeout=120), "no export.json made by it")
    assert state(finished) == before and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_merge_writes_its_manifest_in_the_root_and_nowhere_else(finished: Path) -> None:
    root = finished / ROOT
    (root / "fifo.csv").symlink_to(finished / "fifo")
    (root / "notes.csv").write_text("mine\n", encoding="utf-8")
    (root / "report.html").write_text("<!DOCTYPE html><html><head><title>augshard report: x</title>", "utf-8")
    try:
        before = state(finished)
        meta = next(root.glob("combo_*/meta.json")).relative_to(root)
        cases = [
            ((str(finished / "in.csv"),), "a file of its own directly in the output root"),
            (("../../../in.csv",), "a file of its own directly in the output root"),
            ((str(meta),), "a file of its own directly in the output root"),
            (("manifest_shard0_of_1.csv",), "a shard manifest's"),
            ((".augshard.runner.lock",), "a hidden name"),
            (("fifo.csv", "--force"), "symbolic link"),
            (("notes.csv",), "exists and is not a manifest augshard made"),
            (("report.html", "--force"), "is an augshard report augshard made, not a manifest"),
        ]
        for args, words in cases:
            refused(run_cli("merge", "--output-name", *args, cwd=finished), words)
            assert state(finished) == before, args
        assert run_cli("merge", cwd=finished).returncode == 0  # its own manifest, made by augshard
    finally:
        for name in ("fifo.csv", "notes.csv", "report.html"):
            (root / name).unlink(missing_ok=True)


def test_a_file_augshard_did_not_make_is_replaced_only_with_force(finished: Path) -> None:
    mine = finished / "mine.html"
    mine.write_text("my notes", encoding="utf-8")
    try:
        refused(run_cli("report", "--out", "mine.html", cwd=finished, timeout=120), "--force to replace it")
        assert mine.read_text(encoding="utf-8") == "my notes"
        assert run_cli("report", "--out", "mine.html", "--force", cwd=finished, timeout=120).returncode == 0
        assert run_cli("report", "--out", "mine.html", cwd=finished, timeout=120).returncode == 0  # augshard's now
        assert "<title>augshard report: " in mine.read_text(encoding="utf-8")
    finally:
        mine.unlink(missing_ok=True)


def test_the_api_refuses_as_the_cli_does(finished: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import augshard

    monkeypatch.chdir(finished)
    before = state(finished)
    with pytest.raises(OutputError, match="is the run's input"):
        augshard.evaluate("label", ROOT, out=finished / "in.csv", force=True)
    with pytest.raises(OutputError, match="character device"):
        augshard.evaluate("label", ROOT, out="/dev/null")
    with pytest.raises(OutputError, match="is inside the run's output root"):
        augshard.export(ROOT / "combo_1_nlp_keyboard" / "x", ROOT)
    assert state(finished) == before


def test_an_export_staging_folder_is_never_a_planted_link(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporting = importlib.import_module("augshard.exporting.export")  # `augshard.export` is the API function
    victim = tmp_path / "victim"
    victim.mkdir()
    draws = iter(["a" * 16, *(f"{n:016x}" for n in range(1, 20))])
    monkeypatch.setattr(temporaries, "token", lambda: next(draws))
    to = tmp_path / "train"
    planted = tmp_path / f".train~{os.getpid()}~{socket.gethostname()}~{'a' * 16}.staging"
    planted.symlink_to(victim, target_is_directory=True)
    options = ExportOptions(to=to, output_root=finished / ROOT, cache_dir=finished / "data/cache",
                            log_dir=finished / "logs/augment")  # fmt: skip
    exporting.export(options)
    assert json.loads((to / "export.json").read_text(encoding="utf-8"))["made_by"] == "augshard export"
    assert list(victim.iterdir()) == [] and planted.is_symlink()


def test_a_lock_names_the_command_that_holds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/bin/augshard", "run", "--input", "in.csv", "--num-shards", "2"])
    with RunLock(tmp_path), pytest.raises(OutputError) as caught:
        ReadLock(tmp_path, "evaluate").acquire()
    assert "`augshard run --input in.csv --num-shards 2`" in str(caught.value)
    assert f"pid {os.getpid()}" in str(caught.value)


def test_a_second_evaluation_of_one_root_is_refused_naming_the_first(
    finished: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["augshard", *EVALUATE])
    before = state(finished)
    with TargetLock(finished / ROOT / "evaluation.json", "evaluate"):
        proc = run_cli(*EVALUATE, cwd=finished, timeout=120)
    refused(proc, "another augshard evaluate is writing", "`augshard evaluate --label-col label --folds 2`")
    assert state(finished) == before


def test_the_rule_allows_the_commands_own_file_and_new_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    protected = run_protected(root, tmp_path / "cache", tmp_path / "logs", own=(root / "evaluation.json",))
    assert check_output(root / "evaluation.json", "--out", protected, "evaluation") == root / "evaluation.json"
    assert check_output(tmp_path / "new" / "e.json", "--out", protected, "evaluation") == tmp_path / "new/e.json"
    with pytest.raises(OutputError, match="is inside the run's output root"):
        check_output(root / "other.json", "--out", protected, "evaluation")
    with pytest.raises(OutputError, match="contains the run's output root"):
        check_output(tmp_path, "--out", protected, "evaluation")


def test_run_output_name_passes_the_same_rule_before_anything_is_written(tmp_path: Path) -> None:
    """A run's `output_name` (config file or API) names the manifest the run's end merges into: a path out of the
    root (here the run's own input) is refused in preflight, in one line, with the input byte-identical and no
    output root made."""
    write_csv(tmp_path / "in.csv", sample_rows(6))
    before = (tmp_path / "in.csv").read_bytes()
    for name in (str(tmp_path / "in.csv"), "../../../in.csv"):
        (tmp_path / "run.yaml").write_text(f"output_name: {json.dumps(name)}\n", encoding="utf-8")
        args = ("run", "--config", "run.yaml", "--input", "in.csv", *CHEAP_RUN_ARGS)
        refused(run_cli(*args, cwd=tmp_path), "a file of its own directly in the output root")
        assert (tmp_path / "in.csv").read_bytes() == before
        assert not (tmp_path / ROOT).exists()


def test_a_link_planted_at_the_combo_staging_folder_is_never_written_through(tmp_path: Path) -> None:
    """`.augshard-tmp` in the output root holds combos being written: a link planted there is refused, and
    nothing lands where it points."""
    from augshard.core.combos import Combo
    from augshard.storage.store import TMP_DIR, ComboWriter

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / TMP_DIR).symlink_to(elsewhere)
    with pytest.raises(OutputError, match="not a folder augshard made"):
        ComboWriter(root, Combo(("nlp_keyboard",)), None)
    assert list(elsewhere.iterdir()) == []
