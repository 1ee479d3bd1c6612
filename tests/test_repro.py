"""A run reproducible from its folder (run.yaml), the note of a range given without its metric, and what an export
records of how its rows were made (library versions, the input's hash; the originals by default)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers import run_cli, sample_rows, write_csv

from augshard.api import make_config
from augshard.core.config import RUN, load_config
from augshard.runner.preflight import range_note
from augshard.runner.run_record import PYTHON_API, run_record

ROOT = "out"
FLAGS = ("--text-col", "text", "--evidence-col", "evidence", "--id-col", "id", "--methods",
         "nlp_keyboard,nlp_randchar_swap", "--quality-metric", "char_ratio", "--num-shards", "1", "--seed", "7",
         "--variants-per-sample", "3", "--quality-min-sim", "0.3", "--output-root", ROOT)  # fmt: skip


def datasets(root: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(root.glob("combo_*/dataset.parquet"))}


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the sample's rows with a few flags, in a folder of its own."""
    cwd = tmp_path_factory.mktemp("first")
    write_csv(cwd / "in.csv", sample_rows(16))
    proc = run_cli("run", "--input", "in.csv", *FLAGS, "--no-live", cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd


@pytest.mark.slow
def test_run_yaml_reruns_the_run_from_another_folder_byte_for_byte(first: Path, tmp_path: Path) -> None:
    record = yaml.safe_load((first / ROOT / "run.yaml").read_text(encoding="utf-8"))
    assert set(RUN.names) <= set(record) and record["input"] == str(first / "in.csv")  # absolute: found from anywhere
    assert record["seed"] == 7 and record["quality_min_sim"] == 0.3 and record["quality_max_sim"] == 0.98
    about = record["augshard"]
    assert about["command"].startswith("augshard run --input in.csv --text-col text") and "--seed 7" in about["command"]
    assert about["sources"]["seed"] == "flag" and about["sources"]["quality_scope"] == "default"
    assert about["sources"]["combo_mode"] == "config file"  # the shipped conf/augshard.yaml
    manifest = (first / ROOT / "manifest_final.csv").read_text(encoding="utf-8")
    assert about["plan"] in manifest and set(about["sources"]) == set(RUN.names)

    proc = run_cli("run", "--config", str(first / ROOT / "run.yaml"), "--output-root", "other", "--no-live",
                   cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ours, again = datasets(first / ROOT), datasets(tmp_path / "other")
    assert len(ours) == 3 and ours == again
    rerun = yaml.safe_load((tmp_path / "other" / "run.yaml").read_text(encoding="utf-8"))
    assert rerun["augshard"]["plan"] == about["plan"] and rerun["augshard"]["sources"]["seed"] == "config file"
    for tool in ("verify", "merge"):  # the commands that read a run pass over it
        done = run_cli(tool, "--output-root", "other", cwd=tmp_path)
        assert done.returncode == 0 and "run.yaml" not in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.slow
def test_a_second_run_replaces_run_yaml_and_a_dry_run_writes_none(first: Path) -> None:
    dry = run_cli("run", "--input", "in.csv", *FLAGS[:-1], "dry", "--dry-run", cwd=first)
    assert dry.returncode == 0 and not (first / "dry").exists(), dry.stderr
    proc = run_cli("run", "--input", "in.csv", *FLAGS, "--no-live", "--keep-shards", cwd=first)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = yaml.safe_load((first / ROOT / "run.yaml").read_text(encoding="utf-8"))
    assert record["keep_shards"] is True and record["augshard"]["sources"]["keep_shards"] == "flag"


@pytest.mark.slow
def test_a_run_yaml_augshard_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(4))
    (tmp_path / ROOT).mkdir()
    (tmp_path / ROOT / "run.yaml").write_text("mine: true\n", encoding="utf-8")
    proc = run_cli("run", "--input", "in.csv", *FLAGS, cwd=tmp_path)
    assert proc.returncode == 2 and "run.yaml exists and is not a run.yaml augshard made" in proc.stderr
    assert (tmp_path / ROOT / "run.yaml").read_text(encoding="utf-8") == "mine: true\n"


def test_run_yaml_of_the_api_says_so_and_loads_as_a_config_file(tmp_path: Path) -> None:
    cfg = make_config(input="in.csv", seed=3, quality_max_sim=0.9)
    record = run_record(cfg, "abc")
    assert record["augshard"]["command"] == PYTHON_API and record["augshard"]["sources"]["seed"] == "API"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(record), encoding="utf-8")
    again = load_config(str(path))
    assert again.fingerprint() == cfg.fingerprint() and again.origin.source("seed") == "config file"
    assert again == dataclasses.replace(cfg, input=str(Path("in.csv").absolute()), methods_config=again.methods_config)


RANGE = {"quality_min_sim": 0.55, "quality_max_sim": 0.95}


@pytest.mark.parametrize(
    ("file", "flags", "noted"),
    [
        ({}, RANGE, True),  # the original tool's flags: they now bound MiniLM cosine
        ({}, {"quality_max_sim": 0.9}, True),
        ({"quality_metric": "embedding"}, RANGE, True),  # the metric of the config file, the range of the flags
        ({}, {**RANGE, "quality_metric": "embedding"}, False),  # chosen together
        (RANGE | {"quality_metric": "embedding"}, {}, False),
        (RANGE, {}, True),  # a config file's range without its metric
        ({}, {**RANGE, "quality_metric": "char_ratio"}, False),
        ({"quality_metric": "char_ratio"}, RANGE, False),  # the character ratio is what they bound
        ({}, {}, False),
    ],
)
def test_a_range_given_without_its_metric_is_said_to_bound_the_metric_in_force(
    tmp_path: Path, file: dict, flags: dict, noted: bool
) -> None:
    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump({"input": "in.csv", **file}), encoding="utf-8")
    note = range_note(load_config(str(conf), flags, command=("augshard", "run")))
    assert (note is not None) == noted
    if noted:
        assert "bound the embedding metric (MiniLM cosine" in note
        assert note.endswith("pass --quality-metric char_ratio for the original tool's character ratio")


@pytest.mark.slow
def test_the_original_tools_range_flags_get_one_note(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(4))
    proc = run_cli("run", "--input", "in.csv", "--methods", "nlp_keyboard", "--quality-min-sim", "0.55",
                   "--quality-max-sim", "0.95", "--dry-run", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "--quality-metric char_ratio" in line]
    assert len(notes) == 1 and notes[0].startswith("note: --quality-min-sim 0.55 / --quality-max-sim 0.95 bound")


# --- export: the originals by default, library versions and the input's hash ------------------------------------


@pytest.mark.slow
def test_export_includes_the_originals_and_records_versions_and_the_inputs_hash(first: Path) -> None:
    proc = run_cli("export", "--output-root", ROOT, "--to", "train", cwd=first)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    facts = json.loads((first / "train" / "export.json").read_text(encoding="utf-8"))
    rows = pq.read_table(first / "train" / "data").to_pandas()
    assert facts["originals"] == (rows["k"] == 0).sum() == 16 and facts["export"]["include_originals"] is True
    meta = json.loads(next((first / ROOT).glob("combo_*/meta.json")).read_text(encoding="utf-8"))
    assert facts["library_versions"] == meta["library_versions"] and "nlpaug" in facts["library_versions"]
    assert facts["input_sha256"] == meta["source"]["sha256"] == facts["source"]["sha256"]
    card = (first / "train" / "README.md").read_text(encoding="utf-8")
    assert f"nlpaug {meta['library_versions']['nlpaug']}" in card and meta["source"]["sha256"] in card

    none = run_cli("export", "--output-root", ROOT, "--to", "variants", "--no-originals", cwd=first)
    assert none.returncode == 0, none.stderr
    facts = json.loads((first / "variants" / "export.json").read_text(encoding="utf-8"))
    written = pq.read_metadata(first / "variants" / facts["files"][0]).num_rows
    assert facts["originals"] == 0 and facts["rows"] == written
    old = run_cli("export", "--output-root", ROOT, "--to", "old", "--include-originals", cwd=first)
    assert old.returncode == 0 and old.stderr.count("note: --include-originals") == 1, old.stderr
    assert json.loads((first / "old" / "export.json").read_text(encoding="utf-8"))["originals"] == 16
    both = run_cli("export", "--output-root", ROOT, "--to", "x", "--include-originals", "--no-originals", cwd=first)
    assert both.returncode == 2 and "give one of them" in both.stderr
