"""`augshard report`: one self-contained HTML page (inline PNG charts) about a run's outputs, for a researcher."""

from __future__ import annotations

import difflib
import html
import re
import time
from pathlib import Path
from typing import Any

from augshard.core import columns as col
from augshard.core.config import DEFAULT_LOG_DIR, DEFAULT_OUTPUT_NAME
from augshard.core.errors import OutputError
from augshard.events.status import discover
from augshard.events.stream import ComboDone, ComboStart, ShardDone, events_path, read_events
from augshard.report.charts import chart_label_flips, chart_rows, chart_shards, chart_similarity
from augshard.report.evaluation import evaluation_html
from augshard.report.model import ComboReport
from augshard.storage.manifest import read_manifest
from augshard.storage.meta import ComboMeta, read_meta
from augshard.storage.outputs import check_output, run_protected
from augshard.storage.store import META
from augshard.storage.temporaries import write_atomic


def load(output_root: Path, output_name: str, examples: int) -> list[ComboReport]:
    import pyarrow.parquet as pq

    manifest = output_root / output_name
    if not manifest.is_file():
        raise OutputError(f"manifest not found: {manifest} (run `augshard run` or `augshard merge` first)")
    combos = []
    for outcome in read_manifest(manifest):
        c = ComboReport(outcome)
        if outcome.ok:
            data = output_root / outcome.dataset_path
            try:
                c.meta = read_meta(data.parent / META)
                if not data.is_file():
                    raise FileNotFoundError(f"no dataset file at {data}")
                table = pq.read_table(data)
                c.similarities = [s for s in table.column(col.SIMILARITY).to_pylist() if s is not None]
                c.examples = _pick_examples(table, c.meta, examples)
            except Exception as exc:  # noqa: BLE001 - a broken combo is shown as such, `verify` says why
                c.meta, c.similarities, c.examples = None, [], []
                c.problem = f"{type(exc).__name__}: {exc}"[:300]
        combos.append(c)
    return combos


def _pick_examples(table: Any, meta: ComboMeta, n: int) -> list[dict[str, Any]]:
    """The first variant of `n` input rows spread over the dataset."""
    source = meta.source
    original = col.original_column(bool(source.evidence_col))
    variant = source.evidence_col or source.text_col
    wanted = (original, variant, col.SIMILARITY, col.VARIANT, col.ROW_KEY, col.LABEL_PRED, col.LABEL_AGREES)
    cols = [c for c in wanted if c in table.column_names]
    if n <= 0 or original not in cols or variant not in cols:
        return []
    rows = [r for r in table.select(cols).to_pylist() if r.get(col.VARIANT, 0) == 0]
    step = max(1, len(rows) // n)
    return [
        {
            "original": r[original],
            "variant": r[variant],
            "similarity": r.get(col.SIMILARITY),
            "key": r.get(col.ROW_KEY),
            "label_pred": r.get(col.LABEL_PRED),  # with --label-col: the variant's predicted label
            "label_agrees": r.get(col.LABEL_AGREES),
        }
        for r in rows[::step][:n]
    ]


def diff_html(original: str, variant: str) -> tuple[str, str]:
    """Word-level diff: removed words struck through in the original, new words marked in the variant."""
    a, b = re.findall(r"\S+|\s+", original), re.findall(r"\S+|\s+", variant)
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old, new = html.escape("".join(a[i1:i2])), html.escape("".join(b[j1:j2]))
        if op == "equal":
            left.append(old)
            right.append(new)
        else:
            if old:
                left.append(f"<del>{old}</del>")
            if new:
                right.append(f"<ins>{new}</ins>")
    return "".join(left), "".join(right)


def shard_timings(
    log_dir: Path, num_shards: int, damaged: list[str] | None = None
) -> tuple[dict[int, float], dict[str, float]]:
    """Each shard's wall time (its last shard_done), and when each combo started (or was found complete); the
    reasons of event lines that are no event (skipped) go to `damaged`."""
    walls, order = {}, {}
    for i in range(num_shards):
        for e in read_events(events_path(log_dir, i, num_shards), damaged):
            if isinstance(e, ShardDone):
                walls[i] = e.duration
            elif isinstance(e, (ComboStart, ComboDone)) and e.combo_id not in order:
                order[e.combo_id] = e.ts
    return walls, order


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 18px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid #e3e3e3;border-radius:8px;
padding:10px 16px;min-width:120px}.card b{display:block;font-size:1.5em}.card span{color:#666;font-size:.85em}
img{max-width:100%;background:#fff;border:1px solid #eee;border-radius:6px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.9em}
th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f0f0f0}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.failed{color:#b00020}.ok{color:#2e7d32}.unavailable{color:#a66b00}
details{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:8px 0;padding:6px 10px}
summary{cursor:pointer;font-weight:600}
.ex td{width:42%}.ex td.sim{width:8%;text-align:right}.ex td.flip{color:#C44E52;font-weight:600}
del{background:#fde2e2;text-decoration:line-through;color:#8a1c1c}ins{background:#dcf5dc;text-decoration:none}
code{background:#f0f0f0;padding:0 3px;border-radius:3px}
h3{margin:28px 0 6px}.cap{color:#666;font-size:.85em;margin:2px 0 14px}
.wide{overflow-x:auto;max-width:100%;margin:6px 0 14px}table.eval td.name{overflow-wrap:anywhere;min-width:10em}
table.eval td.n,table.eval td.v{white-space:nowrap}table.eval.methods{width:auto;min-width:50%}
td.helps{color:#2e7d32;font-weight:600}td.hurts{color:#b00020;font-weight:600}td.unclear{color:#666}
tr.gap td{color:#666;text-align:center;font-style:italic}
"""


def render_html(combos: list[ComboReport], output_root: Path, log_dir: Path) -> str:
    """The page: a header with the run's settings and headline numbers, then one section per topic."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>augshard report: {html.escape(str(output_root))}</title><style>{CSS}</style></head><body><main>",
        "<h1>augshard report</h1>",
        *_header(combos, output_root, log_dir),
        *_charts(combos, log_dir),
        "<h2 id='combos'>Combos</h2>",
        f"<div class='wide'>{_combo_table(combos)}</div>",  # many columns: it scrolls in its box, not the page
        *_low_yields(combos),
        *_label_section(combos),
        *evaluation_html(output_root, _fingerprints(combos)),
        *_problems(combos),
        *_examples(combos),
        "</main></body></html>",
    ]
    return "\n".join(parts)


def _ok(combos: list[ComboReport]) -> list[ComboReport]:
    return [c for c in combos if c.ok]


def _bounds(combos: list[ComboReport]) -> tuple[float | None, float | None]:
    """The accepted similarity range of the run (none with `--quality-metric none`)."""
    first = next((c.meta for c in _ok(combos) if c.meta), None)
    quality = first.quality if first else None
    return (quality.min_sim, quality.max_sim) if quality and quality.metric != "none" else (None, None)


def _header(combos: list[ComboReport], output_root: Path, log_dir: Path) -> list[str]:
    esc, ok = html.escape, _ok(combos)
    first = next((c.meta for c in ok if c.meta), None)
    lo, hi = _bounds(combos)
    total_rows = sum(c.rows for c in ok)
    candidates = sum(c.meta.candidates for c in ok if c.meta)
    cards = [
        (f"{len(ok)}/{len(combos)}", "combos ok"),
        (f"{total_rows:,}", "rows generated"),
        (f"{total_rows / candidates * 100:.0f}%" if candidates else "-", "candidates accepted"),
        (str(sum(1 for c in combos if not c.ok and not c.unavailable)), "failed"),
        (str(sum(1 for c in combos if c.unavailable)), "unavailable"),
        _input_rows(first),
        (str(len({c.outcome.shard for c in combos})), "shards"),
    ]
    return [
        f"<p class='sub'>{esc(str(output_root))} · input <code>{esc(first.source.path if first else '?')}</code>"
        f" · seed {first.seed if first else '?'} · quality {esc(first.quality.metric if first else '?')}"
        f" ({esc(first.quality.scope if first else '?')} scope)"
        f" [{esc(str(lo))}, {esc(str(hi))}] · {esc(_variants_per_row(first))}"
        f" · plan {esc(first.plan_fingerprint if first else '?')}"
        f" · generated {time.strftime('%Y-%m-%d %H:%M')}</p>",
        "<div class='cards'>" + "".join(f"<div class='card'><b>{v}</b><span>{k}</span></div>" for v, k in cards),
        "</div>",
    ]


def _variants_per_row(first: ComboMeta | None) -> str:
    """How many variants a row asked for: one count, or per class (--balance, --variants-per-class)."""
    if first is None:
        return "? variants per row"
    if first.balance is None:
        return f"{first.variants_per_sample} variants per row"
    per_class = ", ".join(f"{c.label or '(no label)'} {c.per_row}" for c in first.balance.classes)
    target = f" to {first.balance.target:,}" if first.balance.target is not None else ""
    return f"variants per row by class{target}: {per_class}"


def _input_rows(meta: ComboMeta | None) -> tuple[str, str]:
    """The input file's row count, and how many of them could be used (and why the others could not)."""
    if meta is None:
        return "0", "input rows"
    total = meta.rows_input + meta.rows_skipped
    if not meta.rows_skipped:
        return f"{total:,}", "input rows, all usable"
    why = ", ".join(f"{n:,}: {reason.replace('_', ' ')}" for reason, n in sorted(meta.rows_skipped_by_reason.items()))
    return f"{total:,}", f"input rows, {meta.rows_input:,} usable ({why})"


def _charts(combos: list[ComboReport], log_dir: Path) -> list[str]:
    parts = []
    if _ok(combos):
        parts += [
            "<h2 id='rows'>Rows and acceptance per combo</h2>",
            "<p>Accepted variants per combo, and the share of drawn candidates that were accepted (the rest were "
            "unchanged, duplicates, or outside the similarity range).</p>",
            f"<img alt='rows and acceptance rate per combo' src='data:image/png;base64,{chart_rows(combos)}'>",
        ]
        sim = chart_similarity(combos, *_bounds(combos))
        parts.append("<h2 id='similarity'>Similarity per method</h2>")
        if sim:
            parts.append(f"<img alt='similarity distribution per method' src='data:image/png;base64,{sim}'>")
        else:
            parts.append("<p>No similarities were recorded (<code>--quality-metric none</code>).</p>")
    num_shards = _num_shards(log_dir, combos)
    damaged: list[str] = []
    shard_times, order = shard_timings(log_dir, num_shards, damaged) if num_shards else ({}, {})
    timing = chart_shards(combos, shard_times, order)
    if timing:
        parts.append("<h2 id='shards'>Time per shard</h2>")
        parts.append(f"<img alt='time per shard' src='data:image/png;base64,{timing}'>")
    if damaged:
        parts.append(f"<p>Skipped {len(damaged)} damaged line(s) of the shards' event streams "
                     f"(first: {html.escape(damaged[0])}): the times per shard leave them out.</p>")  # fmt: skip
    return parts


def _problems(combos: list[ComboReport]) -> list[str]:
    esc = html.escape
    failed = [c for c in combos if not c.ok and not c.unavailable]
    unavailable = [c for c in combos if c.unavailable]
    if not (failed or unavailable):
        return []
    parts = ["<h2 id='problems'>Failed and unavailable combos</h2><ul>"]
    for c in failed + unavailable:
        parts.append(
            f"<li><span class='{esc(c.status)}'>{esc(c.status)}</span> <b>{esc(c.name)}</b>: {esc(c.error)}</li>"
        )
    return [*parts, "</ul>"]


def _examples(combos: list[ComboReport]) -> list[str]:
    esc = html.escape
    parts = [
        "<h2 id='examples'>Examples: original vs variant</h2>",
        "<p>First variants of rows spread over each dataset; <del>removed</del> and <ins>new</ins> words.</p>",
    ]
    for i, c in enumerate(sorted(_ok(combos), key=lambda c: (c.k, c.name))):
        parts.append(f"<details{' open' if i < 3 else ''}><summary>{esc(c.name)} — {c.rows:,} rows</summary>")
        checked = any(ex.get("label_agrees") is not None for ex in c.examples)
        label_head = "<th>label check</th>" if checked else ""
        parts.append(f"<table class='ex'><tr><th>original</th><th>variant</th><th>similarity</th>{label_head}</tr>")
        for ex in c.examples:
            left, right = diff_html(str(ex["original"]), str(ex["variant"]))
            sim = f"{ex['similarity']:.3f}" if isinstance(ex["similarity"], float) else "-"
            label = ""
            if checked and ex.get("label_agrees") is False:
                label = f"<td class='flip'>flips to {esc(str(ex.get('label_pred')))}</td>"
            elif checked:
                label = "<td>same label</td>"
            parts.append(f"<tr><td>{left}</td><td>{right}</td><td class='sim'>{sim}</td>{label}</tr>")
        parts.append("</table></details>")
    return parts


def _num_shards(log_dir: Path, combos: list[ComboReport]) -> int:
    """The shard count of the run: from the shards' events if they exist, else the highest shard seen."""
    n = discover(log_dir)
    seen = [c.outcome.shard for c in combos]
    return n if n is not None and (not seen or max(seen) < n) else (max(seen) + 1 if seen else 0)


YIELD_COLUMNS = ("unchanged", "duplicates", "below_min_sim", "above_max_sim", "step_rejected", "call_errors")


def _combo_table(combos: list[ComboReport]) -> str:
    """Every combo: its counts, where its rejected candidates went, and its label flips (--label-col)."""
    esc = html.escape
    heads = ["combo", "k", "status", "rows", "asked", *(c.replace("_", " ") for c in YIELD_COLUMNS)]
    heads += ["accepted", "mean sim.", "label flips", "time", "shard"]
    rows = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>"]
    for c in sorted(combos, key=lambda c: (c.k, c.name)):
        status = c.status
        y = c.meta.variants if c.meta else None
        counts = [str(getattr(y, name)) if y else "-" for name in YIELD_COLUMNS]
        flips = c.outcome.label_flip_share
        cells = [
            f"{c.rows:,}",
            f"{y.asked:,}" if y else "-",
            *counts,
            f"{c.acceptance * 100:.0f}%" if c.acceptance is not None else "-",
            f"{sum(c.similarities) / len(c.similarities):.3f}" if c.similarities else "-",
            f"{flips:.1%}" if flips is not None else "-",
            f"{c.outcome.duration_s:.1f}s" if c.ran else "-",
            str(c.outcome.shard),
        ]
        rows.append(
            f"<tr><td>{esc(c.name)}</td><td class='n'>{c.k}</td><td class='{esc(status)}'>{esc(status)}</td>"
            + "".join(f"<td class='n'>{cell}</td>" for cell in cells)
            + "</tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _low_yields(combos: list[ComboReport]) -> list[str]:
    """Combos that kept fewer than half the variants they asked for, each with why in numbers."""
    low = [c for c in _ok(combos) if c.meta and c.meta.variants and c.meta.variants.explanation]
    if not low:
        return []
    items = "".join(f"<li><b>{html.escape(c.name)}</b>: {html.escape(c.meta.variants.explanation)}</li>" for c in low)
    return ["<h2 id='yield'>Low yields</h2><ul>" + items + "</ul>"]


def _label_section(combos: list[ComboReport]) -> list[str]:
    """The label check (--label-col): how far its classifier can be trusted, and each combo's label-flip share."""
    checked = [c for c in _ok(combos) if c.meta and c.meta.label_check]
    if not checked:
        return []
    lc = checked[0].meta.label_check
    parts = [
        "<h2 id='labels'>Label check</h2>",
        f"<p>A logistic regression on the originals' sentence embeddings predicts <code>{html.escape(lc.label_col)}"
        f"</code> ({len(lc.classes)} classes, {lc.originals:,} originals) with a cross-validated accuracy of "
        f"{lc.cv_accuracy} (always guessing the most frequent label: {lc.majority_rate}). A flip is a variant "
        "predicted another class than its original: a hint that the augmentation changed what the text says, "
        "not proof; the check annotates, and <code>augshard export --drop-label-flips</code> decides.</p>",
    ]
    if lc.warning:
        parts.append(f"<p class='failed'>{html.escape(lc.warning)}</p>")
    parts.append(f"<img alt='label flips per combo' src='data:image/png;base64,{chart_label_flips(checked)}'>")
    return parts


def _fingerprints(combos: list[ComboReport]) -> dict[str, str | None]:
    return {c.outcome.combo_id: c.meta.combo_fingerprint if c.meta else None for c in combos}


def write_report(
    output_root: str | Path,
    out: str | Path = "report.html",
    output_name: str = DEFAULT_OUTPUT_NAME,
    log_dir: str | Path = DEFAULT_LOG_DIR,
    examples: int = 3,
    cache_dir: str | Path | None = None,
    force: bool = False,
) -> Path:
    """The page at `out`, which passes the one output-path rule first (`outputs.check_output`): never the run's
    input, a file of the run, its cache or logs, a link or a non-file; an existing file only when it is an augshard
    report, or with `force`."""
    import matplotlib

    matplotlib.use("Agg")
    root = Path(output_root)
    if not root.is_dir():
        raise OutputError(f"output root not found: {root}")
    protected = run_protected(root, cache_dir, log_dir, own=(root / "report.html",))
    check_output(out, "--out", protected, "report", force=force)
    combos = load(root, output_name, examples)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, render_html(combos, root, Path(log_dir)))
    return path
