"""The "Which augmentations help" section of `augshard report`: evaluation.json, read typed, as the protocol in a
sentence and per features set what the design can see, the verdicts (a forest plot and tables: the confirm stage's
first, then the screen's ranking), the per-class gains and the learning curve of the same combos."""

from __future__ import annotations

import html
from pathlib import Path

from augshard.core.errors import ConfigError, OutputError
from augshard.evaluation.document import (
    CONFIRM,
    EVALUATION,
    SCREEN,
    SCREENED,
    EvaluationDocument,
    GainStats,
    MethodEffect,
    Protocol,
    Row,
    Section,
    read_document,
)
from augshard.evaluation.gains import ALPHA, HELPS, HURTS, UNCLEAR
from augshard.report.charts import (
    FOREST_MOST,
    chart_class_gains,
    chart_forest,
    chart_learning_curve,
    rank_by_gain,
)

VERDICT_CLASSES = {HELPS: "helps", HURTS: "hurts", UNCLEAR: "unclear", SCREENED: "unclear"}
EVALUATION_TABLE_ENDS = 10  # combos shown from each end of the ranking
HEATMAP_ROWS = 10  # combos of a single stage's per-class heatmap (a confirm stage's: every confirmed one)
RAREST_SUMMED = 3  # classes of the per-class summary line


def evaluation_html(output_root: Path, fingerprints: dict[str, str | None]) -> list[str]:
    """`augshard evaluate`'s answer when the run has an evaluation.json; one line when it cannot be read.
    `fingerprints`: each combo of the manifest and its current fingerprint (None when its meta.json is unreadable)."""
    path = output_root / EVALUATION
    if not path.exists():
        return []
    try:
        return evaluation_section(read_document(path), fingerprints)
    except (OutputError, ConfigError) as exc:  # ConfigError: a stage without the features the screen has
        problem = str(exc)
    except (ValueError, IndexError) as exc:  # a document that reads but contradicts itself (edited by hand)
        problem = f"{path}: {type(exc).__name__}: {exc}"
    return [f"<p class='failed' id='evaluation'>The evaluation is not shown: {html.escape(problem)}</p>"]


def evaluation_section(doc: EvaluationDocument, fingerprints: dict[str, str | None]) -> list[str]:
    """The protocol in a sentence, then one part per features set."""
    parts = ["<h2 id='evaluation'>Which augmentations help</h2>", _protocol(doc), *_staleness(doc, fingerprints)]
    for features in doc.features():
        parts += _features_part(doc, features)
    return parts


def _protocol(doc: EvaluationDocument) -> str:
    """What was trained on what, in which design, and how the originals were grouped."""
    esc, p = html.escape, doc.protocol
    design = f"in {p.folds} folds &times; {_repeats(p.repeats)}"
    if p.test_split is not None:
        design = f"by {esc(p.test_split.described)}"
    return (
        f"<p><code>augshard evaluate</code> trained a classifier of <code>{esc(p.label_col)}</code> "
        f"({len(p.classes)} classes) on the <code>{esc(p.field)}</code> of {p.originals:,} originals, {design}, "
        f"with {esc(' and '.join(doc.features()))} features: once on the "
        "training originals alone (the baseline) and once on them plus each combo's variants of those same "
        f"originals, both scored on the test originals only. {_design(doc)} Each gain is paired "
        f"{'resample by resample' if p.test_split else 'split by split'}; its "
        f"interval: {esc(p.interval)}; its p: {esc(p.adjustment)}. {_grouping(p)}</p>"
    )


def _repeats(n: int) -> str:
    return f"{n} repeat{'s' if n != 1 else ''}"


def _over(section: Section) -> str:
    """What the baseline's ± is over: the splits, or (`--test-split`) the bootstrap resamples of one test set."""
    if section.power is not None and section.splits == 1 and section.power.splits > 1:
        return f"on your test set &plusmn; std over {section.power.splits:,} bootstrap resamples"
    return f"mean &plusmn; std over {section.splits} splits"


def _design(doc: EvaluationDocument) -> str:
    """A single stage, or a screen that ranks and a confirm stage on fresh splits that decides."""
    c = doc.protocol.confirm
    if doc.protocol.test_split is not None:
        return "One test set, yours: its bootstrap resamples give the intervals, and the verdicts."
    if c is None or doc.confirm is None:
        return "One stage: those splits give the verdicts."
    k, size = len(doc.confirm.combos), max(s.train_size for s in doc.results)
    return (
        f"Those splits were the screen: it ranked every combo at train size {size:g}. Then the baseline and the "
        f"screen's top {k} were evaluated again on {_repeats(c.repeats)} &times; {c.folds} folds of fresh splits "
        f"(new seeds) at every train size, with Holm over those {k} only: the verdicts come from that confirm "
        "stage, and the screen is a ranking, not a verdict."
    )


JOINED = {"punctuation": "the same text but for punctuation", "near": "near-duplicates"}  # protocol.joined's rules


def _grouping(p: Protocol) -> str:
    """Which originals were kept in one fold, and how many rows the punctuation and near-duplicate rules joined."""
    if p.test_split is not None:
        return "Your split alone decides which originals train and which test: no groups are drawn."
    rules = ["the same id or text"]
    if p.group_col:
        rules.append(f"the same <code>{html.escape(p.group_col)}</code>")
    if p.group_near:
        rules.append("near-duplicate texts (<code>--group-near</code>)")
    joined = " and ".join(f"{n:,} as {JOINED.get(rule, rule)}" for rule, n in p.joined.items())
    said = ", ".join(rules[:-1]) + " or " if len(rules) > 1 else ""
    return (f"Originals with {said}{rules[-1]} are one group ({p.groups:,} groups"
            f"{'; rows joined to a group: ' + joined if joined else ''}), and a group is never split between "
            "training and test.")  # fmt: skip


def _staleness(doc: EvaluationDocument, fingerprints: dict[str, str | None]) -> list[str]:
    """Evaluated combos remade or gone since (their fingerprints differ): the numbers may describe other data."""
    if doc.source.kind != "run":
        return [f"<p>It evaluates the export <code>{html.escape(doc.source.path)}</code> as a whole.</p>"]
    known = {combo_id: fp for combo_id, fp in fingerprints.items() if fp}
    sections = [*doc.results, *(doc.confirm.results if doc.confirm else [])]
    stale = sorted({
        r.name for s in sections for r in s.combos
        if r.combo_id not in fingerprints or known.get(r.combo_id, r.combo_fingerprint) != r.combo_fingerprint
    })  # fmt: skip
    if not stale:
        return []
    return [
        f"<p class='failed'>{len(stale)} evaluated combo(s) were remade or are gone since this evaluation "
        f"({html.escape(', '.join(stale[:5]))}{', …' if len(stale) > 5 else ''}): run <code>augshard evaluate</code> "
        "again before trusting these numbers.</p>"
    ]


def _features_part(doc: EvaluationDocument, features: str) -> list[str]:
    """One features set: what the design can see, the verdicts, the screen's ranking (after a confirm stage), the
    methods' marginal effects, the per-class gains and the learning curve."""
    main, screen = doc.main_section(features), doc.screen_section(features)
    parts = [f"<h3>{html.escape(features)} features, train size {main.train_size:g}</h3>", *_power(doc, features)]
    if doc.confirm is not None:
        parts.append(f"<h4>Confirmed: the screen's top {len(main.combos)} on fresh splits (the verdicts)</h4>")
    parts += _verdicts(main)
    if doc.confirm is not None:
        parts += _ranking(screen, len(main.combos))
    parts += _methods(screen.methods, screen.stage == SCREEN)
    parts += _class_gains(doc.protocol, main, doc.confirm is not None)
    return parts + _learning_curve(doc, features)


STAGE_NAMES = {SCREEN: "The screen", CONFIRM: "The confirm stage"}


def _power(doc: EvaluationDocument, features: str) -> list[str]:
    """Each stage's minimum detectable gain at 80% power, its comparisons and splits, and the design that would
    see the target gain when it cannot."""
    main = doc.main_section(features)
    items = []
    for s in [doc.screen_section(features), main] if doc.confirm is not None else [main]:
        power = s.power
        if power is None or power.min_detectable_gain is None:
            continue
        line = (
            f"{STAGE_NAMES.get(s.stage, 'This design')} ({power.splits} splits at train size {s.train_size:g}, Holm "
            f"over {power.comparisons} comparison{'s' if power.comparisons != 1 else ''}) sees a true gain of "
            f"<b>{power.min_detectable_gain:.3f}</b> macro-F1 or more with {power.power:.0%} power (two-sided, "
            f"per-split spread of the differences {power.spread or 0:.4f})."
        )
        if power.to_reach_target:
            line += f" {html.escape(power.to_reach_target)}."  # how to reach the target gain, or why no design can
        elif power.reaches_target:
            line += f" It sees the target gain of {power.target:g}."
        items.append(f"<li>{line}</li>")
    if not items:
        return []
    return ["<p>What the design can see (its minimum detectable gain):</p>", "<ul class='power'>", *items, "</ul>"]


def _verdicts(section: Section) -> list[str]:
    """The deciding section: the baseline, the verdicts in a sentence, the forest plot and the combos' table."""
    esc, rows, base = html.escape, rank_by_gain(section.combos), section.baseline
    verdicts = [r.verdict for r in rows]
    f1 = base.macro_f1
    parts = [
        f"<p>Baseline macro-F1 <b>{f1.mean:.4f} &plusmn; {f1.std:.4f}</b> ({_over(section)}, "
        f"{base.train_originals:,.0f} training originals on average). After Holm's "
        f"adjustment over the {len(rows)} combos, <b>{verdicts.count(HELPS)}</b> help, "
        f"<b>{verdicts.count(HURTS)}</b> hurt and <b>{verdicts.count(UNCLEAR)}</b> show no evidence either way. A "
        f"combo helps only when its adjusted p is below {ALPHA:g} and its whole 95% interval lies above 0 (hurts: "
        "below 0); an interval that includes 0 is not a gain, however large its mean.</p>",
    ]
    if not rows:
        return parts
    cut = f" Only the {FOREST_MOST // 2} best and the {FOREST_MOST // 2} worst of {len(rows)} combos are plotted."
    return [
        *parts,
        f"<img alt='forest plot: macro-F1 gain per combo, {esc(section.features)}' "
        f"src='data:image/png;base64,{chart_forest(section)}'>",
        "<p class='cap'>Each combo's mean macro-F1 gain over the baseline with its 95% interval; green: helps, red: "
        f"hurts, grey: no evidence.{cut if len(rows) > FOREST_MOST else ''}</p>",
        *_combos_table(rows, "eval combos"),
    ]


def _ranking(screen: Section, confirmed: int) -> list[str]:
    """The screen after a confirm stage: every combo ranked by its mean gain, without verdicts."""
    f1 = screen.baseline.macro_f1
    return [
        "<h4>The screen's ranking (a ranking, not verdicts)</h4>",
        f"<p>Every combo ranked by its mean gain over the screen's {screen.splits} splits (train size "
        f"{screen.train_size:g}, baseline macro-F1 {f1.mean:.4f} &plusmn; {f1.std:.4f}); its top {confirmed} went on "
        "to the confirm stage above. Its intervals and p-values rank; they decide nothing (verdict "
        f"<i>{SCREENED}</i>).</p>",
        *_combos_table(rank_by_gain(screen.combos), "eval ranking"),
    ]


def _combo_name(name: str) -> str:
    """A combo name that may wrap after each `+`."""
    return html.escape(name).replace("+", "+<wbr>")


def _gain_cells(g: GainStats) -> str:
    return f"<td class='n'>{g.mean:+.4f}</td><td class='n'>[{g.ci_low:+.4f}, {g.ci_high:+.4f}]</td>"


def _p(p: float | None) -> str:
    return "" if p is None else "&lt;0.001" if p < 0.001 else f"{p:.3f}"


def _combos_table(rows: list[Row], css: str) -> list[str]:
    """The best and the worst combos by mean gain (every one when there are few)."""
    n = EVALUATION_TABLE_ENDS
    shown = rows if len(rows) <= 2 * n else rows[:n] + [None] + rows[-n:]
    heads = ["#", "combo", "k", "variants used", "macro-F1", "gain", "95% CI", "p (Holm)", "verdict"]
    out = [
        f"<p>{'Every combo' if len(rows) <= 2 * n else f'The {n} best and the {n} worst of {len(rows)} combos'} "
        "by mean gain (variants used: mean per split).</p>",
        f"<div class='wide'><table class='{css}'><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>",
    ]
    rank = {id(r): i for i, r in enumerate(rows, 1)}
    for r in shown:
        if r is None:
            out.append(f"<tr class='gap'><td colspan='{len(heads)}'>… {len(rows) - 2 * n} combos …</td></tr>")
            continue
        out.append(
            f"<tr><td class='n'>{rank[id(r)]}</td><td class='name'>{_combo_name(r.name)}</td>"
            f"<td class='n'>{r.k}</td><td class='n'>{r.variants_used:,.0f}</td>"
            f"<td class='n'>{r.macro_f1.mean:.4f} &plusmn; {r.macro_f1.std:.4f}</td>{_gain_cells(r.gain)}"
            f"<td class='n'>{_p(r.gain.p_holm)}</td>"
            f"<td class='v {VERDICT_CLASSES.get(r.verdict, '')}'>{html.escape(r.verdict)}</td></tr>"
        )
    return [*out, "</table></div>"]


def _methods(methods: list[MethodEffect], screened: bool) -> list[str]:
    """Each method's marginal effect: the gain of the combos with it minus that of the combos without it."""
    if not methods:
        return []
    heads = ["method", "combos with it", "marginal gain", "95% CI"]
    where = " on the screen's splits, where every combo was evaluated" if screened else ""
    out = [
        f"<p>Marginal effect of each method{where}: per split, the mean gain of the combos that contain it minus "
        "that of the combos that do not (intervals not adjusted).</p>",
        "<div class='wide'><table class='eval methods'><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>",
    ]
    for m in methods:
        out.append(
            f"<tr><td class='name'>{html.escape(m.method)}</td><td class='n'>{m.combos_with} of "
            f"{m.combos_with + m.combos_without}</td>{_gain_cells(m.marginal)}</tr>"
        )
    return [*out, "</table></div>"]


def _class_gains(p: Protocol, section: Section, confirmed: bool) -> list[str]:
    """The heatmap of each shown combo's F1 gain per class (rarest class first) and a line on the rarest classes:
    the classes a macro-F1 gain hides."""
    rows = rank_by_gain(section.combos) if confirmed else rank_by_gain(section.combos)[:HEATMAP_ROWS]
    classes = p.rarest(len(p.classes))
    image = chart_class_gains(section, rows, classes, p.class_counts)
    if image is None:  # an evaluation.json older than the per-class gains
        return []
    which = "the confirmed combos" if confirmed else f"the {min(len(rows), HEATMAP_ROWS)} best combos"
    return [
        "<h4>Gain per class</h4>",
        f"<img alt='per-class F1 gain heatmap, {html.escape(section.features)}' src='data:image/png;base64,{image}'>",
        f"<p class='cap'>The F1 gain over the baseline of {which} in each class (mean over the splits; red: lower, "
        "blue: higher, white: no change), the rarest class first with its count of originals. Bold with an "
        "asterisk: the cell's 95% interval excludes 0. These intervals are not adjusted for the classes &times; "
        "combos compared: with many cells, some exclude 0 by chance.</p>",
        *_rarest_line(p, section),
    ]


def _rarest_line(p: Protocol, section: Section) -> list[str]:
    """Each of the rarest classes: the combo with the largest gain in it, and that gain's interval."""
    notes = []
    for name in p.rarest(RAREST_SUMMED):
        having = [r for r in section.combos if name in r.per_class]
        if not having:
            continue
        best = max(having, key=lambda r: (r.per_class[name].mean, r.combo_id))
        g = best.per_class[name]
        count = f" ({p.class_counts[name]:,} originals)" if name in p.class_counts else ""
        notes.append(f"<b>{html.escape(name)}</b>{count}: {_combo_name(best.name)} {g.mean:+.3f} "
                     f"[{g.ci_low:+.3f}, {g.ci_high:+.3f}]")  # fmt: skip
    if not notes:
        return []
    return [f"<p class='rarest'>The rarest classes, each with the combo of the {len(section.combos)} that gains "
            f"most in it (interval not adjusted): {'; '.join(notes)}.</p>"]  # fmt: skip


def _learning_curve(doc: EvaluationDocument, features: str) -> list[str]:
    """The same combos' gains at every train size, with the baseline's absolute curve below."""
    curve, followed = doc.curve(features), doc.followed(features)
    image = chart_learning_curve(curve, followed)
    if image is None:
        return []
    which = (f"the {len(followed)} confirmed combos" if doc.confirm is not None
             else f"the {len(followed)} best combos at the largest train size")  # fmt: skip
    ratios = ", ".join(f"{s.power.test_over_train:.2f} at {s.train_size:g}" for s in curve if s.power is not None)
    return [
        "<h4>Learning curve</h4>",
        f"<img alt='learning curve: macro-F1 gain per train size, {html.escape(features)}' "
        f"src='data:image/png;base64,{image}'>",
        f"<p class='cap'>Above: the macro-F1 gain of {which} at every train size with its 95% interval, one colour "
        "per combo (dashed: no change); below: the baseline's macro-F1 &plusmn; 1 standard deviation over the "
        "splits. The train size axis is logarithmic; under each size, the mean training originals. The intervals "
        "widen at small sizes: the corrected interval's variance is s&sup2; (1/n + n_test/n_train), and n_test/n_train "
        f"grows as the training originals shrink ({ratios + '; ' if ratios else ''}at train size 0.1 with 5 folds "
        "it is about 2.5).</p>",
    ]
