"""The Python API as a user calls it from a script or a notebook: plan, run, load, export, evaluate, bad settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import REPO, sample_rows, write_csv

import augshard
from augshard.api import Action, RunProgress
from augshard.errors import AugshardError, ConfigError, InputError, OutputError

METHODS = ["nlp_keyboard", "nlp_randchar_swap"]  # 3 combos: two singles and their pair


def settings(root: Path) -> dict:
    return dict(input=str(root / "in.csv"), text_col="text", id_col="id", methods=METHODS, quality_metric="char_ratio",
                num_shards=2, output_root=str(root / "out"), cache_dir=str(root / "cache"),
                log_dir=str(root / "logs"))  # fmt: skip


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A notebook-like session: one process runs the same settings twice (the second is a cached rerun), with a
    progress callback, and keeps what each call returned."""
    root = tmp_path_factory.mktemp("api")
    write_csv(root / "in.csv", sample_rows(20))
    seen: list[RunProgress] = []
    first = augshard.run(**settings(root), on_progress=seen.append)
    second = augshard.run(**settings(root))
    return {"root": root, "first": first, "second": second, "seen": seen}


def test_plan_shows_combos_on_shards_and_writes_nothing(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(20))
    plan = augshard.plan(**settings(tmp_path))
    assert plan.num_shards == 2 and plan.rows_usable == 20
    assert sorted(c.methods for c in plan.combos) == [("nlp_keyboard",), ("nlp_keyboard", "nlp_randchar_swap"),
                                                      ("nlp_randchar_swap",)]  # fmt: skip
    assert all(c.action is Action.RUN and c.shard in (0, 1) for c in plan.combos)
    assert sum(plan.shard_costs) == sum(c.cost for c in plan.combos)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # no output root, cache or logs


def test_run_returns_every_combo_with_its_rows_and_the_manifest(session: dict) -> None:
    first = session["first"]
    assert first.ok and first.exit_code == 0 and not first.failed
    assert first.manifest == session["root"] / "out" / "manifest_final.csv" and first.manifest.is_file()
    assert len(first.combos) == 3 and all(o.ok and o.rows > 0 and not o.resumed for o in first.combos)
    for o in first.combos:  # the rows it reports are the rows written
        assert pq.read_metadata(first.output_root / o.dataset_path).num_rows == o.rows
    assert first.rows == sum(o.rows for o in first.combos)


def test_a_rerun_in_the_same_session_reuses_every_combo(session: dict) -> None:
    first, second = session["first"], session["second"]
    assert second.ok and all(c.action is Action.SKIP for c in second.plan.combos)
    assert all(o.resumed for o in second.combos)
    assert sorted((o.combo_id, o.rows) for o in second.combos) == sorted((o.combo_id, o.rows) for o in first.combos)


def test_progress_snapshots_reach_every_shard_done(session: dict) -> None:
    seen = session["seen"]
    assert len(seen) >= 2 and all(isinstance(s, RunProgress) for s in seen)
    last = seen[-1]
    assert last.finished and [st.state for st in last.shards] == ["done", "done"]
    assert last.combos_done == 3 and last.rows == session["first"].rows
    assert not seen[0].finished  # the first came while shards were still to run


def test_load_as_pandas_and_as_datasets(session: dict) -> None:
    first = session["first"]
    df = augshard.load(first.output_root)
    assert len(df) == first.rows
    assert {"combo_id", "combo_dir", "methods", "k", "text", "text_original"} <= set(df.columns)
    assert df.groupby("combo_dir").size().to_dict() == {o.combo_dir: o.rows for o in first.combos}
    keyboard = next(o for o in first.combos if o.methods == "nlp_keyboard")
    ds = augshard.load(first, as_="datasets", combos=["nlp_keyboard"])
    assert type(ds).__name__ == "Dataset" and ds.num_rows == keyboard.rows
    assert set(ds["combo_dir"]) == {"combo_1_nlp_keyboard"}


def test_export_writes_a_training_set(session: dict, tmp_path: Path) -> None:
    result = augshard.export(tmp_path / "train", output_root=session["first"].output_root, dedupe="exact")
    assert result.rows > 0 and result.rows == sum(c.kept for c in result.combos)
    assert len(result.combos) == 3 and (tmp_path / "train" / "export.json").is_file()
    written = sum(pq.read_metadata(tmp_path / "train" / f).num_rows for f in result.files)
    assert written == result.rows


def test_evaluate_returns_each_combos_gain(session: dict, tmp_path: Path) -> None:
    out = tmp_path / "evaluation.json"
    result = augshard.evaluate("label", session["first"].output_root, folds=2, num_shards=1, out=out)
    assert result.path == out and out.is_file()
    assert sorted(g.combo_dir for g in result.gains) == sorted(o.combo_dir for o in session["first"].combos)
    assert all(g.ci_low <= g.gain <= g.ci_high for g in result.gains)


def test_export_chooses_the_best_combos_by_the_evaluation(session: dict, tmp_path: Path) -> None:
    root = tmp_path / "out"
    shutil.copytree(session["first"].output_root, root)
    gains = augshard.evaluate("label", root, folds=2, num_shards=1).gains
    best = max(gains, key=lambda g: g.gain)
    result = augshard.export(tmp_path / "best", root, best=1)
    assert [c.combo_dir for c in result.combos] == [best.combo_dir] and result.left_out == {}
    assert "best" in json.dumps(result.facts)  # the card and export.json say how the combos were chosen
    with pytest.raises(ConfigError, match="give no --combos or --k"):
        augshard.export(tmp_path / "x", root, best=1, k=[1])


def test_unknown_or_bad_settings_are_config_errors_naming_the_field(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(5))
    with pytest.raises(ConfigError, match="unknown setting 'num_shard' \\(did you mean 'num_shards'\\?\\)"):
        augshard.run(input=str(tmp_path / "in.csv"), num_shard=2)
    with pytest.raises(ConfigError, match="--num-shards must be at least 1"):
        augshard.plan(input=str(tmp_path / "in.csv"), num_shards=0)
    with pytest.raises(ConfigError, match="progress must be"):
        augshard.run(input=str(tmp_path / "in.csv"), progress="yes")
    with pytest.raises(ConfigError, match="unknown export option 'dedup'"):
        augshard.export(tmp_path / "x", dedup="near")
    with pytest.raises(ConfigError, match="--k: expected sizes like 1,2, got '1,two'"):
        augshard.export(tmp_path / "x", k=[1, "two"])
    with pytest.raises(ConfigError, match="--train-sizes: expected fractions like 0.1,0.25,1.0, got 'half'"):
        augshard.evaluate("label", tmp_path, train_sizes="half")
    with pytest.raises(ConfigError, match="as_ must be one of pandas, datasets"):
        augshard.load(tmp_path, as_="polars")
    with pytest.raises(OutputError, match="no finished run"):
        augshard.load(tmp_path)
    with pytest.raises(InputError) as missing:
        augshard.plan(input=str(tmp_path / "nope.csv"), methods=METHODS, quality_metric="char_ratio")
    assert isinstance(missing.value, AugshardError) and not (tmp_path / "out").exists()


def test_a_script_without_a_main_guard_runs_once(tmp_path: Path) -> None:
    """Spawned shard workers must not re-run the caller's script: it prints its result once, from the parent."""
    write_csv(tmp_path / "in.csv", sample_rows(10))
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        import augshard
        result = augshard.run(input="in.csv", methods=["nlp_keyboard"], quality_metric="char_ratio", num_shards=1)
        print("RESULT", result.exit_code, [o.status.value for o in result.combos])
    """))  # fmt: skip
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["RESULT 0 ['ok']"]
    assert done.stderr == ""  # quiet: no header, progress or summary


def test_api_functions_share_no_name_with_a_module() -> None:
    code = (
        "import augshard; from augshard.export_model import ExportOptions; "
        "from augshard.evaluation import EvaluateOptions; "
        "from augshard.planning import make_plan; import augshard.api as api; "
        "assert augshard.export is api.export and augshard.evaluate is api.evaluate and augshard.plan is api.plan; "
        "import sys; assert not {'augshard.export', 'augshard.evaluate', 'augshard.plan'} & set(sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
