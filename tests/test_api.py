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
from helpers import API_METHODS, REPO, api_settings, sample_rows, write_csv

import augshard
from augshard.api import Action, ExportedCombo, ExportResult, RunProgress
from augshard.core.errors import AugshardError, ConfigError, InputError, OutputError
from augshard.exporting.model import Dropped, ExportFacts
from augshard.storage.manifest import read_manifest, shard_manifest_name


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A notebook-like session: one process runs the same settings twice (the second is a cached rerun), with a
    progress callback, and keeps what each call returned."""
    root = tmp_path_factory.mktemp("api")
    write_csv(root / "in.csv", sample_rows(20))
    seen: list[RunProgress] = []
    first = augshard.run(**api_settings(root), on_progress=seen.append)
    manifests = [read_manifest(first.manifest)]  # as each run left it: the second rewrites it
    second = augshard.run(**api_settings(root))
    manifests.append(read_manifest(second.manifest))
    return {"root": root, "first": first, "second": second, "seen": seen, "manifests": manifests}


def test_plan_shows_combos_on_shards_and_writes_nothing(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(20))
    plan = augshard.plan(**api_settings(tmp_path))
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


def test_a_runs_outcomes_are_what_its_manifests_say(session: dict, tmp_path: Path) -> None:
    """The API types a run's combos from what its shards returned, not by reading the manifests back: the same rows,
    for a first run, a resumed rerun and one shard's job of a job array."""
    for result, manifest in zip((session["first"], session["second"]), session["manifests"], strict=True):
        assert list(result.combos) == manifest
        assert result.document is not None and result.document.exit_code == 0
        assert sum(row.ok for row in result.document.shards) == len(result.combos) == 3
    root = tmp_path / "job"
    shutil.copytree(session["root"], root)
    job = augshard.run(**(api_settings(root) | {"shard_index": 1}))
    assert job.manifest == root / "out" / shard_manifest_name(1, 2)
    assert list(job.combos) == read_manifest(job.manifest) and all(o.resumed for o in job.combos)
    assert job.document is not None and job.document.rows == sum(o.rows for o in job.combos)


def test_the_plans_and_the_exports_old_names_still_answer_with_a_warning(session: dict, tmp_path: Path) -> None:
    plan = session["first"].plan
    with pytest.warns(FutureWarning, match="plan_fingerprint"):
        assert plan.fingerprint == plan.plan_fingerprint == session["first"].document.plan_fingerprint
    result = augshard.export(tmp_path / "train", output_root=session["first"].output_root)
    assert ExportResult is ExportFacts and isinstance(result.combos[0], ExportedCombo)
    assert result == ExportFacts.read(tmp_path / "train")  # the value returned is the document written
    with pytest.warns(FutureWarning, match="plan_fingerprint"):
        assert result.plan == result.plan_fingerprint
    with pytest.warns(FutureWarning, match="to_json"):
        assert result.facts == result.to_json()
    with pytest.warns(FutureWarning, match="dropped.label_flips"):
        assert result.dropped["label_flips"] == result.dropped.label_flips == 0
    assert result.dropped == Dropped() and result.path == tmp_path / "train"


def test_progress_snapshots_reach_every_shard_done(session: dict) -> None:
    seen = session["seen"]
    # The callback fires only when something changed: on a loaded machine the shards may finish between two polls,
    # so the one guarantee is the last snapshot, with every shard done; any earlier one came while they ran.
    assert seen and all(isinstance(s, RunProgress) for s in seen)
    last = seen[-1]
    assert last.finished and [st.state for st in last.shards] == ["done", "done"]
    assert last.combos_done == 3 and last.rows == session["first"].rows
    assert all(not s.finished for s in seen[:-1])


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
    assert result.originals > 0 and result.rows == result.originals + sum(c.kept for c in result.combos)
    assert len(result.combos) == 3 and (tmp_path / "train" / "export.json").is_file()
    written = sum(pq.read_metadata(tmp_path / "train" / f).num_rows for f in result.files)
    assert written == result.rows


def test_evaluate_returns_each_combos_gain(session: dict, tmp_path: Path) -> None:
    """Each gain is the mean of its paired per-split differences, its interval the corrected t interval (scipy's t
    quantile, n - 1 degrees of freedom, the folds' own n_test/n_train), its Holm p from the section's p-values."""
    import statistics

    from scipy import stats

    from augshard.evaluation.evaluate import EvaluateOptions, load_originals, load_run, make_splits

    out = tmp_path / "evaluation.json"
    root = session["first"].output_root
    result = augshard.evaluate("label", root, folds=3, repeats=2, workers=1, out=out)
    assert result.path == out and out.is_file()
    assert sorted(g.combo_dir for g in result.gains) == sorted(o.combo_dir for o in session["first"].combos)
    options = EvaluateOptions(label_col="label", output_root=root, folds=3, repeats=2)
    splits = make_splits(load_originals(load_run(options)[0], options), options)
    ratio = statistics.fmean(len(s.test) / len(s.train) for s in splits)
    (section,) = result.document.to_json()["results"]
    baseline = section["baseline"]["macro_f1_splits"]
    rows = {c["combo_dir"]: c for c in section["combos"]}
    p_values = {}
    for g in result.gains:
        diffs = [a - b for a, b in zip(rows[g.combo_dir]["macro_f1_splits"], baseline, strict=True)]
        n, mean, sd = len(diffs), statistics.fmean(diffs), statistics.stdev(diffs)
        assert n == len(splits) == 6 and g.gain == pytest.approx(mean, abs=1e-5)
        assert g.macro_f1 == pytest.approx(statistics.fmean(rows[g.combo_dir]["macro_f1_splits"]), abs=1e-5)
        if sd == 0:  # every split moved by the same amount: no spread to widen
            assert g.ci_low == g.ci_high == pytest.approx(mean, abs=1e-5)
            p_values[g.combo_dir] = 1.0 if mean == 0 else 0.0
            continue
        se = sd * (1 / n + ratio) ** 0.5
        half = stats.t.ppf(0.975, n - 1) * se
        assert (g.ci_low, g.ci_high) == pytest.approx((mean - half, mean + half), abs=1e-4)
        p_values[g.combo_dir] = 2 * stats.t.sf(abs(mean) / se, n - 1)
    ordered = sorted(p_values, key=p_values.get)
    for rank, combo in enumerate(ordered):  # Holm: (m - rank) x p, never below the previous one
        expected = max(min(1.0, (len(ordered) - r) * p_values[c]) for r, c in enumerate(ordered[: rank + 1]))
        gain = next(g for g in result.gains if g.combo_dir == combo)
        assert gain.p_holm == pytest.approx(expected, abs=1e-4)
        assert gain.verdict == ("no evidence" if expected >= 0.05 else "helps" if gain.ci_low > 0 else "hurts")


def test_export_chooses_the_best_combos_by_the_evaluation(session: dict, tmp_path: Path) -> None:
    root = tmp_path / "out"
    shutil.copytree(session["first"].output_root, root)
    gains = augshard.evaluate("label", root, folds=2, workers=1).gains
    best = max(gains, key=lambda g: g.gain)
    result = augshard.export(tmp_path / "best", root, best=1)
    assert [c.combo_dir for c in result.combos] == [best.combo_dir] and result.left_out == {}
    assert "best" in json.dumps(result.to_json())  # the card and export.json say how the combos were chosen
    with pytest.raises(ConfigError, match="give no combos= or k="):
        augshard.export(tmp_path / "x", root, best=1, k=[1])


def test_unknown_or_bad_settings_are_config_errors_naming_the_field(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(5))
    with pytest.raises(ConfigError, match="unknown setting 'num_shard' \\(did you mean 'num_shards'\\?\\)"):
        augshard.run(input=str(tmp_path / "in.csv"), num_shard=2)
    with pytest.raises(ConfigError, match="^num_shards must be at least 1"):
        augshard.plan(input=str(tmp_path / "in.csv"), num_shards=0)
    with pytest.raises(ConfigError, match="progress must be"):
        augshard.run(input=str(tmp_path / "in.csv"), progress="yes")
    with pytest.raises(ConfigError, match="unknown export option 'dedup'"):
        augshard.export(tmp_path / "x", dedup="near")
    with pytest.raises(ConfigError, match="^k: expected sizes like 1,2, got '1,two'"):
        augshard.export(tmp_path / "x", k=[1, "two"])
    with pytest.raises(ConfigError, match="^train_sizes: expected fractions like 0.1,0.25,1.0, got 'half'"):
        augshard.evaluate("label", tmp_path, train_sizes="half")
    # Wrong-typed evaluate arguments: a ConfigError naming the option, never a TypeError from deep inside.
    with pytest.raises(ConfigError, match="evaluate option 'folds' must be a whole number, got '3'"):
        augshard.evaluate("label", tmp_path, folds="3")
    with pytest.raises(ConfigError, match="evaluate option 'label_col' must be a string, got None"):
        augshard.evaluate(None, tmp_path)
    with pytest.raises(ConfigError, match="evaluate option 'seed' must be a whole number, got 1.5"):
        augshard.evaluate("label", tmp_path, seed=1.5)
    with pytest.raises(ConfigError, match="evaluate option 'allow_incomplete' must be True or False, got 'no'"):
        augshard.evaluate("label", tmp_path, allow_incomplete="no")
    with pytest.raises(ConfigError, match="^seed must be between 0 and 2\\*\\*32 - 1 \\(repeats=1\\), got -1"):
        augshard.evaluate("label", tmp_path, seed=-1)
    with pytest.raises(ConfigError, match="^train_sizes: 0.5 given twice"):
        augshard.evaluate("label", tmp_path, train_sizes=[0.5, 0.5])
    with pytest.raises(ConfigError, match="as_ must be one of pandas, datasets"):
        augshard.load(tmp_path, as_="polars")
    with pytest.raises(OutputError, match="no finished run"):
        augshard.load(tmp_path)
    with pytest.raises(InputError) as missing:
        augshard.plan(input=str(tmp_path / "nope.csv"), methods=API_METHODS, quality_metric="char_ratio")
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
        "import augshard; from augshard.exporting.model import ExportOptions; "
        "from augshard.evaluation.evaluate import EvaluateOptions; "
        "from augshard.core.planning import make_plan; import augshard.api as api; "
        "assert augshard.export is api.export and augshard.evaluate is api.evaluate and augshard.plan is api.plan; "
        "import sys; assert not {'augshard.export', 'augshard.evaluate', 'augshard.plan'} & set(sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
