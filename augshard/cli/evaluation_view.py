"""What `augshard evaluate` prints: the evaluation document as tables on a terminal (or aligned lines off one), or
as TSV rows. It reads the typed document (evaluation/document.py), never its JSON."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape

from augshard.cli.app import console
from augshard.core.errors import ConfigError
from augshard.evaluation.document import CONFIRM, SCREEN, EvaluationDocument, GainStats, Row, Section
from augshard.events.output import notice, print_rows, write_tsv

SHOWN_BY_DEFAULT = 20  # combos of a table on a terminal, best and worst; --all shows every one
RAREST_SHOWN = 3  # classes of the per-class table when --class names none
COLOURS = {"helps": "green", "hurts": "red"}


def print_evaluation(
    doc: EvaluationDocument, show_all: bool, train_size: float | None = None, classes: Sequence[str] = ()
) -> None:
    """The protocol in a line, then per features set: the screen's ranking (when a confirm stage decides), the
    deciding table at one train size, what the design can see, the per-class gains, the methods' marginal
    effects; then the learning curve of the same combos at every train size."""
    p = doc.protocol
    chosen = _classes(doc, classes)
    size = _train_size(doc, train_size)
    console.print(_header(doc), markup=False)
    for features in doc.features():
        if doc.confirm is not None:
            _combo_table(doc.screen_section(features), show_all)
        section = doc.section(features, size) or doc.main_section(features)
        _combo_table(section, show_all)
        _power_lines(doc, features, section)
        _class_table(section, chosen)
        _method_table(doc.screen_section(features))
        if len(p.train_sizes) > 1:
            _curve_table(doc, features)


def tsv(doc: EvaluationDocument) -> None:
    """One row per stage, section and combo (the baseline first in each section)."""
    columns = ("features", "train_size", "combo_id", "combo_dir", "k", "variants_used", "macro_f1", "macro_f1_std",
               "accuracy", "gain", "ci_low", "ci_high", "p_value", "p_holm", "verdict", "stage", "screen_rank",
               "min_detectable_gain")  # fmt: skip
    rows = []
    for s in [*doc.results, *(doc.confirm.results if doc.confirm else [])]:
        b, mdg = s.baseline, "" if s.min_detectable_gain is None else s.min_detectable_gain
        rows.append([s.features, s.train_size, "baseline", "", 0, 0, b.macro_f1.mean, b.macro_f1.std,
                     b.accuracy.mean, 0, 0, 0, 1, 1, "baseline", s.stage, "", mdg])  # fmt: skip
        for c in s.combos:
            g = c.gain
            rows.append([s.features, s.train_size, c.combo_id, c.combo_dir, c.k, c.variants_used, c.macro_f1.mean,
                         c.macro_f1.std, c.accuracy.mean, g.mean, g.ci_low, g.ci_high, g.p_value, g.p_holm,
                         c.verdict, s.stage, c.screen_rank or "", mdg])  # fmt: skip
    write_tsv(columns, rows)


def _classes(doc: EvaluationDocument, asked: Sequence[str]) -> list[str]:
    """The classes asked for; a name that is not one is a warning (the evaluation is done and written: it is not
    thrown away for a typo), and the rarest are shown in its place."""
    known = doc.protocol.classes
    unknown = [c for c in asked if c not in known]
    if unknown:
        line = f"--class {', '.join(unknown)}: not a class of '{doc.protocol.label_col}' (classes: {', '.join(known)})"
        notice(escape(line), "warning")
    chosen = [c for c in asked if c in known]
    return chosen or doc.protocol.rarest(RAREST_SHOWN)


def check_train_size(asked: float | None, sizes: Sequence[float]) -> None:
    """`--train-size` names one of `--train-sizes`: checked before anything is evaluated."""
    if asked is not None and asked not in sizes:
        raise ConfigError(f"--train-size {asked:g} is not one of --train-sizes {','.join(f'{s:g}' for s in sizes)}")


def _train_size(doc: EvaluationDocument, asked: float | None) -> float:
    sizes = doc.protocol.train_sizes
    check_train_size(asked, sizes)
    return max(sizes) if asked is None else asked


def _header(doc: EvaluationDocument) -> str:
    p = doc.protocol
    joined = sum(p.joined.values())
    near = f" ({joined} joined to a near-identical twin)" if joined else ""
    design = f"{p.folds} folds x {p.repeats} repeat(s)"
    if p.confirm is not None:
        design = (f"screen: {p.folds} folds x {p.repeats} repeat(s) rank every combo; confirm: the top "
                  f"{p.confirm.top} and the baseline on {p.confirm.repeats} x {p.confirm.folds} fresh splits "
                  "decide")  # fmt: skip
    if p.test_split is not None:  # the user's split decides: no groups are drawn
        design, near = p.test_split.described, ""
    scope = ""
    if doc.scope is not None and doc.scope.subset:
        scope = f"; {len(doc.scope.combos)} of the plan's {doc.scope.of} combos (--combos)"
    groups = "" if p.test_split is not None else f" in {p.groups:,} groups"
    return (f"{p.originals:,} originals{groups}{near}, {len(p.classes)} classes of '{p.label_col}'; "
            f"{design}{scope}; every model scored on test originals only{_sees(doc)}")  # fmt: skip


def _sees(doc: EvaluationDocument) -> str:
    """The minimum detectable gain of the deciding sections at the largest train size (and the screen's), in short."""
    features = doc.features()[0]
    sections = [doc.screen_section(features)] if doc.confirm is not None else []
    parts = [f"{s.min_detectable_gain:.3f} ({s.stage})" for s in [*sections, doc.main_section(features)]
             if s.min_detectable_gain is not None]  # fmt: skip
    return f"; minimum detectable gain {', '.join(parts)}" if parts else ""


def _splits(section: Section) -> str:
    """How many splits the section's scores are over; a `--test-split` section has one test set and resamples."""
    if section.power is not None and section.splits == 1 and section.power.splits > 1:
        return f"one test set (± over {section.power.splits:,} bootstrap resamples)"
    return f"{section.splits} splits"


def _ci(g: GainStats) -> str:
    return f"[{g.ci_low:+.4f}, {g.ci_high:+.4f}]"


def _combo_table(section: Section, show_all: bool) -> None:
    b = section.baseline.macro_f1
    combos = section.combos
    shown = combos
    if not show_all and len(combos) > 2 * SHOWN_BY_DEFAULT:
        shown = combos[:SHOWN_BY_DEFAULT] + combos[-SHOWN_BY_DEFAULT:]
    rows = []
    for n, c in enumerate(shown):
        rank = n + 1 if len(shown) == len(combos) or n < SHOWN_BY_DEFAULT else len(combos) - len(shown) + n + 1
        tint = COLOURS.get(c.verdict)
        verdict = f"[{tint}]{c.verdict}[/{tint}]" if tint else c.verdict
        screened = [str(c.screen_rank or "")] if section.stage == CONFIRM else []
        rows.append([str(rank), *screened, c.name, str(c.k), f"{c.variants_used:,.0f}",
                     f"{c.macro_f1.mean:.4f} ± {c.macro_f1.std:.4f}", f"{c.gain.mean:+.4f}", _ci(c.gain),
                     f"{c.gain.p_holm:.3g}" if c.gain.p_holm is not None else "", verdict])  # fmt: skip
    stage = {SCREEN: "Screen (a ranking; the confirm stage decides): gain", CONFIRM: "Confirmed: gain"}
    title = (f"{stage.get(section.stage, 'Gain')} in macro-F1 over the baseline ({b.mean:.4f} ± {b.std:.4f}), "
             f"{section.features}, train size {section.train_size:g}, {_splits(section)}")  # fmt: skip
    if len(shown) < len(combos):
        title += f"; the {SHOWN_BY_DEFAULT} best and worst of {len(combos)} (--all for every one)"
    screen = ("screen #",) if section.stage == CONFIRM else ()  # where the confirm stage's combos ranked before
    columns = ("#", *screen, "combo", "k", "variants", "macro-F1", "gain", "95% CI", "p (Holm)", "verdict")
    sections = [SHOWN_BY_DEFAULT - 1] if len(shown) < len(combos) else []
    print_rows(console, columns, rows, title=title, right=("#", *screen, "k", "variants", "gain", "p (Holm)"),
               sections=sections)  # fmt: skip
    if section.decides:
        helps = sum(c.verdict == "helps" for c in combos)
        hurts = sum(c.verdict == "hurts" for c in combos)
        console.print(
            f"{helps} combo(s) help and {hurts} hurt after Holm's adjustment over {len(combos)}; the others show no "
            "evidence either way (an interval that includes 0 is never called a gain)",
            markup=False,
        )


def _power_lines(doc: EvaluationDocument, features: str, section: Section) -> None:
    """What each stage can see: its minimum detectable gain, and the design that would see 0.02."""
    sections = [doc.screen_section(features)] if doc.confirm is not None else []
    for s in [*sections, section]:
        power = s.power
        if power is None or power.min_detectable_gain is None:
            continue
        stage = {SCREEN: "the screen", CONFIRM: "the confirm stage"}.get(s.stage, "this design")
        line = (f"{stage} sees a gain of {power.min_detectable_gain:.3f} macro-F1 or more with {power.power:.0%} "
                f"power (Holm over {power.comparisons}, {power.splits} splits, per-split spread "
                f"{power.spread:.4f})")  # fmt: skip
        if power.to_reach_target:
            line += f"; {power.to_reach_target}"
        console.print(line, markup=False)


def _class_table(section: Section, classes: list[str]) -> None:
    """Each shown class's F1 gain per combo (the deciding rows, at most 20), and the baseline's F1 of it."""
    rows_with = [c for c in section.combos if c.per_class][:SHOWN_BY_DEFAULT]
    if not rows_with or not classes:
        return
    base = section.baseline.per_class
    rows = [["baseline F1", *(f"{base[c].mean:.3f}" if c in base else "" for c in classes)]]
    for r in rows_with:
        rows.append([r.name, *(_class_cell(r, c) for c in classes)])
    title = (f"F1 gain per class ({section.features}, train size {section.train_size:g}; 95% intervals, not "
             "adjusted for the classes x combos compared)")  # fmt: skip
    print_rows(console, ("combo", *classes), rows, title=title, right=tuple(classes))
    notes = []
    for c in classes:
        if (r := _best_for(section.combos, c)) is not None:
            notes.append(f"{c}: {r.name} {r.per_class[c].mean:+.3f} {_ci(r.per_class[c])}")
    if notes:
        console.print("largest per-class gain: " + "; ".join(notes), markup=False)


def _class_cell(row: Row, name: str) -> str:
    g = row.per_class.get(name)
    return "" if g is None else f"{g.mean:+.3f} {_ci(g)}"


def _best_for(rows: list[Row], name: str) -> Row | None:
    having = [r for r in rows if name in r.per_class]
    return max(having, key=lambda r: (r.per_class[name].mean, r.combo_id)) if having else None


def _method_table(section: Section) -> None:
    if not section.methods:
        return
    rows = []
    for m in section.methods:
        g = m.marginal
        rows.append([m.method, str(m.combos_with), f"{m.mean_gain_with:+.4f}", f"{m.mean_gain_without:+.4f}",
                     f"{g.mean:+.4f}", _ci(g)])  # fmt: skip
    columns = ("method", "combos", "gain with", "gain without", "marginal", "95% CI")
    print_rows(console, columns, rows, title=f"Marginal effect of each method ({section.features}, "
               f"{'screen' if section.stage == SCREEN else 'unadjusted'})", right=columns[1:5])  # fmt: skip


def _curve_table(doc: EvaluationDocument, features: str) -> None:
    """The learning curve: the baseline's macro-F1 and the same combos' gains at every train size."""
    curve = doc.curve(features)
    followed = doc.followed(features)
    rows = [["baseline (macro-F1)", *(f"{s.baseline.macro_f1.mean:.4f}" for s in curve)]]
    for combo_id in followed:
        cells = []
        for s in curve:
            r = s.row(combo_id)
            cells.append("" if r is None else f"{r.gain.mean:+.4f} {_ci(r.gain)}")
        name = next((r.name for s in curve if (r := s.row(combo_id)) is not None), combo_id)
        rows.append([name, *cells])
    heads = [f"{s.train_size:g} ({s.baseline.train_originals:,.0f})" for s in curve]
    which = "the confirmed combos" if doc.confirm is not None else f"the {len(followed)} best at the largest size"
    print_rows(console, ("combo", *heads), rows, right=tuple(heads),
               title=f"Learning curve ({features}): gain over the baseline at each train size (training originals), "
               f"{which}")  # fmt: skip
