"""evaluation.json's findings: built from every stage's scores (gains, intervals, Holm, per-class gains, marginal
effects, the power of the design) and used to choose combos for `export --best`. The document itself, its
reading and writing, is document.py."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from augshard.core.errors import ConfigError, OutputError
from augshard.core.version import __version__
from augshard.evaluation.classifiers import settings_document
from augshard.evaluation.document import (
    CONFIRM,
    EVALUATION,
    SCHEMA_VERSION,
    SCREEN,
    SCREENED,
    Baseline,
    ConfirmStage,
    EvaluationDocument,
    GainStats,
    MethodEffect,
    Power,
    Protocol,
    Row,
    Scope,
    Section,
    Source,
    Spread,
    read_document,
)
from augshard.evaluation.gains import (
    ALPHA,
    POWER,
    TARGET_GAIN,
    Gain,
    bootstrap_gain,
    design_to_reach,
    holm,
    mean_std,
    min_detectable_gain,
    paired_gain,
    verdict,
)
from augshard.evaluation.scoring import Candidate, Split
from augshard.storage.meta import read_meta
from augshard.storage.store import META

TFIDF_INTERVAL = "95%, corrected resampled t (Nadeau-Bengio) over folds x repeats"
BOOTSTRAP_INTERVAL = "95%, percentile bootstrap over the test originals (paired resamples)"
ADJUSTMENT = "Holm over the combos of each section"
CONFIRM_TOP = 10  # --confirm-top when there are more combos than this


@dataclass(frozen=True)
class Stage:
    """One stage's work as scored: its name, its splits, the candidates (the baseline is `scores[0]`) and each
    task's scores (scoring.evaluate_candidate's `scores`: per features set, per split, (f1, acc, variants, per
    class))."""

    name: str
    splits: list[Split]
    candidates: list[Candidate]
    scores: list[dict[str, Any]]
    screen_ranks: dict[str, int] = field(default_factory=dict)  # combo id -> its rank in the screen
    bootstrap: bool = False  # `--test-split`: split 0 is the test set, the others its bootstrap resamples


def build_document(
    source: Source, protocol: Protocol, stages: list[Stage], confirm_top: int, scope: Scope | None
) -> EvaluationDocument:
    """evaluation.json's deterministic part (docs/evaluate.md has its schema): everything but `run_info`."""
    import sklearn

    interval = BOOTSTRAP_INTERVAL if stages[0].bootstrap else TFIDF_INTERVAL
    protocol = replace(protocol, interval=interval, adjustment=ADJUSTMENT)
    sections = {
        stage.name: [section(stage, f, size, protocol.classes, confirm_top) for f in protocol.features
                     for size in sorted({s.size for s in stage.splits})]
        for stage in stages
    }  # fmt: skip
    confirm = None
    if CONFIRM in sections:
        confirm = ConfirmStage([c.combo_id for c in stages[-1].candidates], sections[CONFIRM])
    return EvaluationDocument(
        schema=SCHEMA_VERSION, source=source, protocol=protocol,
        classifiers={k: v for k, v in settings_document().items() if k in protocol.features},
        libraries={"augshard": __version__, "scikit-learn": sklearn.__version__},
        results=sections[stages[0].name], scope=scope, confirm=confirm,
    )  # fmt: skip


def section(stage: Stage, feature: str, size: float, classes: list[str], confirm_top: int) -> Section:
    """One features set at one train size of one stage: the baseline, each candidate's paired gains (Holm over the
    candidates), per-class gains, the methods' marginal effects and what the design can see."""
    splits = stage.splits
    idx = [n for n, s in enumerate(splits) if s.size == size]
    ratio = math.fsum(len(splits[n].test) / len(splits[n].train) for n in idx) / len(idx)
    judge = Judge(ratio, stage.bootstrap)
    base = [stage.scores[0][feature][n] for n in idx]
    rows, diffs_by_combo = [], []
    for candidate, scores in zip(stage.candidates, stage.scores[1:], strict=True):
        mine = [scores[feature][n] for n in idx]
        diffs = [a[0] - b[0] for a, b in zip(mine, base, strict=True)]
        diffs_by_combo.append(diffs)
        rows.append(_row(candidate, mine, base, diffs, judge, classes))
    p_holm = holm([r.gain.p_value for r in rows])
    decides = stage.name != SCREEN
    rows = [
        replace(r, gain=replace(r.gain, p_holm=round(p, 6)), screen_rank=stage.screen_ranks.get(r.combo_id),
                verdict=verdict(_as_gain(r.gain), p) if decides else SCREENED)
        for r, p in zip(rows, p_holm, strict=True)
    ]  # fmt: skip
    rows.sort(key=lambda r: (-r.gain.mean, r.combo_id))
    if not stage.screen_ranks:  # a screen (or single stage) ranks its own combos
        rows = [replace(r, screen_rank=rank) for rank, r in enumerate(rows, 1)]
    power = _power(stage.name, diffs_by_combo, len(idx), ratio, splits, confirm_top)
    if stage.bootstrap:  # one test set: no spread over splits to derive a detectable gain from; `splits`: resamples
        power = replace(power, min_detectable_gain=None, spread=None, reaches_target=False, to_reach_target=None,
                        splits=len(idx) - 1)  # fmt: skip
    baseline = Baseline(
        macro_f1=judge.spread([b[0] for b in base]), accuracy=judge.spread([b[1] for b in base]),
        train_originals=round(math.fsum(len(splits[n].train) for n in idx) / len(idx), 1),
        macro_f1_splits=[round(b[0], 6) for b in judge.shown(base)], per_class=_class_spreads(base, classes, judge),
        per_class_recall=_class_spreads(base, classes, judge, RECALL),
    )  # fmt: skip
    methods = _marginals(stage.candidates, diffs_by_combo, judge)
    n = 1 if stage.bootstrap else len(idx)  # the user's one test set (its resamples only make the intervals)
    return Section(feature, size, n, baseline, rows, methods, stage.name, power.min_detectable_gain, power)


@dataclass(frozen=True)
class Judge:
    """How a section's differences become gains and spreads: over folds x repeats (the corrected t interval), or,
    with `--test-split`, over one test set (the first value) and its bootstrap resamples (the others)."""

    ratio: float  # n_test / n_train of a split
    bootstrap: bool = False

    def gain(self, diffs: list[float]) -> Gain:
        return bootstrap_gain(diffs) if self.bootstrap else paired_gain(diffs, self.ratio)

    def spread(self, values: list[float]) -> Spread:
        """Mean and sd over the splits; the test set's value and the resamples' sd with a bootstrap."""
        if not self.bootstrap:
            return _spread(values)
        return Spread(round(values[0], 6), round(mean_std(values[1:])[1], 6))

    def center(self, diffs: list[float]) -> float:
        """A combo's gain: the mean over the splits, or the test set's own."""
        return diffs[0] if self.bootstrap else math.fsum(diffs) / len(diffs)

    def shown(self, scores: list[tuple]) -> list[tuple]:
        """The scores a document lists split by split: the test set's alone with a bootstrap."""
        return scores[:1] if self.bootstrap else scores


def _row(
    candidate: Candidate, mine: list[tuple], base: list[tuple], diffs: list[float], judge: Judge, classes: list[str]
) -> Row:
    acc_gain = judge.gain([a[1] - b[1] for a, b in zip(mine, base, strict=True)])
    return Row(
        combo_id=candidate.combo_id, combo_dir=candidate.combo_dir, name=candidate.name,
        methods=list(candidate.methods), k=candidate.k, combo_fingerprint=candidate.fingerprint,
        variants_used=round(math.fsum(s[2] for s in mine) / len(mine), 1),
        macro_f1=judge.spread([s[0] for s in mine]), accuracy=judge.spread([s[1] for s in mine]),
        gain=_stats(judge.gain(diffs)), accuracy_gain=_stats(acc_gain),
        macro_f1_splits=[round(s[0], 6) for s in judge.shown(mine)], verdict="",
        per_class=_class_gains(mine, base, classes, judge),
        per_class_recall=_class_gains(mine, base, classes, judge, RECALL),
    )  # fmt: skip


F1, RECALL = 3, 4  # where a split's score holds its per-class F1s and recalls


def _per_class(score: tuple, at: int = F1) -> tuple:
    """A split's per-class F1s or recalls (None: no test original of that class); () when the score has none."""
    return score[at] if len(score) > at else ()


def _class_gains(
    mine: list[tuple], base: list[tuple], classes: list[str], judge: Judge, at: int = F1
) -> dict[str, GainStats]:
    out = {}
    for j, name in enumerate(classes):
        pairs = [(_per_class(a, at), _per_class(b, at)) for a, b in zip(mine, base, strict=True)]
        diffs = [a[j] - b[j] for a, b in pairs if len(a) > j and len(b) > j and a[j] is not None and b[j] is not None]
        if diffs:
            out[name] = _stats(judge.gain(diffs))
    return out


def _class_spreads(base: list[tuple], classes: list[str], judge: Judge, at: int = F1) -> dict[str, Spread]:
    out = {}
    for j, name in enumerate(classes):
        values = [_per_class(b, at)[j] for b in base if len(_per_class(b, at)) > j and _per_class(b, at)[j] is not None]
        if values:
            out[name] = judge.spread(values)
    return out


def _power(stage: str, diffs: list[list[float]], n: int, ratio: float, splits: list[Split], top: int) -> Power:
    """The section's minimum detectable gain from the median per-split spread of its combos' differences."""
    spreads = sorted(mean_std(d)[1] for d in diffs if len(d) > 1)
    spread = statistics.median(spreads) if spreads else math.nan
    m = max(1, len(diffs))
    mdg = min_detectable_gain(spread, n, ratio, m) if diffs and spread > 0 else math.nan
    folds = len({s.fold for s in splits})
    reaches = math.isfinite(mdg) and mdg <= TARGET_GAIN
    advice = None
    if not reaches and math.isfinite(mdg):  # a screen's advice: the confirm stage's default size when none is run
        advice = design_to_reach(spread, folds, ratio, m, top or CONFIRM_TOP, stage == CONFIRM)
    return Power(
        min_detectable_gain=round(mdg, 6) if math.isfinite(mdg) else None, power=POWER, alpha=ALPHA, comparisons=m,
        splits=n, spread=round(spread, 6) if math.isfinite(spread) else None, test_over_train=round(ratio, 6),
        target=TARGET_GAIN, reaches_target=reaches, to_reach_target=advice,
    )  # fmt: skip


def _spread(values: list[float]) -> Spread:
    mean, std = mean_std(values)
    return Spread(round(mean, 6), round(std, 6))


def _stats(gain: Gain) -> GainStats:
    return GainStats(**gain.as_dict())


def _as_gain(stats: GainStats) -> Gain:
    return Gain(stats.mean, stats.ci_low, stats.ci_high, stats.p_value, stats.splits)


def _marginals(candidates: list[Candidate], diffs: list[list[float]], judge: Judge) -> list[MethodEffect]:
    """Each method's marginal effect: per split, the mean gain of the combos that contain it minus the mean gain
    of those that do not; then the same corrected interval over the splits."""
    methods = sorted({m for c in candidates for m in c.methods})
    out = []
    for method in methods:
        with_m = [d for c, d in zip(candidates, diffs, strict=True) if method in c.methods]
        without = [d for c, d in zip(candidates, diffs, strict=True) if method not in c.methods]
        if not with_m or not without:
            continue
        per_split = [
            math.fsum(d[n] for d in with_m) / len(with_m) - math.fsum(d[n] for d in without) / len(without)
            for n in range(len(with_m[0]))
        ]
        mean_with = math.fsum(judge.center(d) for d in with_m) / len(with_m)
        mean_without = math.fsum(judge.center(d) for d in without) / len(without)
        out.append(MethodEffect(method, len(with_m), len(without), round(mean_with, 6), round(mean_without, 6),
                                _stats(judge.gain(per_split))))  # fmt: skip
    out.sort(key=lambda m: (-m.marginal.mean, m.method))
    return out


def choose_combos(
    output_root: Path, best: int | None, min_gain: float | None, features: str | None = None
) -> tuple[list[str], str]:
    """Combo ids picked from the run's evaluation.json (`export --best N` / `--min-gain X`), and a sentence for
    the dataset card saying how. The ranking is the deciding stage's: with a confirm stage, its combos by their
    confirmed gains, then the rest of the screen in its order. Refused when the evaluation is older than the
    combos it ranks."""
    path = output_root / EVALUATION
    doc = read_document(path)
    if doc.source.kind != "run":
        raise ConfigError(f"{path} evaluates an export, not this run's combos")
    main = doc.main_section(features)
    ranked = ranking(doc, main.features)
    for row in ranked:
        try:
            meta = read_meta(output_root / row.combo_dir / META)
        except (OSError, ValueError):
            meta = None
        if meta is None or meta.combo_fingerprint != row.combo_fingerprint:
            raise OutputError(f"{path} is older than combo {row.combo_dir} (remade since, or gone): run `augshard "
                              "evaluate` again before choosing by it")  # fmt: skip
    rows, rule = ranked, []
    if min_gain is not None:
        rows = [r for r in rows if r.gain.mean >= min_gain]
        rule.append(f"mean macro-F1 gain >= {min_gain:+.4f}")
    if best is not None:
        rows = rows[:best]
        if len(rows) == best:
            rule.append(f"the {best} best by mean macro-F1 gain")
        else:  # never "the 5 best" for the 2 an evaluation of some of the combos (--combos) ranks
            passing = " with that gain" if min_gain is not None else ""
            rule.append(
                f"--best {best}, but the evaluation ranks only {len(rows)} combo(s){passing} (of {len(ranked)} it "
                f"evaluated): those {len(rows)}, by mean macro-F1 gain"
            )
    if not rows:
        raise OutputError(f"no combo of {path} has a mean gain >= {min_gain}")
    p = doc.protocol
    stage = (f"confirmed on {p.confirm.repeats} x {p.confirm.folds} fresh splits where ranked in the top "
             f"{p.confirm.top}" if p.confirm else f"{p.folds} folds x {p.repeats} repeat(s)")  # fmt: skip
    how = (
        f"chosen by `augshard evaluate` ({main.features}, train size {main.train_size}, {stage}, label "
        f"'{p.label_col}'): {' and '.join(rule)}; gains: "
        + ", ".join(f"{r.name} {r.gain.mean:+.4f} [{r.gain.ci_low:+.4f}, {r.gain.ci_high:+.4f}] ({r.verdict})"
                    for r in rows)
    )  # fmt: skip
    return [r.combo_id for r in rows], how


def ranking(doc: EvaluationDocument, features: str) -> list[Row]:
    """Every evaluated combo, best first: the deciding stage's rows at the largest train size, then (after a
    confirm stage) the screen's other rows in screen order."""
    main = doc.main_section(features)
    if doc.confirm is None:
        return list(main.combos)
    confirmed = {r.combo_id for r in main.combos}
    return [*main.combos, *(r for r in doc.screen_section(features).combos if r.combo_id not in confirmed)]


def evidence(doc: EvaluationDocument, combo_dirs: list[str], features: str | None = None) -> int:
    """How many of these combos (their folders) the deciding stage calls `helps`."""
    main = doc.main_section(features)
    return sum(1 for r in main.combos if r.combo_dir in combo_dirs and r.verdict == "helps")
