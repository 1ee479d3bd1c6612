"""An 80-column terminal: the live table (`run`), `monitor` and the run's summary keep every column, show numbers
whole (compact: 4.6k rows, 12m), and put each combo name on one line, shortened with an ellipsis."""

from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace

from rich.cells import cell_len
from rich.console import Console

from augshard.events.monitor import TABLE_COLUMNS, print_statuses, render
from augshard.events.narrow import compact, compact_duration, fit
from augshard.events.status import ShardStatus
from augshard.runner.summary import SUMMARY_COLUMNS, RunDocument, ShardRow, _print_summary
from augshard.storage.merge import ManifestSummary
from augshard.storage.outcome import ShardState

WIDTH = 80
LONG = "nlp_keyboard+nlp_randchar_swap+nlp_randword_delete+ta_wordnet_swap"
NOW = 10_000.0
# A digit next to an ellipsis: a number cut short.
CUT_NUMBER = re.compile(r"\d…|…\d|\d\.\.\.")


def statuses() -> list[ShardStatus]:
    running = ShardStatus(
        0, state=ShardState.RUNNING, combos_total=120, combos_done=37, current=LONG, current_id="c",
        current_done=4_600, current_total=120_000, rows_per_combo=120_000, rows=1_234_567, work_rows=4_600_000,
        work_started=NOW - 2_000, work_ts=NOW, last_ts=NOW, phase="scoring",
    )  # fmt: skip
    measuring = ShardStatus(1, state=ShardState.RUNNING, combos_total=119, current="nlp_keyboard", current_id="k",
                            last_ts=NOW)  # fmt: skip
    done = ShardStatus(2, state=ShardState.DONE, combos_total=118, combos_done=118, rows=987_654, duration=3_725.0)
    dead = ShardStatus(3, state=ShardState.DEAD, combos_total=5, pid=4_194_301, current=LONG, rows=12_000)
    stalled = ShardStatus(4, state=ShardState.STALLED, combos_total=5, current=LONG, last_ts=NOW - 95)
    return [running, measuring, done, dead, stalled, ShardStatus(5)]


def drawn(renderable: object, width: int = WIDTH) -> list[str]:
    console = Console(width=width, record=True, force_terminal=True, color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def table_lines(lines: list[str]) -> list[str]:
    """The shard rows of a drawn table (after its header rule, before the footer)."""
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) <= set("─ ") and line.strip())
    return [line for line in lines[rule + 1 :] if line.strip()][: len(statuses())]


def assert_fits(lines: list[str]) -> None:
    assert lines and all(cell_len(line) <= WIDTH for line in lines), [line for line in lines if cell_len(line) > WIDTH]
    assert not [line for line in lines if CUT_NUMBER.search(line)]


def test_the_live_table_fits_80_columns_with_every_column_and_whole_numbers() -> None:
    lines = drawn(render(statuses(), NOW))
    assert_fits(lines)
    header = next(line for line in lines if "shard" in line)
    assert [c for c in TABLE_COLUMNS if c not in header] == []  # no column dropped: the ETA is there
    rows = table_lines(lines)
    assert len(rows) == len(statuses())  # one line per shard: no combo name wrapped over several lines
    running, measuring, done, dead, stalled, pending = rows
    assert re.search(r" nlp_\S*… \(4\.6k/120k\b", running)  # the name shortened with an ellipsis, on one line
    assert "1.2M" in running and running.rstrip().endswith("1h12m")  # (120 - 37) * 120k - 4.6k rows at 2.3k rows/s
    assert measuring.rstrip().endswith("timing")
    assert "988k" in done and done.rstrip().endswith("1h02m")
    assert "… (gone)" in dead and "… (silent 2m)" in stalled
    assert "waiting to start" in pending


def test_monitor_at_80_columns_is_the_same_table() -> None:
    console = Console(width=WIDTH, record=True, force_terminal=True, color_system=None)
    print_statuses(console, statuses(), "table", title="augshard monitor: logs/augment (6 shards)")
    lines = console.export_text().splitlines()
    assert_fits(lines)
    assert len(table_lines(lines)) == len(statuses())
    assert any("ETA" in line for line in lines)


def test_a_wide_terminal_keeps_the_full_numbers() -> None:
    lines = drawn(render(statuses(), NOW), width=160)
    assert any("1,234,567" in line for line in lines) and any("4,600/120,000 rows" in line for line in lines)


def test_the_summary_fits_80_columns() -> None:
    shards = [
        ShardRow(i, "done", 118, 117, 3, 1, 1_234_567 * (i + 1), 3_725.0 + i, f"logs/augment/shard_{i}_of_12.log")
        for i in range(12)
    ]
    merged = ManifestSummary(combos=1_416, ok=1_404, failed=12, rows=9_876_543, per_k=Counter({1: 40, 2: 1_376}))
    doc = RunDocument("f" * 16, 12, "--num-shards", shards, [], [], [], None, [], 1, merged,
                      manifest="out/manifest_final.csv", wall_s=3_800.0)  # fmt: skip
    console = Console(width=WIDTH, record=True, force_terminal=True, color_system=None)
    prep = SimpleNamespace(cfg=SimpleNamespace(shard_index=None, output_root="out"))
    _print_summary(prep, [], None, doc, console, "table")  # type: ignore[arg-type]
    lines = console.export_text().splitlines()
    assert_fits(lines)
    header = next(line for line in lines if "outcome" in line)
    assert [c for c in SUMMARY_COLUMNS if c not in header] == []
    rows = [line for line in lines if re.match(r"\s*\d+\s+✓ done", line)]
    assert len(rows) == 12 and "1.2M" in rows[0] and "1h02m" in rows[0] and "15M" in rows[-1]


def test_compact_numbers_and_names() -> None:
    assert [compact(n) for n in (987, 4_600, 46_000, 999_999, 1_234_567)] == ["987", "4.6k", "46k", "1.0M", "1.2M"]
    assert [compact_duration(s) for s in (45, 725, 3_725)] == ["45s", "12m", "1h02m"]
    name, tails = "nlp_keyboard+nlp_randchar_swap", (" (4.6k/120k, 2.3k/s)", " (4.6k/120k)")
    assert fit((name, tails), 60) == name + tails[0]
    assert fit((name, tails), 24) == "nlp_keyboar… (4.6k/120k)"
    assert fit((name, tails), 14) == "nlp_keyboard+…"  # no tail is cut: left out whole
