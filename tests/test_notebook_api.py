"""The API as a notebook uses it: results as DataFrames and HTML tables, progress with a fraction and an ETA that
moves inside a combo and is sent only when it changed, errors in Python's words, and docs/api.md's names real."""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import os
import re
from pathlib import Path

import pytest
from helpers import REPO, api_settings, run_cli, sample_rows, write_csv
from rich.console import Console

import augshard
import augshard.api
from augshard.api import RunProgress
from augshard.core.errors import AugshardError, ConfigError, OutputError
from augshard.events.monitor import current_label, render
from augshard.events.status import fold
from augshard.events.stream import ComboDone, ComboStart, Progress, ShardStart, events_path, read_events
from augshard.storage.outcome import ShardState

ANSI = re.compile(r"\x1b\[")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("notebook")
    write_csv(root / "in.csv", sample_rows(20))
    seen: list[RunProgress] = []
    plan = augshard.plan(**api_settings(root))
    result = augshard.run(**api_settings(root), on_progress=seen.append)
    streams = [read_events(events_path(root / "logs", i, 2)) for i in range(2)]
    exported = augshard.export(root / "train", result.output_root)
    evaluated = augshard.evaluate("label", result.output_root, folds=2, workers=1)
    augshard.run(**api_settings(root), force=True)  # every combo again, each method call answered by the cache
    again = [read_events(events_path(root / "logs", i, 2)) for i in range(2)]
    return {"root": root, "plan": plan, "run": result, "seen": seen, "export": exported, "evaluation": evaluated,
            "streams": streams, "again": again}  # fmt: skip


# --- results in a notebook ---------------------------------------------------------------------------------------


def assert_html(html: str, names: list[str]) -> None:
    assert html.startswith("<table>") and html.endswith("</table>") and "<caption>" in html
    assert not ANSI.search(html) and "[bold" not in html  # no terminal codes, no Rich markup
    assert all(name in html for name in names)


def test_a_plan_is_a_table_of_its_combos(session: dict) -> None:
    plan = session["plan"]
    df = plan.to_pandas()
    assert list(df.columns) == ["shard", "combo_dir", "combo_id", "methods", "k", "cost", "action", "reason", "seconds"]
    assert len(df) == len(plan.combos) == 3
    assert plan.estimate is not None and list(df["seconds"]) == [plan.estimate.of(c.combo_id) for c in plan.combos]
    assert (df["seconds"] >= 0).all()  # cheap methods on 20 rows: a tenth of a second or less
    assert sorted(df["methods"]) == sorted("+".join(c.methods) for c in plan.combos)
    assert set(df["action"]) == {"run"} and list(df["cost"]) == [c.cost for c in plan.combos]
    assert_html(plan._repr_html_(), [c.combo_dir for c in plan.combos] + [plan.plan_fingerprint])


def test_a_run_result_is_a_table_of_its_combos(session: dict) -> None:
    result = session["run"]
    df = result.to_pandas()
    assert len(df) == 3 and list(df["combo_dir"]) == [o.combo_dir for o in result.combos]
    assert list(df["rows"]) == [o.rows for o in result.combos] and set(df["status"]) == {"ok"}
    assert df["rows"].sum() == result.rows
    assert_html(result._repr_html_(), [o.combo_dir for o in result.combos] + [f"{result.rows:,} rows"])
    # Values are escaped: an error holding markup is shown as text.
    failed = dataclasses.replace(result.combos[0], error="<b>boom</b> [red]x[/red]")
    html = dataclasses.replace(result, combos=(failed,))._repr_html_()
    assert "&lt;b&gt;boom&lt;/b&gt; [red]x[/red]" in html and "<b>" not in html


def test_an_export_is_a_table_of_its_combos(session: dict) -> None:
    exported = session["export"]
    df = exported.to_pandas()
    assert list(df.columns) == [f.name for f in dataclasses.fields(type(exported.combos[0]))]
    assert list(df["kept"]) == [c.kept for c in exported.combos] and len(df) == 3
    assert_html(exported._repr_html_(), [c.combo_dir for c in exported.combos] + [str(exported.path)])


def test_an_evaluation_is_a_table_of_its_gains(session: dict) -> None:
    evaluated = session["evaluation"]
    df = evaluated.to_pandas()
    assert len(df) == len(evaluated.gains) == 3  # one section (tfidf, every originals), one row per combo
    assert {"features", "train_size", "combo_dir", "gain", "ci_low", "ci_high", "verdict"} <= set(df.columns)
    assert list(df["gain"]) == [g.gain for g in evaluated.gains]
    assert list(df["methods"]) == ["+".join(g.methods) for g in evaluated.gains]
    assert_html(evaluated._repr_html_(), [g.combo_dir for g in evaluated.gains])


# --- progress ----------------------------------------------------------------------------------------------------


def test_progress_is_sent_only_when_it_changed_and_ends_whole(session: dict) -> None:
    seen = session["seen"]
    assert seen and all(a.shown != b.shown for a, b in zip(seen, seen[1:], strict=False))
    fractions = [s.fraction for s in seen]
    assert fractions == sorted(fractions) and all(0.0 <= f <= 1.0 for f in fractions)
    last = seen[-1]
    assert last.finished and last.fraction == 1.0 and last.eta_s == 0.0
    assert last.rows_done == 3 * 20  # every combo went through the 20 input rows
    assert "100%: 3/3 combos" in repr(last)


def test_rows_move_inside_a_running_combo() -> None:
    """The fraction, the rows done and the ETA move with the shard's progress events, before any combo ends."""
    start = [ShardStart(ts=0.0, combos=4, plan_fingerprint="p", num_shards=1, pid=1, host="h"),
             ComboStart(ts=1.0, pid=1, combo_id="a", methods="m", k=1)]  # fmt: skip
    steps = [Progress(ts=1.0 + n, pid=1, combo_id="a", rows_done=25 * n, rows_total=100) for n in (0, 1, 2, 3)]
    snapshots = [RunProgress((fold(0, start + steps[: n + 1]),), float(n)) for n in range(4)]
    assert [s.rows_done for s in snapshots] == [0, 25, 50, 75]
    assert [s.fraction for s in snapshots] == [0.0, 25 / 400, 50 / 400, 75 / 400]
    assert all(s.combos_done == 0 and s.rows == 0 for s in snapshots)  # no combo ended yet
    assert len({s.shown for s in snapshots}) == 4  # each one is news
    done = fold(0, [*start, *steps, ComboDone(ts=5.0, pid=1, combo_id="a", methods="m", rows=90, rows_input=100)])
    after = RunProgress((done,), 5.0)
    assert after.rows_done == 100 and after.fraction == 0.25 and after.rows == 90
    assert done.state is ShardState.RUNNING and RunProgress((done,), 6.0).shown == after.shown  # the time is no news


def moved_at(events: list) -> int:
    """The index of the first progress event of a stream whose rows moved."""
    return next(i for i, e in enumerate(events) if isinstance(e, Progress) and e.rows_done > 0)


def test_a_cached_rerun_shows_from_cache_instead_of_a_speed(session: dict) -> None:
    moved = [[e for e in ev if isinstance(e, Progress) and e.rows_done > 0] for ev in session["streams"]]
    again = [[e for e in ev if isinstance(e, Progress) and e.rows_done > 0] for ev in session["again"]]
    assert any(moved) and all(e.calls_computed > 0 for m in moved for e in m)
    assert any(again) and all(e.calls_computed == 0 for m in again for e in m)
    for shard in [i for i in (0, 1) if again[i]]:  # a shard may have stolen every combo of the other
        events = session["again"][shard]
        during = events[: moved_at(events) + 1]  # the stream just after a combo's rows moved
        st, now = fold(shard, during), during[-1].ts
        assert st.current and st.from_cache
        assert "from cache" in current_label(st, now) and "rows/s" not in current_label(st, now)
        console = Console(width=80, record=True, force_terminal=True, color_system=None)
        console.print(render([st], now))
        assert "from cache" in console.export_text() and "/s" not in console.export_text()
    for shard in [i for i in (0, 1) if moved[i]]:
        first = session["streams"][shard]
        computed = fold(shard, first[: moved_at(first) + 1])
        assert computed.current and not computed.from_cache


# --- errors in Python's words ------------------------------------------------------------------------------------


def test_api_errors_name_arguments_not_flags(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(5))
    given = {"input": str(tmp_path / "in.csv")}
    cases = [
        (lambda: augshard.plan(**given, num_shards=0), ConfigError, "num_shards must be at least 1 (or 'auto'), got 0"),
        (lambda: augshard.plan(**given, num_shards=2, shard_index=3), ConfigError,
         "shard_index must be in 0..1 for num_shards=2, got 3"),
        (lambda: augshard.api.make_config(**given, quality_min_sim=2.0), ConfigError,
         "quality_min_sim must be within [0, 1], got 2.0"),
        (lambda: augshard.export(tmp_path / "x", best=1, combos="a"), ConfigError,
         "best=/min_gain= choose the combos from evaluation.json: give no combos= or k="),
        (lambda: augshard.evaluate("label", tmp_path, seed=-1), ConfigError,
         "seed must be between 0 and 2**32 - 1 (repeats=1), got -1"),
    ]  # fmt: skip
    for call, kind, message in cases:
        with pytest.raises(kind) as caught:
            call()
        assert str(caught.value) == message
        assert "--" in (caught.value.cli_message or "")  # the CLI's words kept for the CLI
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(OutputError) as caught:
        augshard.export(tmp_path / "full", tmp_path / "out")
    assert str(caught.value).endswith("choose another to=, or pass force=True to replace it")
    assert "--" not in str(caught.value)


def test_the_cli_still_names_its_flags(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    done = run_cli("export", "--to", "full", "--output-root", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert "choose another --to, or pass --force to replace it" in " ".join(done.stderr.split())
    assert "force=True" not in done.stderr


def test_an_error_without_a_flag_is_left_as_it_is() -> None:
    from augshard.core.errors import in_python_words

    exc = AugshardError("no finished run in out: pass it again")
    in_python_words(exc, {"--force": ("force", True)})
    assert str(exc) == "no finished run in out: pass it again" and exc.cli_message is None
    exc = ConfigError("--no-steal goes with --num-shards 2 or more; --best: a number")
    arguments = {"--no-steal": ("steal", False), "--num-shards": ("num_shards", None), "--best": ("best", None)}
    in_python_words(exc, arguments)
    assert str(exc) == "steal=False goes with num_shards=2 or more; best: a number"


# --- docs/api.md names what exists ---------------------------------------------------------------------------------

NOT_OURS = {"DataFrame", "TypeError", "FutureWarning", "True", "False", "None"}


def resolve(dotted: str) -> object:
    """`augshard.x.y.Name.attr` imported: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            value = getattr(value, attr)
        return value
    raise ImportError(dotted)


def test_every_name_docs_api_mentions_imports() -> None:
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks are examples; the names are in code spans
    spans = re.findall(r"`([^`\n]+)`", text)
    # Dotted names (file names such as augshard.yaml aside).
    found = (m.group(0) for s in spans for m in re.finditer(r"\baugshard(?:\.[A-Za-z_]\w*)+", s))
    dotted = {name for name in found if not name.endswith((".yaml", ".py", ".json", ".csv", ".md"))}
    assert "augshard.evaluation.options.EvaluateOptions" in dotted and len(dotted) > 10
    missing = []
    for name in sorted(dotted):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    # Capitalised names (RunPlan, ExportFacts.read, Action.SKIP) are the API's or a module's the doc names.
    homes = [augshard, importlib.import_module("augshard.api")]
    for name in sorted(set(dotted) - set(missing)):
        value = resolve(name)
        homes.append(value if isinstance(value, type(augshard)) else importlib.import_module(value.__module__))
    for span in spans:
        m = re.fullmatch(r"([A-Z]\w*)((?:\.\w+)*)(?:\(.*\))?", span)
        if m is None or m.group(1) in NOT_OURS or hasattr(builtins, m.group(1)) or m.group(1).isupper():
            continue
        home = next((h for h in homes if hasattr(h, m.group(1))), None)
        try:
            value = getattr(home, m.group(1))
            for attr in filter(None, m.group(2).split(".")):
                value = getattr(value, attr)
        except AttributeError:
            missing.append(span)
    assert missing == [], missing


def test_docs_api_tells_the_notebook_features() -> None:
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    for name in ("to_pandas()", "_repr_html_", "fraction", "eta_s", "rows_done", "force=True"):
        assert name in text, name


# --- in a real Jupyter kernel ------------------------------------------------------------------------------------


def test_a_kernel_shows_the_result_as_html_and_no_terminal_codes(tmp_path: Path) -> None:
    """Without ipywidgets: the shard table once, then the result as its HTML table, never a raw ANSI code."""
    jupyter_client = pytest.importorskip("jupyter_client", reason="the dev extra is not installed")
    pytest.importorskip("ipykernel", reason="the dev extra is not installed")
    from test_notebook import _execute

    write_csv(tmp_path / "in.csv", sample_rows(20))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    manager = jupyter_client.KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))
    manager.start_kernel(cwd=str(tmp_path), env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=240)
        cell = 'import augshard\naugshard.run(input="in.csv", methods=["nlp_keyboard"], quality_metric="char_ratio")'
        messages = _execute(client, cell)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    bundles = [m["content"]["data"] for m in messages if m["msg_type"] in ("display_data", "execute_result")]
    texts = [v for b in bundles for v in b.values()] + [m["content"].get("text", "") for m in messages]
    assert not [t for t in texts if ANSI.search(str(t))]
    (result,) = [m["content"]["data"] for m in messages if m["msg_type"] == "execute_result"]
    assert result["text/html"].startswith("<table><caption>augshard run: 1 combos")
    assert "combo_1_nlp_keyboard" in result["text/html"]
