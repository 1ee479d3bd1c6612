"""`augshard export` end to end on real runs: loads with datasets and pandas, the card says what the data holds,
dedupe exact and near, the same export whatever the shard count, label flips, and the errors that write nothing."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import leave_a_stopped_run_over, run_cli, sample_rows, tree, write_csv

from augshard.core.errors import OutputError
from augshard.core.text import normalise
from augshard.exporting.export import check_target
from augshard.exporting.model import ExportOptions

pytestmark = pytest.mark.slow

RUN = ("--text-col", "text", "--evidence-col", "evidence", "--id-col", "id", "--label-col", "label")


def run(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = run_cli("run", "--input", "in.csv", *RUN, *extra, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def export(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("export", *args, cwd=cwd)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The same 16 sample rows and 2 methods (3 combos, char_ratio, label check) on 1 shard and on 3."""
    out = {}
    for shards in (1, 3):
        cwd = tmp_path_factory.mktemp(f"run{shards}")
        write_csv(cwd / "in.csv", sample_rows(16))
        run(cwd, "--methods", "nlp_keyboard,nlp_randword_delete", "--quality-metric", "char_ratio",
            "--num-shards", str(shards))  # fmt: skip
        out[shards] = cwd
    return out


def test_an_export_loads_with_datasets_and_pandas_and_its_card_counts_the_data(runs: dict[int, Path]) -> None:
    import datasets

    cwd = runs[1]
    proc = export(cwd, "--to", "train", "--include-originals")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = cwd / "train"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "data", "export.json"]
    frame = pd.read_parquet(folder / "data")
    loaded = datasets.load_dataset(str(folder))["train"]
    assert loaded.num_rows == len(frame) and loaded.column_names == list(frame.columns)
    doc = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert doc["rows"] == len(frame) and f"num_examples: {len(frame)}" in card
    assert doc["originals"] == (frame["k"] == 0).sum() == 16
    kept = Counter(frame.loc[frame["k"] > 0, "methods"])
    assert {c["methods"]: c["kept"] for c in doc["combos"]} == dict(kept)
    # Every variant's provenance, and the label check's columns.
    variants = frame[frame["k"] > 0]
    manifest = pd.read_csv(cwd / "data/processed/augsets/manifest_final.csv")
    assert set(variants["combo_id"]) == set(manifest["combo_id"])
    assert {tuple(r) for r in variants[["combo_id", "methods", "k"]].drop_duplicates().values} == {
        tuple(r) for r in manifest[["combo_id", "methods", "k"]].values
    }
    assert variants["label_pred"].notna().all() and variants["label_agrees"].notna().all()
    assert doc["labels_before"] == dict(Counter(r["label"] for r in sample_rows(16)))
    assert doc["labels_after"] == dict(Counter(frame["label"]))
    assert normalise("  Héllo\u00a0 WORLD ") == "héllo world"
    # No two rows share a normalised text, and no variant is an original in other case or spacing.
    assert len({normalise(t) for t in frame["text"]}) == len(frame)


def test_the_same_run_on_1_and_3_shards_exports_the_same_bytes(runs: dict[int, Path]) -> None:
    for cwd in runs.values():
        proc = export(cwd, "--to", "same", "--dedupe", "near")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    one, three = files(runs[1] / "same"), files(runs[3] / "same")
    assert sorted(one) == sorted(three) == ["README.md", "data/train-00000-of-00001.parquet", "export.json"]
    assert one["data/train-00000-of-00001.parquet"] == three["data/train-00000-of-00001.parquet"]
    # The card and the facts name the input file, which each run here has in its own folder, and the plan, whose
    # fingerprint counts the shards; nothing else differs.
    plans = {n: json.loads(f["export.json"])["plan"].encode() for n, f in ((1, one), (3, three))}
    assert plans[1] != plans[3]
    for name in ("README.md", "export.json"):
        masked = {n: f[name].replace(str(runs[n]).encode(), b"IN").replace(plans[n], b"PLAN") for n, f in
                  ((1, one), (3, three))}  # fmt: skip
        assert masked[1] == masked[3]


def test_exact_and_near_duplicates_are_dropped_and_counted(tmp_path: Path) -> None:
    """Exact twins: sample rows three times over (other ids) with 3-word evidences, which have few ways to lose a
    word. Near twins: keyboard typos in the long evidences of six more rows stay close to their originals."""
    rows = []
    for copy in range(3):
        for r in sample_rows(6):
            evidence = " ".join(r["evidence"].split()[:3])
            rows.append({**r, "id": f"{r['id']}-{copy}", "evidence": evidence, "text": f"{evidence}. {r['text']}"})
    rows += sample_rows(12)[6:]
    write_csv(tmp_path / "in.csv", rows)
    run(tmp_path, "--methods", "nlp_randword_delete,nlp_keyboard", "--combo-mode", "single", "--quality-metric",
        "none", "--variants-per-sample", "3")  # fmt: skip
    counts = {}
    for mode in ("none", "exact", "near"):
        proc = export(tmp_path, "--to", mode, "--dedupe", mode, "--near-threshold", "0.5", "--no-originals")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        counts[mode] = json.loads((tmp_path / mode / "export.json").read_text())
    frame = pd.read_parquet(tmp_path / "none" / "data")
    twins = len(frame) - len({normalise(t) for t in frame["text"]})
    assert twins > 0 and counts["none"]["rows"] == len(frame)
    assert counts["exact"]["dropped"]["exact_duplicates"] == twins
    assert counts["exact"]["rows"] == len(frame) - twins
    kept = pd.read_parquet(tmp_path / "exact" / "data")
    assert len({normalise(t) for t in kept["text"]}) == len(kept)
    near = counts["near"]["dropped"]
    assert near["exact_duplicates"] == twins and near["near_duplicates"] > 0
    assert counts["near"]["rows"] == len(frame) - twins - near["near_duplicates"]
    # Which twin is kept does not depend on anything but the data: the first in (k, combo id, input order).
    first = frame.drop_duplicates(subset="text", keep="first")
    assert set(first["text"]) >= set(kept["text"]) and len(first) >= len(kept)


WORDS_OF_ANOTHER_CLASS = """
methods:
  - {id: nlp_keyboard, lib: nlpaug, kind: KeyboardAug, args: {aug_char_min: 1, aug_char_p: 0.05}}
  - id: swap_in_complaints
    lib: nlpaug
    kind: RandomWordAug
    args: {action: substitute, aug_p: 0.5, target_words: [terrible, broken, awful, useless, disappointing, refund]}
"""


def test_a_label_flipping_method_flips_more_than_a_typo_method_and_flips_can_be_dropped(tmp_path: Path) -> None:
    (tmp_path / "methods.yaml").write_text(WORDS_OF_ANOTHER_CLASS, encoding="utf-8")
    write_csv(tmp_path / "in.csv", sample_rows(200))
    proc = run(tmp_path, "--methods-config", "methods.yaml", "--methods", "all", "--combo-mode", "single",
               "--quality-metric", "none")  # fmt: skip
    assert "label check on 'label': cross-validated accuracy" in proc.stdout
    root = tmp_path / "data/processed/augsets"
    flips = {m: json.loads((root / f"combo_1_{m}" / "meta.json").read_text())["label_check"]
             for m in ("nlp_keyboard", "swap_in_complaints")}  # fmt: skip
    assert flips["swap_in_complaints"]["flip_share"] > 2 * flips["nlp_keyboard"]["flip_share"]
    table = pq.read_table(root / "combo_1_swap_in_complaints" / "dataset.parquet").to_pandas()
    assert (~table["label_agrees"]).sum() == flips["swap_in_complaints"]["flips"]
    proc = export(tmp_path, "--to", "kept", "--drop-label-flips")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kept = pd.read_parquet(tmp_path / "kept" / "data")
    doc = json.loads((tmp_path / "kept" / "export.json").read_text())
    assert kept["label_agrees"].all()
    assert doc["dropped"]["label_flips"] == sum(f["flips"] for f in flips.values())


def test_exports_that_cannot_be_made_say_why_in_one_line_and_write_nothing(runs: dict[int, Path]) -> None:
    cwd = runs[1]
    (cwd / "busy").mkdir()
    (cwd / "busy" / "mine.txt").write_text("keep me", encoding="utf-8")
    before = tree(cwd)
    cases = [
        (("--to", "busy"), "busy exists and is not empty"),
        (("--to", "x", "--near-threshold", "1.5"), "--near-threshold must be in (0, 1]"),
        (("--to", "x", "--dedupe", "fuzzy"), "--dedupe must be one of none, exact, near"),
        (("--to", "x", "--output-root", "nowhere"), "no finished run in nowhere"),
        (("--to", "x", "--combos", "combo_9_nothing"), "--combos: combo_9_nothing not in"),
    ]
    for args, message in cases:
        proc = export(cwd, *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr
        assert tree(cwd) == before
    assert (cwd / "busy" / "mine.txt").read_text(encoding="utf-8") == "keep me"
    # A run with a failed combo is refused, unless asked; then the failed one is left out and said so.
    manifest = cwd / "data/processed/augsets/manifest_final.csv"
    original = manifest.read_text(encoding="utf-8")
    try:
        manifest.write_text(original.replace(",ok,", ",failed,", 1), encoding="utf-8")
        proc = export(cwd, "--to", "x")
        assert proc.returncode == 2 and "failed, stopped or half-written" in proc.stderr and not (cwd / "x").exists()
        proc = export(cwd, "--to", "x", "--allow-incomplete", "--k", "1")
        assert proc.returncode == 0, proc.stderr
        doc = json.loads((cwd / "x" / "export.json").read_text())
        assert {c["k"] for c in doc["combos"]} == {1} and len(doc["combos"]) == 1  # one single left, one failed
        assert [o["status"] for o in doc["left_out"]] == ["failed"] and "left out" in proc.stdout
        card = (cwd / "x" / "README.md").read_text(encoding="utf-8")
        failed = doc["left_out"][0]["combo_dir"]
        assert "## Combos not in this set" in card and f"| {failed} | failed |" in card
    finally:
        manifest.write_text(original, encoding="utf-8")


def snapshot(cwd: Path) -> dict[str, bytes]:
    """Every file of a run: its outputs, cache, logs and input."""
    out = {"in.csv": (cwd / "in.csv").read_bytes()}
    for folder in ("data", "logs"):
        out |= {str(p.relative_to(cwd)): p.read_bytes() for p in sorted((cwd / folder).rglob("*")) if p.is_file()}
    return out


def test_export_never_writes_over_the_run_its_cache_its_logs_or_anything_it_did_not_make(
    runs: dict[int, Path],
) -> None:
    cwd = runs[1]
    before = snapshot(cwd)
    (cwd / "afile").write_text("mine", encoding="utf-8")
    (cwd / "mine").mkdir()
    (cwd / "mine" / "notes.txt").write_text("keep me", encoding="utf-8")
    cases = [
        (("--to", "data/processed/augsets", "--force"), "is the run's output root"),
        (("--to", "data/processed", "--force"), "contains the run's output root"),
        (("--to", "data", "--force"), "contains the run's output root"),
        (("--to", "data/processed/augsets/train"), "is inside the run's output root"),
        (("--to", "data/cache", "--force"), "is the run's cache folder"),
        (("--to", "logs/augment/train"), "is inside the run's log folder"),
        (("--to", ".", "--force"), "contains the run's output root"),
        (("--to", "/", "--force"), "contains the run's output root"),
        (("--to", "afile", "--force"), "not one (no export.json made by it)"),
        (("--to", "mine", "--force"), "not one (no export.json made by it)"),
        (("--to", "afile/train"), "export failed, nothing written"),
    ]
    try:
        for args, message in cases:
            proc = export(cwd, *args)
            assert proc.returncode == 2, (args, proc.stdout + proc.stderr)
            assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, (args, proc.stderr)
            assert snapshot(cwd) == before, args
        assert (cwd / "afile").read_text(encoding="utf-8") == "mine"
        assert (cwd / "mine" / "notes.txt").read_text(encoding="utf-8") == "keep me"
        assert not [p.name for p in cwd.iterdir() if p.name.startswith(".")]  # no staging, old copy or lock left
        # An earlier export is the one thing --force replaces.
        assert export(cwd, "--to", "made").returncode == 0
        proc = export(cwd, "--to", "made", "--force", "--k", "1")
        assert proc.returncode == 0, proc.stderr
        doc = json.loads((cwd / "made" / "export.json").read_text(encoding="utf-8"))
        assert doc["made_by"] == "augshard export" and {c["k"] for c in doc["combos"]} == {1}
        assert not [p.name for p in cwd.iterdir() if p.name.startswith(".")]
        assert run_cli("verify", cwd=cwd).returncode == 0 and snapshot(cwd) == before
    finally:
        for name in ("afile", "mine", "made"):
            shutil.rmtree(cwd / name, ignore_errors=True)
            (cwd / name).unlink(missing_ok=True)


def test_an_export_never_holds_the_runs_input(tmp_path: Path) -> None:
    options = ExportOptions(to=tmp_path / "inputs", output_root=tmp_path / "run")
    with pytest.raises(OutputError, match="holds the run's input"):
        check_target(options, (str(tmp_path / "inputs" / "in.csv"),))
    check_target(options, (str(tmp_path / "in.csv"),))  # beside the input is fine


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_during_an_export_removes_its_staging_folder(
    runs: dict[int, Path], monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    module = importlib.import_module("augshard.exporting.export")  # `augshard.export` is the API function

    cwd = runs[1]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = cwd / f".sig.augshard-export-{dead.pid}~{socket.gethostname()}"  # what a kill -9 left
    (stale / "data").mkdir(parents=True)
    seen: list[str] = []

    def interrupted(result: object, combos: object, out: Path) -> None:
        seen.extend(p.name for p in cwd.iterdir() if p.name.startswith(".sig"))
        (out / "part-00000.parquet").write_bytes(b"half")
        os.kill(os.getpid(), signum)  # as SLURM's scancel, `timeout` or a closed terminal would
        time.sleep(10)

    monkeypatch.setattr(module, "_write_rows", interrupted)
    previous = signal.getsignal(signum)
    options = ExportOptions(to=cwd / "sig", output_root=cwd / "data/processed/augsets", cache_dir=cwd / "data/cache",
                            log_dir=cwd / "logs/augment")  # fmt: skip
    with pytest.raises(module.ExportInterrupted):
        module.export(options)
    assert len(seen) == 2 and stale.name not in seen  # the stale staging was swept; this export's own was there
    assert not [p.name for p in cwd.iterdir() if p.name.startswith(".sig") or p.name == "sig"]
    assert not list((cwd / "data/processed/augsets").glob(".augshard*.lock"))
    assert signal.getsignal(signum) == previous


def test_two_exports_to_one_folder_one_is_refused(runs: dict[int, Path]) -> None:
    cwd = runs[1]
    try:
        procs = [
            subprocess.Popen([sys.executable, "-m", "augshard", "export", "--to", "both", "--dedupe", "near"], cwd=cwd,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]  # fmt: skip
        outs = [p.communicate(timeout=300) for p in procs]
        assert sorted(p.returncode for p in procs) == [0, 2], outs
        refused = next(err for p, (_, err) in zip(procs, outs, strict=True) if p.returncode == 2)
        assert "exists and is not empty" in refused or "another augshard export is writing" in refused
        assert sorted(p.name for p in (cwd / "both").iterdir()) == ["README.md", "data", "export.json"]
        assert not [p.name for p in cwd.iterdir() if p.name.startswith(".")]
    finally:
        shutil.rmtree(cwd / "both", ignore_errors=True)


CHEAP = ("--text-col", "text", "--evidence-col", "evidence", "--id-col", "id", "--quality-metric", "char_ratio",
         "--methods", "nlp_keyboard,nlp_randword_delete", "--num-shards", "1", "--no-live")  # fmt: skip


def plan_of(manifest: Path) -> str:
    (plan,) = set(pd.read_csv(manifest)["plan_fingerprint"])
    return plan


def test_a_stopped_run_with_other_settings_is_never_blended_into_an_export(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(16))
    (tmp_path / "b").mkdir()
    for cwd, seed in ((tmp_path, "42"), (tmp_path / "b", "7")):
        proc = run_cli("run", "--input", str(tmp_path / "in.csv"), *CHEAP, "--seed", seed, cwd=cwd)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    root, other = tmp_path / "data/processed/augsets", tmp_path / "b/data/processed/augsets"
    plan_a, plan_b = plan_of(root / "manifest_final.csv"), plan_of(other / "manifest_final.csv")
    assert plan_a != plan_b
    # What a run with seed 7 stopped after its first combo leaves over the seed-42 run: one combo folder replaced,
    # its shard manifest (the others interrupted), and the seed-42 run's merged manifest.
    leave_a_stopped_run_over(root, other)

    proc = export(tmp_path, "--to", "train")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert plan_a in proc.stderr and plan_b in proc.stderr and f"--plan {plan_a}" in proc.stderr, proc.stderr
    assert not (tmp_path / "train").exists()

    proc = export(tmp_path, "--to", "train", "--plan", plan_a)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "train" / "export.json").read_text(encoding="utf-8"))
    assert (doc["plan"], doc["combo_plans"], doc["seed"]) == (plan_a, [plan_a], 42)
    assert "combo_1_nlp_keyboard" not in {c["combo_dir"] for c in doc["combos"]} and len(doc["combos"]) == 2
    assert doc["left_out"] == [{"combo_dir": "combo_1_nlp_keyboard", "status": "ok",
                                "error": f"overwritten by plan {plan_b}"}]  # fmt: skip
    assert f"plan `{plan_a}`" in (tmp_path / "train" / "README.md").read_text(encoding="utf-8")

    proc = export(tmp_path, "--to", "seven", "--plan", plan_b)
    assert proc.returncode == 2 and "failed, stopped or half-written" in proc.stderr, proc.stderr
    proc = export(tmp_path, "--to", "seven", "--plan", plan_b, "--allow-incomplete")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "seven" / "export.json").read_text(encoding="utf-8"))
    assert (doc["plan"], doc["combo_plans"], doc["seed"]) == (plan_b, [plan_b], 7)
    assert [c["combo_dir"] for c in doc["combos"]] == ["combo_1_nlp_keyboard"]
    proc = export(tmp_path, "--to", "none", "--plan", "0000000000000000")
    assert proc.returncode == 2 and plan_a in proc.stderr and plan_b in proc.stderr, proc.stderr


def test_export_and_merge_refuse_while_a_run_writes_and_the_run_still_exits_0(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(40))
    args = ("run", "--input", "in.csv", *CHEAP)
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    root = tmp_path / "data/processed/augsets"
    run = subprocess.Popen([sys.executable, "-m", "augshard", *args, "--force"], cwd=tmp_path, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.time() + 120
    while not (root / ".augshard.runner.lock").exists() and time.time() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGSTOP)  # the run holds its lock as long as the two commands take, however slow they are
    try:
        exported = export(tmp_path, "--to", "train")
        merged = run_cli("merge", cwd=tmp_path)
    finally:
        run.send_signal(signal.SIGCONT)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out
    assert exported.returncode == 2 and "is being written by an augshard run" in exported.stderr, exported.stderr
    assert merged.returncode == 2 and "in use by another augshard run" in merged.stderr, merged.stderr
    assert not (tmp_path / "train").exists()
    assert export(tmp_path, "--to", "train").returncode == 0
    assert run_cli("verify", cwd=tmp_path).returncode == 0


# A catalogue with a method that cannot be built here: its combo is `unavailable` in the manifest.
WITH_A_GHOST = """
methods:
  - {id: nlp_keyboard, lib: nlpaug, kind: KeyboardAug, args: {aug_char_min: 1, aug_char_p: 0.05}}
  - {id: nlp_randword_delete, lib: nlpaug, kind: RandomWordAug, args: {action: delete, aug_p: 0.2}}
  - {id: nlp_ghost, lib: nlpaug, kind: GhostAug}
"""


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 sample rows and one whose evidence is not in its text (row 11, id `lost`), a label check, and a method
    that cannot run: 2 combos ok, 1 unavailable."""
    cwd = tmp_path_factory.mktemp("odd")
    rows = sample_rows(10)
    rows.append({**rows[0], "id": "lost", "evidence": "Zebras juggle quartz xylophones."})
    write_csv(cwd / "in.csv", rows)
    (cwd / "methods.yaml").write_text(WITH_A_GHOST, encoding="utf-8")
    run(cwd, "--methods-config", "methods.yaml", "--methods", "nlp_*", "--combo-mode", "single",
        "--quality-metric", "char_ratio", "--num-shards", "1")  # fmt: skip
    proc = export(cwd, "--to", "train", "--include-originals")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd


def test_include_originals_says_which_input_rows_are_not_in_and_counts_every_inputs_label(odd: Path) -> None:
    """The choice: rows no combo could augment are not written as originals; the card and export.json list each
    with its reason, and the labels of the input are those of the whole file."""
    doc = json.loads((odd / "train" / "export.json").read_text(encoding="utf-8"))
    card = (odd / "train" / "README.md").read_text(encoding="utf-8")
    labels = Counter(r["label"] for r in [*sample_rows(10), sample_rows(1)[0]])
    assert doc["originals"] == 10
    lost = {"row": 11, "row_key": "lost", "reason": "evidence_not_found"}
    assert doc["input"] == {"rows": 11, "usable": 10, "skipped": {"evidence_not_found": 1}, "skipped_rows": [lost]}
    assert doc["labels_before"] == dict(sorted(labels.items()))
    assert "Of the input's 11 rows, 10 could be augmented and 1 could not (1 evidence_not_found)" in card
    assert "row 11 (`lost`): evidence_not_found" in card
    assert "Labels of the input (all 11 rows): " in card
    frame = pd.read_parquet(odd / "train" / "data")
    assert "lost" not in set(frame["id"]) and doc["labels_after"] == dict(sorted(Counter(frame["label"]).items()))


def test_the_card_lists_methods_with_their_args_and_the_combos_that_could_not_run(odd: Path) -> None:
    doc = json.loads((odd / "train" / "export.json").read_text(encoding="utf-8"))
    card = (odd / "train" / "README.md").read_text(encoding="utf-8")
    assert "## Methods" in card
    assert '| `nlp_keyboard` | nlpaug | KeyboardAug | `{"aug_char_min": 1, "aug_char_p": 0.05}` |' in card
    assert '| `nlp_randword_delete` | nlpaug | RandomWordAug | `{"action": "delete", "aug_p": 0.2}` |' in card
    (ghost,) = doc["not_run"]
    assert ghost["combo_dir"] == "combo_1_nlp_ghost" and ghost["status"] == "unavailable" and ghost["error"]
    assert "## Combos not in this set" in card
    assert f"| nlp_ghost | unavailable | {' '.join(ghost['error'].split())} |" in card


def test_the_label_column_is_a_class_label_that_datasets_loads(odd: Path) -> None:
    import datasets

    card = (odd / "train" / "README.md").read_text(encoding="utf-8")
    front = card.split("---")[1]
    assert "  - name: label\n    dtype:\n      class_label:\n        names:\n          '0': " in front
    loaded = datasets.load_dataset(str(odd / "train"))["train"]
    frame = pd.read_parquet(odd / "train" / "data")
    feature = loaded.features["label"]
    assert isinstance(feature, datasets.ClassLabel) and feature.names == sorted(set(frame["label"]))
    assert feature.int2str(list(loaded["label"])) == frame["label"].tolist()
    assert isinstance(loaded.features["label_pred"], datasets.ClassLabel)
    assert loaded.features["text"].dtype == "string" and loaded.num_rows == len(frame)


def test_combos_are_chosen_by_methods_as_shown_folder_names_or_ids(runs: dict[int, Path]) -> None:
    cwd = runs[1]
    manifest = pd.read_csv(cwd / "data/processed/augsets/manifest_final.csv")
    pair = manifest[manifest["k"] == 2].iloc[0]
    single = manifest[manifest["methods"] == "nlp_keyboard"].iloc[0]
    reversed_pair = "+".join(reversed(pair["methods"].split("+")))
    ways = {
        "by_methods": f"{pair['methods']},nlp_keyboard",
        "reversed": f"{reversed_pair},nlp_keyboard",
        "by_folder": f"{pair['combo_dir']},{single['combo_dir']}",
        "by_id": f"{pair['combo_id']},{single['combo_id']}",
    }
    chosen = {}
    for name, combos in ways.items():
        proc = export(cwd, "--to", f"chosen_{name}", "--combos", combos, "--format", "json")
        assert proc.returncode == 0, proc.stderr
        chosen[name] = sorted(c["combo_dir"] for c in json.loads(proc.stdout)["combos"])
        shutil.rmtree(cwd / f"chosen_{name}")
    assert len(set(map(tuple, chosen.values()))) == 1
    assert chosen["by_methods"] == sorted([pair["combo_dir"], single["combo_dir"]])
    proc = export(cwd, "--to", "none", "--combos", "nlp_keyboard+nlp_nothing")
    assert proc.returncode == 2 and "--combos: nlp_keyboard+nlp_nothing not in" in proc.stderr
    assert "methods joined by '+'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
