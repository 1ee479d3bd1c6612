"""Every command that reads a run finds it where conf/augshard.yaml put it, as `run` does; flags still win."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import run_cli, sample_rows, write_csv

from augshard.core.config import (
    DEFAULT_CACHE_DIR,
    DEFAULT_LOG_DIR,
    DEFAULT_OUTPUT_NAME,
    DEFAULT_OUTPUT_ROOT,
    RunConfig,
)
from augshard.core.errors import ConfigError
from augshard.core.run_paths import RunPaths, run_paths

CONF = """\
input: {path: ../in.csv, text_col: text, evidence_col: evidence, id_col: id}
methods: [nlp_keyboard, nlp_randchar_swap]
combo_mode: single
quality_metric: char_ratio
num_shards: 1
output_root: elsewhere/sets
log_dir: elsewhere/logs
cache_dir: elsewhere/cache
output_name: final.csv
"""


def _ok(proc: object) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr  # type: ignore[attr-defined]
    return proc.stdout  # type: ignore[attr-defined]


def test_defaults_live_in_config_and_run_config_uses_them() -> None:
    cfg = RunConfig()
    assert (cfg.output_root, cfg.output_name, cfg.cache_dir, cfg.log_dir) == (
        DEFAULT_OUTPUT_ROOT, DEFAULT_OUTPUT_NAME, DEFAULT_CACHE_DIR, DEFAULT_LOG_DIR,
    )  # fmt: skip
    assert RunPaths() == RunPaths(DEFAULT_OUTPUT_ROOT, DEFAULT_OUTPUT_NAME, DEFAULT_CACHE_DIR, DEFAULT_LOG_DIR)


def test_run_paths_default_then_file_then_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_paths() == RunPaths()  # no conf/ here: the shipped file, which names no paths
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "augshard.yaml").write_text(CONF, encoding="utf-8")
    assert run_paths() == RunPaths("elsewhere/sets", "final.csv", "elsewhere/cache", "elsewhere/logs")
    assert run_paths(output_root="flag", log_dir="logs2").output_root == "flag"
    assert run_paths(output_root="flag", log_dir="logs2").log_dir == "logs2"
    assert run_paths(output_root="flag").output_name == "final.csv"
    other = tmp_path / "other.yaml"
    other.write_text("log_dir: from/other\n", encoding="utf-8")
    assert run_paths(str(other)) == RunPaths(log_dir="from/other")
    other.write_text("log_dri: typo\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting 'log_dri'"):
        run_paths(str(other))


@pytest.mark.slow
def test_every_command_finds_the_run_the_config_file_placed(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(24))
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "augshard.yaml").write_text(CONF, encoding="utf-8")
    root = tmp_path / "elsewhere" / "sets"

    _ok(run_cli("run", "--no-live", "--keep-shards", cwd=tmp_path))
    assert (root / "final.csv").is_file() and not (tmp_path / "data").exists()
    assert sorted(p.name for p in (tmp_path / "elsewhere" / "logs").glob("*.events.jsonl")) == [
        "shard_0_of_1.events.jsonl"
    ]
    (root / "final.csv").unlink()

    merged = json.loads(_ok(run_cli("merge", "--format", "json", "--keep-shards", cwd=tmp_path)))
    assert merged["manifest"] == str(Path("elsewhere/sets/final.csv")) and (root / "final.csv").is_file()
    checked = json.loads(_ok(run_cli("verify", "--format", "json", cwd=tmp_path)))
    assert checked["problems"] == [] and checked["combos"] == 2
    # The time per shard is drawn from the event streams: the same chart as with --log-dir, another without them.
    charts = {}
    for name, flags in {
        "none": (),
        "flag": ("--log-dir", "elsewhere/logs"),
        "nowhere": ("--log-dir", "nowhere"),
    }.items():
        _ok(run_cli("report", "--out", f"{name}.html", *flags, cwd=tmp_path))
        page = (tmp_path / f"{name}.html").read_text(encoding="utf-8")
        charts[name] = re.search(r"alt='time per shard' src='([^']+)'", page).group(1)  # type: ignore[union-attr]
    assert charts["none"] == charts["flag"] != charts["nowhere"]
    shards = _ok(run_cli("monitor", "--format", "tsv", cwd=tmp_path))
    assert shards.splitlines()[1].split("\t")[:2] == ["0", "done"]
    facts = json.loads(_ok(run_cli("export", "--to", "out", "--format", "json", cwd=tmp_path)))
    assert len(facts["combos"]) == 2 and facts["rows"] > 0
    doc = json.loads(
        _ok(
            run_cli(
                "evaluate",
                "--label-col",
                "label",
                "--folds",
                "2",
                "--num-shards",
                "1",
                "--format",
                "json",
                cwd=tmp_path,
            )
        )  # fmt: skip
    )
    assert len(doc["results"][0]["combos"]) == 2 and (root / "evaluation.json").is_file()

    # A flag still wins over the file: an empty folder has no run.
    (tmp_path / "empty").mkdir()
    proc = run_cli("verify", "--output-root", "empty", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
