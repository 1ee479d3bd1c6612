"""The "Which augmentations help" section of `augshard report`: evaluation.json as a sentence of protocol, the
baseline, the verdicts, a forest plot and the tables per features set, and the learning curve."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from augshard.core.errors import OutputError
from augshard.evaluation.findings import EVALUATION, read_document
from augshard.evaluation.gains import ALPHA, HELPS, HURTS, UNCLEAR
from augshard.report.charts import FOREST_MOST, chart_forest, chart_learning_curve, rank_by_gain


def evaluation_html(output_root: Path, fingerprints: dict[str, str | None]) -> list[str]:
    """`augshard evaluate`'s answer when the run has an evaluation.json; one line when it cannot be read.
    `fingerprints`: each combo of the manifest and its current fingerprint (None when its meta.json is unreadable)."""
    path = output_root / EVALUATION
    if not path.exists():
        return []
    try:
        return _evaluation_section(read_document(path), fingerprints)
    except OutputError as exc:
        problem = str(exc)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # a document of another shape
        problem = f"{path}: {type(exc).__name__}: {exc}"
    return [f"<p class='failed' id='evaluation'>The evaluation is not shown: {html.escape(problem)}</p>"]


def _evaluation_section(doc: dict[str, Any], fingerprints: dict[str, str | None]) -> list[str]:
    """The protocol in a sentence, then per features set at its largest train size: the baseline, the verdicts,
    a forest plot and the tables; then the learning curve when there are several train sizes."""

    esc, p, results = html.escape, doc["protocol"], doc["results"]
    features = list(dict.fromkeys(s["features"] for s in results))
    largest = [max((s for s in results if s["features"] == f), key=lambda s: s["train_size"]) for f in features]
    group = f", originals sharing <code>{esc(p['group_col'])}</code> kept in one fold" if p.get("group_col") else ""
    repeats = f"{p['repeats']} repeat{'s' if p['repeats'] != 1 else ''}"
    parts = [
        "<h2 id='evaluation'>Which augmentations help</h2>",
        f"<p><code>augshard evaluate</code> trained a classifier of <code>{esc(p['label_col'])}</code> "
        f"({len(p['classes'])} classes) on the <code>{esc(p['field'])}</code> of {p['originals']:,} originals, in "
        f"{p['folds']} folds &times; {repeats}{group}, with {esc(' and '.join(features))} features: once on the "
        "training originals alone (the baseline) and once on them plus each combo's variants of those same "
        "originals, both scored on the test originals only. Each gain is paired split by split; its interval: "
        f"{esc(p['interval'])}; its p: {esc(p['adjustment'])}.</p>",
        *_evaluation_staleness(doc, largest, fingerprints),
    ]
    for section in largest:
        parts += _evaluation_features(section)
    curve = chart_learning_curve(results)
    if curve:
        parts += [
            "<h3>Learning curve</h3>",
            f"<img alt='learning curve: macro-F1 per train size' src='data:image/png;base64,{curve}'>",
            "<p class='cap'>Macro-F1 on the test originals when each fold trains on a fraction of its training "
            "originals: the baseline (dashed) and the combo with the largest mean gain at the largest train size "
            "(solid), one colour per features set; bands: &plusmn; 1 standard deviation over the splits.</p>",
        ]
    return parts


def _evaluation_staleness(
    doc: dict[str, Any], sections: list[dict[str, Any]], fingerprints: dict[str, str | None]
) -> list[str]:
    """Evaluated combos remade or gone since (their fingerprints differ): the numbers may describe other data."""
    if doc["source"]["kind"] != "run":
        return [f"<p>It evaluates the export <code>{html.escape(str(doc['source']['path']))}</code> as a whole.</p>"]
    present = set(fingerprints)
    known = {combo_id: fp for combo_id, fp in fingerprints.items() if fp}
    stale = sorted({
        r["name"] for s in sections for r in s["combos"]
        if r["combo_id"] not in present or known.get(r["combo_id"], r["combo_fingerprint"]) != r["combo_fingerprint"]
    })  # fmt: skip
    if not stale:
        return []
    return [
        f"<p class='failed'>{len(stale)} evaluated combo(s) were remade or are gone since this evaluation "
        f"({html.escape(', '.join(stale[:5]))}{', …' if len(stale) > 5 else ''}): run <code>augshard evaluate</code> "
        "again before trusting these numbers.</p>"
    ]


VERDICT_CLASSES = {"helps": "helps", "hurts": "hurts", "no evidence": "unclear"}
EVALUATION_TABLE_ENDS = 10  # combos shown from each end of the ranking


def _evaluation_features(section: dict[str, Any]) -> list[str]:

    esc, rows, base = html.escape, rank_by_gain(section["combos"]), section["baseline"]
    verdicts = [r["verdict"] for r in rows]
    f1 = base["macro_f1"]
    parts = [
        f"<h3>{esc(section['features'])} features, train size {section['train_size']:g}</h3>",
        f"<p>Baseline macro-F1 <b>{f1['mean']:.4f} &plusmn; {f1['std']:.4f}</b> (mean &plusmn; std over "
        f"{section['splits']} splits, {base['train_originals']:,.0f} training originals on average). After Holm's "
        f"adjustment over the {len(rows)} combos, <b>{verdicts.count(HELPS)}</b> help, "
        f"<b>{verdicts.count(HURTS)}</b> hurt and <b>{verdicts.count(UNCLEAR)}</b> show no evidence either way. A "
        f"combo helps only when its adjusted p is below {ALPHA:g} and its whole 95% interval lies above 0 (hurts: "
        "below 0); an interval that includes 0 is not a gain, however large its mean.</p>",
    ]
    if not rows:
        return parts
    cut = f" Only the {FOREST_MOST // 2} best and the {FOREST_MOST // 2} worst of {len(rows)} combos are plotted."
    parts += [
        f"<img alt='forest plot: macro-F1 gain per combo, {esc(section['features'])}' "
        f"src='data:image/png;base64,{chart_forest(section)}'>",
        "<p class='cap'>Each combo's mean macro-F1 gain over the baseline with its 95% interval; green: helps, red: "
        f"hurts, grey: no evidence.{cut if len(rows) > FOREST_MOST else ''}</p>",
        *_evaluation_combos(rows),
        *_evaluation_methods(section["methods"]),
    ]
    return parts


def _combo_name(name: str) -> str:
    """A combo name that may wrap after each `+`."""
    return html.escape(name).replace("+", "+<wbr>")


def _gain_cells(g: dict[str, float]) -> str:
    return f"<td class='n'>{g['mean']:+.4f}</td><td class='n'>[{g['ci_low']:+.4f}, {g['ci_high']:+.4f}]</td>"


def _p(p: float) -> str:
    return "&lt;0.001" if p < 0.001 else f"{p:.3f}"


def _evaluation_combos(rows: list[dict[str, Any]]) -> list[str]:
    """The best and the worst combos by mean gain (every one when there are few)."""
    n = EVALUATION_TABLE_ENDS
    shown = rows if len(rows) <= 2 * n else rows[:n] + [None] + rows[-n:]
    heads = ["#", "combo", "k", "variants used", "macro-F1", "gain", "95% CI", "p (Holm)", "verdict"]
    out = [
        f"<p>{'Every combo' if len(rows) <= 2 * n else f'The {n} best and the {n} worst of {len(rows)} combos'} "
        "by mean gain (variants used: mean per split).</p>",
        "<div class='wide'><table class='eval combos'><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>",
    ]
    rank = {id(r): i for i, r in enumerate(rows, 1)}
    for r in shown:
        if r is None:
            out.append(f"<tr class='gap'><td colspan='{len(heads)}'>… {len(rows) - 2 * n} combos …</td></tr>")
            continue
        f1, verdict = r["macro_f1"], r["verdict"]
        out.append(
            f"<tr><td class='n'>{rank[id(r)]}</td><td class='name'>{_combo_name(r['name'])}</td>"
            f"<td class='n'>{r['k']}</td><td class='n'>{r['variants_used']:,.0f}</td>"
            f"<td class='n'>{f1['mean']:.4f} &plusmn; {f1['std']:.4f}</td>{_gain_cells(r['gain'])}"
            f"<td class='n'>{_p(r['gain']['p_holm'])}</td>"
            f"<td class='v {VERDICT_CLASSES.get(verdict, '')}'>{html.escape(verdict)}</td></tr>"
        )
    return [*out, "</table></div>"]


def _evaluation_methods(methods: list[dict[str, Any]]) -> list[str]:
    """Each method's marginal effect: the gain of the combos with it minus that of the combos without it."""
    if not methods:
        return []
    heads = ["method", "combos with it", "marginal gain", "95% CI"]
    out = [
        "<p>Marginal effect of each method: per split, the mean gain of the combos that contain it minus that of "
        "the combos that do not (intervals not adjusted).</p>",
        "<div class='wide'><table class='eval methods'><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>",
    ]
    for m in methods:
        total = m["combos_with"] + m["combos_without"]
        out.append(
            f"<tr><td class='name'>{html.escape(m['method'])}</td><td class='n'>{m['combos_with']} of {total}</td>"
            f"{_gain_cells(m['marginal'])}</tr>"
        )
    return [*out, "</table></div>"]
