"""Damaged files and bad values fed to every read command (verify, monitor, report, export, evaluate, merge, the API's
load): each answers with its result or one line and exit 2, never a traceback. One test id per case and command."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import run_cli, sample_rows, write_csv

pytestmark = pytest.mark.slow

ROOT = Path("data/processed/augsets")
COMBO = "combo_1_nlp_keyboard"
META = ROOT / COMBO / "meta.json"
EVENTS = Path("logs/augment/shard_0_of_2.events.jsonl")
MANIFEST = ROOT / "manifest_final.csv"
FACTS = Path("exp/export.json")
DEEP = "[" * 10**5 + "]" * 10**5  # json.loads meets a RecursionError long before the end

# What each read command runs, in a copy of the finished run (`load` is the API's, through a small script).
EVALUATE = ("evaluate", "--label-col", "label", "--folds", "2", "--num-shards", "1")
COMMANDS: dict[str, tuple[str, ...]] = {
    "verify": ("verify",),
    "monitor": ("monitor",),
    "report": ("report", "--out", "report.html"),
    "export": ("export", "--to", "train"),
    "evaluate": (*EVALUATE, "--out", "evaluation.json"),
    "merge": ("merge",),
    "load": (),
    "evaluate-export": (*EVALUATE, "--export", "exp", "--out", "ev.json"),
    "export-force": ("export", "--to", "exp", "--force"),
}
LOAD = """
import sys
from augshard.api import load
from augshard.core.errors import AugshardError
try:
    print(len(load("data/processed/augsets")))
except AugshardError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run (30 labelled rows, 3 combos on 2 shards, char_ratio) and its export in `exp`."""
    cwd = tmp_path_factory.mktemp("finished")
    write_csv(cwd / "in.csv", sample_rows(30))
    proc = run_cli("run", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--id-col", "id",
                   "--label-col", "label", "--methods", "nlp_keyboard,nlp_randword_delete", "--quality-metric",
                   "char_ratio", "--num-shards", "2", cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli("export", "--to", "exp", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd


# --- the damage ------------------------------------------------------------------------------------------------


def _json(path: Path, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(cwd: Path) -> None:
        doc = json.loads((cwd / path).read_text(encoding="utf-8"))
        change(doc)
        (cwd / path).write_text(json.dumps(doc), encoding="utf-8")

    return damage


def _bytes(path: Path, data: bytes | str, append: bool = False) -> Callable[[Path], None]:
    raw = data.encode() if isinstance(data, str) else data

    def damage(cwd: Path) -> None:
        target = cwd / path
        target.write_bytes((target.read_bytes() if append else b"") + raw)

    return damage


def _folder(path: Path) -> Callable[[Path], None]:
    def damage(cwd: Path) -> None:
        (cwd / path).unlink()
        (cwd / path).mkdir()

    return damage


def _rows(change: Callable[[dict[str, str]], None], path: Path = MANIFEST) -> Callable[[Path], None]:
    def damage(cwd: Path) -> None:
        with open(cwd / path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            if row["combo_dir"] == COMBO:
                change(row)
        with open(cwd / path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    return damage


def _set(**values: object) -> Callable[[dict], None]:
    return lambda doc: doc.update(values)


def _null_every_value(doc: dict) -> None:
    for key in doc:
        doc[key] = None


def _shard_manifest(data: bytes) -> Callable[[Path], None]:
    def damage(cwd: Path) -> None:
        (cwd / ROOT / "manifest_shard0_of_1.csv").write_bytes(data)

    return damage


META_READERS = ("verify", "report", "export", "evaluate")
EVENT_READERS = ("monitor", "report")
MANIFEST_READERS = ("verify", "report", "export", "evaluate", "merge", "load")
EXPORT_READERS = ("evaluate-export", "export-force")

CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    # meta.json
    "meta-not-json": (_bytes(META, "{not json"), META_READERS),
    "meta-not-utf8": (_bytes(META, b'{"combo_id": "\xff\xfe"}'), META_READERS),
    "meta-an-array": (_bytes(META, "[1, 2]"), META_READERS),
    "meta-nested-1e5-deep": (_bytes(META, DEEP), META_READERS),
    "meta-methods-a-number": (_json(META, _set(methods=5)), META_READERS),
    "meta-rows-a-string": (_json(META, _set(rows="many", k="one")), META_READERS),
    "meta-every-value-null": (_json(META, _null_every_value), META_READERS),
    "meta-quality-a-string": (_json(META, _set(quality="high", timing={"duration_seconds": "slow"})), META_READERS),
    "meta-a-folder": (_folder(META), META_READERS),
    # events.jsonl
    "events-not-utf8-line": (
        _bytes(EVENTS, b'{"event": "heartbeat", "shard": 0, "ts": 1}\xff\xfe\n', True),
        EVENT_READERS,
    ),
    "events-not-json-line": (_bytes(EVENTS, "not json\n", True), EVENT_READERS),
    "events-array-line": (_bytes(EVENTS, "[1, 2]\n", True), EVENT_READERS),
    "events-nested-1e5-deep": (_bytes(EVENTS, DEEP + "\n", True), EVENT_READERS),
    "events-wrong-types": (
        _bytes(
            EVENTS,
            '{"event": "progress", "shard": "x", "ts": "now", "rows_done": "a", "rows_total": [], "combo_id": 5}\n',
            True,
        ),
        EVENT_READERS,
    ),
    "events-nulls": (
        _bytes(
            EVENTS,
            '{"event": "combo_done", "shard": null, "ts": null, "rows": null, "duration": null, "combo_id": null}\n',
            True,
        ),
        EVENT_READERS,
    ),
    "events-binary": (_bytes(EVENTS, bytes(range(256)) * 4), EVENT_READERS),
    "events-a-folder": (_folder(EVENTS), EVENT_READERS),
    # the manifest
    "manifest-not-utf8": (_bytes(MANIFEST, b"combo_id,status\n\xff\xfe,ok\n"), MANIFEST_READERS),
    "manifest-empty": (_bytes(MANIFEST, b""), MANIFEST_READERS),
    "manifest-binary": (_bytes(MANIFEST, bytes(range(256)) * 4), MANIFEST_READERS),
    "manifest-huge-field": (_rows(_set(error="x" * 200_000)), MANIFEST_READERS),
    "manifest-wrong-types": (_rows(_set(rows="many", k="one", status="weird")), MANIFEST_READERS),
    "manifest-row-outside-root": (
        _rows(_set(combo_dir="../../..", dataset_path="../../../exp/data/x.parquet")),
        MANIFEST_READERS,
    ),
    "manifest-row-absolute": (_rows(_set(dataset_path="/etc/passwd")), MANIFEST_READERS),
    "manifest-a-folder": (_folder(MANIFEST), MANIFEST_READERS),
    "shard-manifest-not-utf8": (_shard_manifest(b"combo_id,status\n\xff\xfe,ok\n"), ("merge",)),
    "shard-manifest-wrong-types": (
        _shard_manifest(b"combo_id,status,rows,k,plan_fingerprint\nx,ok,a,b,c\n"),
        ("merge",),
    ),
    # the datasets
    "dataset-not-parquet": (_bytes(ROOT / COMBO / "dataset.parquet", b"PAR1 not really PAR1"), MANIFEST_READERS),
    "dataset-a-folder": (_folder(ROOT / COMBO / "dataset.parquet"), MANIFEST_READERS),
    # export.json
    "export-not-json": (_bytes(FACTS, "{not json"), EXPORT_READERS),
    "export-not-utf8": (_bytes(FACTS, b'{"files": ["\xff"]}'), EXPORT_READERS),
    "export-nested-1e5-deep": (_bytes(FACTS, DEEP), EXPORT_READERS),
    "export-an-array": (_bytes(FACTS, "[]"), EXPORT_READERS),
    "export-files-a-number": (_json(FACTS, _set(files=5)), EXPORT_READERS),
    "export-files-wrong-items": (_json(FACTS, _set(files=[5, None, {"a": 1}])), EXPORT_READERS),
    "export-files-missing": (_json(FACTS, _set(files=["data/nope.parquet"])), EXPORT_READERS),
    "export-files-outside": (_json(FACTS, _set(files=[f"../{ROOT}/{COMBO}/dataset.parquet"])), EXPORT_READERS),
    "export-files-absolute": (_json(FACTS, _set(files=["/etc/passwd"])), EXPORT_READERS),
    "export-files-absent": (_json(FACTS, lambda doc: doc.pop("files")), EXPORT_READERS),
    "export-every-value-null": (_json(FACTS, _null_every_value), EXPORT_READERS),
    "export-data-not-parquet": (_bytes(Path("exp/data/train-00000-of-00001.parquet"), b"garbage"), EXPORT_READERS),
}
PAIRS = [pytest.param(case, command, id=f"{case}-{command}") for case, (_, cmds) in CASES.items() for command in cmds]


def _run(cwd: Path, command: str, *extra: str) -> subprocess.CompletedProcess:
    if command == "load":
        return subprocess.run([sys.executable, "-c", LOAD], cwd=cwd, capture_output=True, text=True, timeout=300)
    return run_cli(*COMMANDS[command], *extra, cwd=cwd, timeout=300)


def assert_one_line_or_a_result(proc: subprocess.CompletedProcess) -> None:
    """Exit 0 or 1 (a result: a report, a problem list), or 2 with one `error:` line; never a traceback."""
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    assert proc.returncode in (0, 1, 2), shown
    if proc.returncode == 2:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, shown


@pytest.mark.parametrize(("case", "command"), PAIRS)
def test_a_damaged_file_gets_a_result_or_one_line(finished: Path, tmp_path: Path, case: str, command: str) -> None:
    cwd = tmp_path / "run"
    shutil.copytree(finished, cwd)
    damage, _ = CASES[case]
    damage(cwd)
    assert_one_line_or_a_result(_run(cwd, command))


# --- what each damage must say ---------------------------------------------------------------------------------

OUTSIDE = {
    "manifest-row-outside-root": "combo_dir '../../..' is not a folder of the output root",
    "manifest-row-absolute": "dataset_path '/etc/passwd' points outside the output root",
}


@pytest.mark.parametrize("case", list(OUTSIDE))
@pytest.mark.parametrize("command", ["verify", "report", "export", "evaluate", "merge", "load"])
def test_a_manifest_row_outside_the_root_is_flagged_by_verify_and_refused_by_every_reader(
    finished: Path, tmp_path: Path, case: str, command: str
) -> None:
    cwd = tmp_path / "run"
    shutil.copytree(finished, cwd)
    CASES[case][0](cwd)
    proc = _run(cwd, command)
    if command == "verify":
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"✗ combo {_combo_id(finished)}: {OUTSIDE[case]}" in proc.stdout
    else:
        assert proc.returncode == 2, proc.stdout + proc.stderr
        (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]  # merge's note may come first
        assert OUTSIDE[case] in line and "no reader follows it" in line and "Traceback" not in proc.stderr
    assert not (cwd / "train").exists() and not (cwd / "report.html").exists()


def _combo_id(cwd: Path) -> str:
    with open(cwd / MANIFEST, encoding="utf-8", newline="") as fh:
        return next(r["combo_id"] for r in csv.DictReader(fh) if r["combo_dir"] == COMBO)


def test_monitor_says_how_many_event_lines_it_skipped(finished: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "run"
    shutil.copytree(finished, cwd)
    clean = run_cli("monitor", cwd=cwd)
    CASES["events-not-utf8-line"][0](cwd)
    _bytes(EVENTS, '{"event": "combo_done", "shard": 0, "rows": null}\n', True)(cwd)
    proc = run_cli("monitor", cwd=cwd)
    assert proc.returncode == 0 and proc.stdout == clean.stdout, proc.stderr  # the damage changes no count
    assert "shard 0: skipped 2 damaged lines of its event stream (first: not UTF-8" in proc.stderr
    doc = json.loads(run_cli("monitor", "--format", "json", cwd=cwd).stdout)
    assert [s["damaged_lines"] for s in doc["shards"]] == [2, 0]


def test_export_json_naming_files_outside_or_missing_is_refused_by_evaluate_export(
    finished: Path, tmp_path: Path
) -> None:
    outside = "outside the export folder"
    said_of = {"export-files-outside": outside, "export-files-absolute": outside,
               "export-files-missing": "exp/data/nope.parquet is missing"}  # fmt: skip
    for case, said in said_of.items():
        cwd = tmp_path / case
        shutil.copytree(finished, cwd)
        CASES[case][0](cwd)
        proc = _run(cwd, "evaluate-export")
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr
        assert not (cwd / "exp/ev.json").exists()


# --- bad values --------------------------------------------------------------------------------------------------

RUN_EMBEDDING = ("run", "--config", "bad.yaml", "--input", "in.csv", "--text-col", "text", "--id-col", "id",
                 "--methods", "nlp_keyboard", "--quality-metric", "embedding", "--output-root", "o2",
                 "--num-shards", "1")  # fmt: skip
MODELS = {
    "missing": ("not found", None),
    "empty": ("no config.json", {}),
    "not-json": ("config.json does not read as JSON", {"config.json": b"{nope", "model.safetensors": b""}),
    "no-weights": ("no weights", {"config.json": b"{}"}),
    "corrupt-weights": ("does not load", "corrupt"),
}


def _model(cwd: Path, kind: str) -> Path:
    folder = cwd / f"model-{kind}"
    files = MODELS[kind][1]
    if files == "corrupt":  # the real model's small files, weights that are not weights
        from augshard.shard.encoders import default_embedding_model

        source = Path(default_embedding_model())
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx"))
        (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    elif files is not None:
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("command", ["evaluate", "run"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_a_bogus_embedding_model_is_one_line(finished: Path, tmp_path: Path, kind: str, command: str) -> None:
    cwd = tmp_path / "run"
    shutil.copytree(finished, cwd)
    model = _model(cwd, kind)
    env = {"AUGSHARD_HOME": str(tmp_path / "home")}  # a failed ONNX export would land here, never in ~/.cache
    if command == "run":
        (cwd / "bad.yaml").write_text(f"embedding_model: {model}\n", encoding="utf-8")
        proc = run_cli(*RUN_EMBEDDING, cwd=cwd, env=env, timeout=300)
    else:
        args = (*COMMANDS["evaluate"], "--features", "embedding", "--embedding-model", str(model))
        proc = run_cli(*args, cwd=cwd, env=env, timeout=300)
    assert_one_line_or_a_result(proc)
    assert proc.returncode == 2 and MODELS[kind][0] in proc.stderr and str(model) in proc.stderr, proc.stderr
    assert not (cwd / "o2").exists() and not (cwd / "evaluation.json").exists()


def test_variants_per_sample_has_a_documented_upper_bound(finished: Path, tmp_path: Path) -> None:
    from augshard.core.config import MAX_VARIANTS_PER_SAMPLE

    cwd = tmp_path / "run"
    shutil.copytree(finished, cwd)
    base = ("run", "--input", "in.csv", "--text-col", "text", "--methods", "nlp_keyboard", "--quality-metric",
            "char_ratio", "--output-root", "o2", "--dry-run")  # fmt: skip
    ok = run_cli(*base, "--variants-per-sample", str(MAX_VARIANTS_PER_SAMPLE), cwd=cwd)
    assert ok.returncode == 0, ok.stderr
    proc = run_cli(*base, "--variants-per-sample", str(MAX_VARIANTS_PER_SAMPLE + 1), cwd=cwd)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"--variants-per-sample must be at least 1 and at most {MAX_VARIANTS_PER_SAMPLE:,}" in proc.stderr
    docs = (Path(__file__).resolve().parents[1] / "docs/cli.md").read_text(encoding="utf-8")
    (row,) = [line for line in docs.splitlines() if line.startswith("| `--variants-per-sample`")]
    assert f"1 to {MAX_VARIANTS_PER_SAMPLE:,}" in row


# The API's arguments of the wrong type: a ConfigError (what the CLI says in one line), never a TypeError.
API_CASES = {
    "plan-config-a-number": ("plan", (5,), {}),
    "plan-methods-a-number": ("plan", (), {"methods": 5}),
    "plan-exclude-methods-a-number": ("plan", (), {"exclude_methods": 5}),
    "plan-input-a-number": ("plan", (), {"input": 5}),
    "plan-output-root-a-number": ("plan", (), {"output_root": 5}),
    "plan-device-a-number": ("plan", (), {"device": 3}),
    "plan-text-col-a-list": ("plan", (), {"text_col": ["text"]}),
    "plan-keep-vectors-a-string": ("plan", (), {"keep_vectors": "yes"}),
    "plan-variants-too-many": ("plan", (), {"variants_per_sample": 10**6}),
    "run-on-progress-a-number": ("run", (), {"on_progress": 5}),
    "run-input-a-number": ("run", (), {"input": 5}),
    "load-root-a-number": ("load", (5,), {}),
    "load-output-name-a-number": ("load", (ROOT,), {"output_name": 5}),
    "export-to-a-number": ("export", (5, ROOT), {}),
    "export-root-a-number": ("export", ("t", 5), {}),
    "export-best-a-string": ("export", ("t", ROOT), {"best": "3"}),
    "export-min-gain-a-string": ("export", ("t", ROOT), {"min_gain": "a"}),
    "export-rows-per-file-a-string": ("export", ("t", ROOT), {"rows_per_file": "big"}),
    "export-near-threshold-a-string": ("export", ("t", ROOT), {"dedupe": "near", "near_threshold": "x"}),
    "export-include-originals-a-string": ("export", ("t", ROOT), {"include_originals": "no"}),
    "export-plan-a-number": ("export", ("t", ROOT), {"plan": 5}),
}
RUN_SETTINGS = {"input": "in.csv", "text_col": "text", "methods": "nlp_keyboard", "quality_metric": "char_ratio",
                "output_root": "o2", "num_shards": 1}  # fmt: skip


@pytest.mark.parametrize("case", list(API_CASES))
def test_a_wrong_typed_api_argument_is_a_config_error(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    from augshard import api
    from augshard.core.errors import ConfigError

    cwd = tmp_path / "run"
    shutil.copytree(finished, cwd)
    monkeypatch.chdir(cwd)
    name, args, kwargs = API_CASES[case]
    if name in ("plan", "run") and not args:
        kwargs = {**RUN_SETTINGS, **kwargs}
    with pytest.raises(ConfigError):
        getattr(api, name)(*args, **kwargs)
    assert not (cwd / "o2").exists() and not (cwd / "t").exists()


def test_loading_a_model_leaks_no_library_note_to_stderr(caplog: pytest.LogCaptureFixture) -> None:
    """sentence-transformers and transformers log notes while loading or exporting a model ("No 'model.onnx' found
    ... Exporting", "`torch_dtype` is deprecated!"): none reaches the user's stderr, and the levels come back."""
    import logging

    from augshard.shard.encoders import LIBRARY_LOGGERS, _loaded

    before = [logging.getLogger(name).level for name in LIBRARY_LOGGERS]

    def load() -> str:
        logging.getLogger("sentence_transformers.base").warning("No 'model.onnx' found. Exporting the model to ONNX.")
        logging.getLogger("transformers.modeling_utils").warning("`torch_dtype` is deprecated! Use `dtype` instead!")
        return "model"

    with caplog.at_level(logging.INFO):
        assert _loaded(Path("m"), load) == "model"
    assert caplog.records == []
    assert [logging.getLogger(name).level for name in LIBRARY_LOGGERS] == before


def test_the_report_says_how_many_event_lines_it_skipped(finished: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "run"
    shutil.copytree(finished, cwd)
    CASES["events-not-utf8-line"][0](cwd)
    proc = _run(cwd, "report")
    assert proc.returncode == 0, proc.stderr
    page = (cwd / "report.html").read_text(encoding="utf-8")
    assert "Skipped 1 damaged line(s) of the shards' event streams (first: not UTF-8 (byte" in page
