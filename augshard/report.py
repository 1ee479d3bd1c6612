"""`augshard report`: one self-contained HTML page (inline PNG charts) about a run's outputs, for a researcher."""

from __future__ import annotations

import base64
import difflib
import html
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augshard.errors import OutputError
from augshard.events import events_path, read_events
from augshard.manifest import read_manifest
from augshard.store import META

K_COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]


@dataclass
class ComboReport:
    entry: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)
    similarities: list[float] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.entry["methods"]

    @property
    def k(self) -> int:
        return int(self.entry["k"])

    @property
    def rows(self) -> int:
        return int(self.entry["rows"] or 0)

    @property
    def acceptance(self) -> float | None:
        """Accepted variants over candidates drawn."""
        candidates = self.meta.get("candidates")
        return self.rows / candidates if candidates else None


def load(output_root: Path, output_name: str, examples: int) -> list[ComboReport]:
    import pyarrow.parquet as pq

    manifest = output_root / output_name
    if not manifest.is_file():
        raise OutputError(f"manifest not found: {manifest} (run `augshard run` or `augshard merge` first)")
    combos = []
    for e in read_manifest(manifest):
        c = ComboReport(e)
        if e["status"] == "ok":
            data = output_root / e["dataset_path"]
            try:
                c.meta = json.loads((data.parent / META).read_text(encoding="utf-8"))
                table = pq.read_table(data)
            except Exception as exc:  # noqa: BLE001 - a broken combo is shown as such, `verify` says why
                c.entry = {**e, "status": "unreadable", "error": f"{type(exc).__name__}: {exc}"[:300]}
                combos.append(c)
                continue
            c.similarities = [s for s in table.column("similarity").to_pylist() if s is not None]
            c.examples = _pick_examples(table, c.meta, examples)
        combos.append(c)
    return combos


def _pick_examples(table: Any, meta: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The first variant of `n` input rows spread over the dataset."""
    source = meta.get("source") or {}
    if source.get("evidence_col"):
        original, variant = "evidence_original", source["evidence_col"]
    else:
        original, variant = "text_original", source.get("text_col", "text")
    cols = [c for c in (original, variant, "similarity", "variant", "row_key") if c in table.column_names]
    if n <= 0 or original not in cols or variant not in cols:
        return []
    rows = [r for r in table.select(cols).to_pylist() if r.get("variant", 0) == 0]
    step = max(1, len(rows) // n)
    return [
        {"original": r[original], "variant": r[variant], "similarity": r.get("similarity"), "key": r.get("row_key")}
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


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def chart_rows(combos: list[ComboReport]) -> str:
    import matplotlib.pyplot as plt

    ok = [c for c in combos if c.entry["status"] == "ok"]
    ok.sort(key=lambda c: (c.k, c.name), reverse=True)
    height = max(2.5, 0.32 * len(ok) + 1.2)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, height), sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    names = [c.name for c in ok]
    colours = [K_COLOURS[(c.k - 1) % len(K_COLOURS)] for c in ok]
    ax1.barh(names, [c.rows for c in ok], color=colours)
    for i, c in enumerate(ok):
        ax1.text(c.rows, i, f" {c.rows:,}", va="center", fontsize=8)
    ax1.set_xlabel("rows (accepted variants)")
    ax1.set_title("Rows per combo")
    acc = [(c.acceptance or 0) * 100 for c in ok]
    ax2.barh(names, acc, color=colours, alpha=0.8)
    for i, a in enumerate(acc):
        ax2.text(a, i, f" {a:.0f}%", va="center", fontsize=8)
    ax2.set_xlim(0, 110)
    ax2.set_xlabel("accepted / candidates (%)")
    ax2.set_title("Acceptance rate")
    for ax in (ax1, ax2):
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(axis="y", labelsize=8)
    ks = sorted({c.k for c in ok})
    handles = [plt.Rectangle((0, 0), 1, 1, color=K_COLOURS[(k - 1) % len(K_COLOURS)]) for k in ks]
    fig.legend(handles, [f"k={k}" for k in ks], loc="lower center", bbox_to_anchor=(0.5, -0.04), ncol=len(ks),
               fontsize=8, frameon=False)  # fmt: skip
    return _png(fig)


def chart_similarity(combos: list[ComboReport], lo: float | None, hi: float | None) -> str | None:
    """Similarity of accepted variants per method: the single-method combos (all combos when there are none)."""
    import matplotlib.pyplot as plt

    ok = [c for c in combos if c.entry["status"] == "ok" and c.similarities]
    chosen = [c for c in ok if c.k == 1] or ok
    if not chosen:
        return None
    chosen.sort(key=lambda c: c.name)
    fig, ax = plt.subplots(figsize=(11, max(2.5, 0.45 * len(chosen) + 1.2)))
    parts = ax.violinplot([c.similarities for c in chosen], orientation="horizontal", showmedians=True, widths=0.8)
    for body in parts["bodies"]:
        body.set_facecolor(K_COLOURS[0])
        body.set_alpha(0.45)
    ax.set_yticks(range(1, len(chosen) + 1), [f"{c.name} (n={len(c.similarities)})" for c in chosen], fontsize=8)
    for bound in (lo, hi):
        if bound is not None:
            ax.axvline(bound, color="#C44E52", linestyle="--", linewidth=1)
    ax.set_xlabel("similarity to the original evidence (accepted variants; dashed: the accepted range)")
    ax.set_title("Similarity distribution per method" + (" (single-method combos)" if chosen[0].k == 1 else ""))
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def chart_shards(combos: list[ComboReport], shard_times: dict[int, float], order: dict[str, float]) -> str | None:
    """Each shard's combos as stacked segments of their duration, and the shard's wall time from its events."""
    import matplotlib.pyplot as plt

    per_shard: dict[int, list[ComboReport]] = {}
    for c in combos:
        if c.entry["status"] in ("ok", "failed") and c.entry.get("shard", "") != "":
            per_shard.setdefault(int(c.entry["shard"]), []).append(c)
    if not per_shard:
        return None
    shards = sorted(per_shard)
    fig, ax = plt.subplots(figsize=(11, max(2.2, 0.5 * len(shards) + 1.2)))
    for row, shard in enumerate(shards):
        left = 0.0
        total = sum(float(c.entry.get("duration_s") or 0) for c in per_shard[shard]) or 1.0
        # In the order the shard ran them (from its events), else by name.
        ran = sorted(per_shard[shard], key=lambda c: (order.get(c.entry["combo_id"], float("inf")), c.name))
        for i, c in enumerate(ran):
            d = float(c.entry.get("duration_s") or 0)
            colour = "#C44E52" if c.entry["status"] == "failed" else K_COLOURS[(c.k - 1) % len(K_COLOURS)]
            ax.barh(row, d, left=left, color=colour, edgecolor="white", alpha=0.9 if i % 2 else 0.7)
            if d / total > 0.12:
                ax.text(left + d / 2, row, c.name, ha="center", va="center", fontsize=7, color="white", clip_on=True)
            left += d
        wall = shard_times.get(shard)
        if wall:
            ax.plot([wall], [row], marker="|", markersize=18, color="black")
        ax.text(max(left, wall or 0), row, f"  {len(per_shard[shard])} combos, {left:.1f}s", va="center", fontsize=8)
    ax.set_yticks(range(len(shards)), [f"shard {s}" for s in shards])
    ax.invert_yaxis()
    ax.set_xlabel("seconds (segments: combos; black tick: the shard's wall time from its events)")
    ax.set_title("Time per shard")
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def shard_timings(log_dir: Path, num_shards: int) -> tuple[dict[int, float], dict[str, float]]:
    """Each shard's wall time (its last shard_done), and when each combo started (or was found complete)."""
    walls, order = {}, {}
    for i in range(num_shards):
        for e in read_events(events_path(log_dir, i, num_shards)):
            if e.get("event") == "shard_done" and e.get("duration") is not None:
                walls[i] = float(e["duration"])
            elif e.get("event") in ("combo_start", "combo_done") and e.get("combo_id") not in order:
                order[e["combo_id"]] = float(e.get("ts", 0))
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
.ex td{width:45%}.ex td.sim{width:10%;text-align:right}
del{background:#fde2e2;text-decoration:line-through;color:#8a1c1c}ins{background:#dcf5dc;text-decoration:none}
code{background:#f0f0f0;padding:0 3px;border-radius:3px}
"""


def render_html(combos: list[ComboReport], output_root: Path, log_dir: Path) -> str:
    ok = [c for c in combos if c.entry["status"] == "ok"]
    first = ok[0].meta if ok else {}
    quality = first.get("quality", {})
    lo, hi = quality.get("min_sim"), quality.get("max_sim")
    if quality.get("metric") == "none":
        lo = hi = None
    shards = {int(c.entry["shard"]) for c in combos if c.entry.get("shard", "") != ""}
    num_shards = _num_shards(log_dir, combos)
    shard_times, order = shard_timings(log_dir, num_shards) if num_shards else ({}, {})
    failed = [c for c in combos if c.entry["status"] not in ("ok", "unavailable")]
    source = first.get("source") or {}
    unavailable = [c for c in combos if c.entry["status"] == "unavailable"]
    total_rows = sum(c.rows for c in ok)
    candidates = sum(c.meta.get("candidates", 0) for c in ok)
    esc = html.escape
    cards = [
        (f"{len(ok)}/{len(combos)}", "combos ok"),
        (f"{total_rows:,}", "rows generated"),
        (f"{total_rows / candidates * 100:.0f}%" if candidates else "-", "candidates accepted"),
        (str(len(failed)), "failed"),
        (str(len(unavailable)), "unavailable"),
        (f"{first.get('rows_input', 0):,}", "input rows"),
        (str(len(shards)), "shards"),
    ]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>augshard report: {esc(str(output_root))}</title><style>{CSS}</style></head><body><main>",
        "<h1>augshard report</h1>",
        f"<p class='sub'>{esc(str(output_root))} · input <code>{esc(str(source.get('path', '?')))}</code>"
        f" · seed {esc(str(first.get('seed', '?')))} · quality {esc(str(quality.get('metric', '?')))}"
        f" [{esc(str(lo))}, {esc(str(hi))}] · {first.get('variants_per_sample', '?')} variants per row"
        f" · plan {esc(str(first.get('plan_fingerprint', '?')))}"
        f" · generated {time.strftime('%Y-%m-%d %H:%M')}</p>",
        "<div class='cards'>" + "".join(f"<div class='card'><b>{v}</b><span>{k}</span></div>" for v, k in cards),
        "</div>",
    ]
    if ok:
        parts += [
            "<h2 id='rows'>Rows and acceptance per combo</h2>",
            "<p>Accepted variants per combo, and the share of drawn candidates that were accepted (the rest were "
            "unchanged, duplicates, or outside the similarity range).</p>",
            f"<img alt='rows and acceptance rate per combo' src='data:image/png;base64,{chart_rows(combos)}'>",
        ]
        sim = chart_similarity(combos, lo, hi)
        parts.append("<h2 id='similarity'>Similarity per method</h2>")
        if sim:
            parts.append(f"<img alt='similarity distribution per method' src='data:image/png;base64,{sim}'>")
        else:
            parts.append("<p>No similarities were recorded (<code>--quality-metric none</code>).</p>")
    timing = chart_shards(combos, shard_times, order)
    if timing:
        parts.append("<h2 id='shards'>Time per shard</h2>")
        parts.append(f"<img alt='time per shard' src='data:image/png;base64,{timing}'>")
    parts += ["<h2 id='combos'>Combos</h2>", _combo_table(combos)]
    if failed or unavailable:
        parts.append("<h2 id='problems'>Failed and unavailable combos</h2><ul>")
        for c in failed + unavailable:
            parts.append(
                f"<li><span class='{esc(c.entry['status'])}'>{esc(c.entry['status'])}</span> "
                f"<b>{esc(c.name)}</b>: {esc(c.entry.get('error', ''))}</li>"
            )
        parts.append("</ul>")
    parts.append("<h2 id='examples'>Examples: original vs variant</h2>")
    parts.append("<p>First variants of rows spread over each dataset; <del>removed</del> and <ins>new</ins> words.</p>")
    for i, c in enumerate(sorted(ok, key=lambda c: (c.k, c.name))):
        parts.append(f"<details{' open' if i < 3 else ''}><summary>{esc(c.name)} — {c.rows:,} rows</summary>")
        parts.append("<table class='ex'><tr><th>original</th><th>variant</th><th>similarity</th></tr>")
        for ex in c.examples:
            left, right = diff_html(str(ex["original"]), str(ex["variant"]))
            sim = f"{ex['similarity']:.3f}" if isinstance(ex["similarity"], float) else "-"
            parts.append(f"<tr><td>{left}</td><td>{right}</td><td class='sim'>{sim}</td></tr>")
        parts.append("</table></details>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _num_shards(log_dir: Path, combos: list[ComboReport]) -> int:
    """The shard count of the run: from the shards' events if they exist, else the highest shard seen."""
    from augshard.events import discover

    n = discover(log_dir)
    seen = [int(c.entry["shard"]) for c in combos if c.entry.get("shard", "") != ""]
    return n if n is not None and (not seen or max(seen) < n) else (max(seen) + 1 if seen else 0)


def _combo_table(combos: list[ComboReport]) -> str:
    esc = html.escape
    rows = [
        "<table><tr><th>combo</th><th>k</th><th>status</th><th>rows</th><th>rejected</th><th>accepted</th>"
        "<th>mean sim.</th><th>time</th><th>shard</th></tr>"
    ]
    for c in sorted(combos, key=lambda c: (c.k, c.name)):
        status = c.entry["status"]
        acc = f"{c.acceptance * 100:.0f}%" if c.acceptance is not None else "-"
        mean = f"{sum(c.similarities) / len(c.similarities):.3f}" if c.similarities else "-"
        secs = f"{float(c.entry.get('duration_s') or 0):.1f}s" if status in ("ok", "failed") else "-"
        rows.append(
            f"<tr><td>{esc(c.name)}</td><td class='n'>{c.k}</td><td class='{esc(status)}'>{esc(status)}</td>"
            f"<td class='n'>{c.rows:,}</td><td class='n'>{esc(c.entry.get('rows_rejected', '') or '-')}</td>"
            f"<td class='n'>{acc}</td><td class='n'>{mean}</td><td class='n'>{secs}</td>"
            f"<td class='n'>{esc(c.entry.get('shard', ''))}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def write_report(
    output_root: str | Path,
    out: str | Path = "report.html",
    output_name: str = "manifest_final.csv",
    log_dir: str | Path = "logs/augment",
    examples: int = 3,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    root = Path(output_root)
    if not root.is_dir():
        raise OutputError(f"output root not found: {root}")
    combos = load(root, output_name, examples)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(combos, root, Path(log_dir)), encoding="utf-8")
    return path
