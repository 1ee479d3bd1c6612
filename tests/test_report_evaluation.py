"""`augshard report`'s evaluation section: a real run, `augshard evaluate` on it, and the page a user gets."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import run_cli, sample_rows, write_csv
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer
from test_report import CHROMIUM, Page

from augshard.evaluation.document import read_document
from augshard.report.charts import class_gains_figure, learning_curve_figure
from augshard.report.page import write_report

SECTION = "Which augmentations help"


class Tables(HTMLParser):
    """The cells of each table with a class, by class: what a reader of the evaluation tables sees."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._current: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table" and a.get("class"):
            self._current = a["class"]
            self.tables[self._current] = []
        elif tag == "tr" and self._current:
            self.tables[self._current].append([])
        elif tag in ("td", "th") and self._current:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._current and self._cell is not None:
            self.tables[self._current][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real run, its report before `augshard evaluate` (before.html), then evaluated with a learning curve."""
    cwd = tmp_path_factory.mktemp("report-evaluation")
    write_csv(cwd / "in.csv", sample_rows(60))
    proc = run_cli("run", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--id-col", "id",
                   "--methods", "nlp_keyboard,nlp_randchar_swap", "--quality-metric", "char_ratio",
                   "--num-shards", "1", cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli("report", "--out", "before.html", cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli("evaluate", *EVALUATE, cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd


# Three combos (two methods and their pair) are few enough for one stage by default.
EVALUATE = ("--label-col", "label", "--folds", "3", "--train-sizes", "0.5,1.0", "--features", "tfidf")


@pytest.fixture(scope="module")
def confirmed(evaluated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run evaluated in two stages: a screen of the 3 combos, then the top 2 on 2 x 3 fresh splits."""
    cwd = tmp_path_factory.mktemp("report-confirmed") / "run"
    shutil.copytree(evaluated, cwd)
    proc = run_cli("evaluate", *EVALUATE, "--confirm-top", "2", "--confirm-repeats", "2", cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli("report", "--out", "after.html", cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd


def _evaluation(root: Path) -> dict:
    return json.loads((root / "data/processed/augsets/evaluation.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_report_says_which_augmentations_help(evaluated: Path) -> None:
    proc = run_cli("report", "--out", "after.html", cwd=evaluated, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (evaluated / "after.html").read_text(encoding="utf-8")
    page, tables = Page(), Tables()
    page.feed(text)
    tables.feed(text)
    assert SECTION in page.headings
    assert page.external == []
    doc = _evaluation(evaluated)
    largest = max(doc["results"], key=lambda s: s["train_size"])
    assert largest["train_size"] == 1.0 and len(doc["results"]) == 2
    f1 = largest["baseline"]["macro_f1"]
    assert f"Baseline macro-F1 <b>{f1['mean']:.4f} &plusmn; {f1['std']:.4f}</b>" in text
    assert "3 folds &times; 1 repeat" in text and "<code>label</code> (3 classes)" in text
    assert "an interval that includes 0 is not a gain" in text
    verdicts = [r["verdict"] for r in largest["combos"]]
    assert f"<b>{verdicts.count('helps')}</b> help, <b>{verdicts.count('hurts')}</b> hurt" in text

    combos = tables.tables["eval combos"]
    assert combos[0][:3] == ["#", "combo", "k"]
    assert [row[1] for row in combos[1:]] == [r["name"] for r in largest["combos"]]  # best first, every one
    assert {row[1] for row in combos[1:]} == {"nlp_keyboard", "nlp_randchar_swap", "nlp_keyboard+nlp_randchar_swap"}
    best = largest["combos"][0]
    assert combos[1][5] == f"{best['gain']['mean']:+.4f}" and combos[1][8] == best["verdict"]
    methods = tables.tables["eval methods"]
    assert [row[0] for row in methods[1:]] == [m["method"] for m in largest["methods"]]
    assert {row[0] for row in methods[1:]} == {"nlp_keyboard", "nlp_randchar_swap"}

    power = largest["power"]
    assert power["comparisons"] == 3 and power["splits"] == 3
    assert _power_items(text) == [
        f"This design (3 splits at train size 1, Holm over 3 comparisons) sees a true gain of "
        f"<b>{power['min_detectable_gain']:.3f}</b> macro-F1 or more with 80% power (two-sided, per-split spread of "
        f"the differences {power['spread']:.4f}). {power['to_reach_target']}."
    ]
    assert "One stage: those splits give the verdicts." in text
    assert "Originals with the same id or text are one group (60 groups; rows joined to a group: 0 as the same " in text
    assert "The screen's ranking" not in text and "screened" not in text

    alts = [img["alt"] for img in page.images]
    assert alts.count("forest plot: macro-F1 gain per combo, tfidf") == 1
    assert "per-class F1 gain heatmap, tfidf" in alts
    assert "learning curve: macro-F1 gain per train size, tfidf" in alts
    assert "the 3 best combos at the largest train size" in text  # the curve follows them (every combo here)
    assert _rarest_line(doc, largest) in text
    for img in page.images:
        png = base64.b64decode(img["src"].split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def _power_items(text: str) -> list[str]:
    """The lines of the page's lists of what the design can see."""
    start = text.index("<ul class='power'>")
    return re.findall(r"<li>(.*?)</li>", text[start : text.index("</ul>", start)])


def _rarest_line(doc: dict, section: dict) -> str:
    """What the page should say of the 3 rarest classes, computed from the document itself."""
    counts = doc["protocol"]["class_counts"]
    rarest = sorted(doc["protocol"]["classes"], key=lambda c: (counts[c], c))[:3]
    notes = []
    for name in rarest:
        best = max(section["combos"], key=lambda r: (r["per_class"][name]["mean"], r["combo_id"]))
        g = best["per_class"][name]
        notes.append(f"<b>{name}</b> ({counts[name]} originals): {best['name'].replace('+', '+<wbr>')} "
                     f"{g['mean']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]")  # fmt: skip
    return f"the {len(section['combos'])} that gains most in it (interval not adjusted): {'; '.join(notes)}.</p>"


@pytest.mark.slow
def test_a_confirm_stage_gives_the_verdicts_and_the_screen_a_ranking(confirmed: Path) -> None:
    text = (confirmed / "after.html").read_text(encoding="utf-8")
    page, tables = Page(), Tables()
    page.feed(text)
    tables.feed(text)
    doc = _evaluation(confirmed)
    assert doc["protocol"]["design"] == "screen-then-confirm"
    [screen] = doc["results"]
    main = max(doc["confirm"]["results"], key=lambda s: s["train_size"])
    assert screen["stage"] == "screen" and main["stage"] == "confirm" and len(main["combos"]) == 2
    assert ("Then the baseline and the screen's top 2 were evaluated again on 2 repeats &times; 3 folds of fresh "
            "splits (new seeds) at every train size, with Holm over those 2 only") in text  # fmt: skip

    items = _power_items(text)
    assert [line.split(" (")[0] for line in items] == ["The screen", "The confirm stage"]
    for line, section, splits, m in zip(items, (screen, main), (3, 6), (3, 2), strict=True):
        power = section["power"]
        assert f"({splits} splits at train size 1, Holm over {m} comparisons)" in line
        assert f"<b>{power['min_detectable_gain']:.3f}</b>" in line and power["to_reach_target"] in line

    # The confirmed table first, with verdicts; then the screen's ranking of every combo, without.
    assert text.index("<h4>Confirmed: the screen's top 2") < text.index("<h4>The screen's ranking (a ranking, not")
    assert text.index("class='eval combos'") < text.index("class='eval ranking'")
    combos, ranking = tables.tables["eval combos"][1:], tables.tables["eval ranking"][1:]
    assert [row[1] for row in combos] == [r["name"] for r in main["combos"]]
    assert [row[8] for row in combos] == [r["verdict"] for r in main["combos"]]
    assert all(row[8] in ("helps", "hurts", "no evidence") for row in combos)
    assert [row[1] for row in ranking] == [r["name"] for r in screen["combos"]] and len(ranking) == 3
    assert [row[8] for row in ranking] == ["screened"] * 3
    f1 = main["baseline"]["macro_f1"]
    assert (
        f"Baseline macro-F1 <b>{f1['mean']:.4f} &plusmn; {f1['std']:.4f}</b> (mean &plusmn; std over 6 splits" in text
    )

    alts = [img["alt"] for img in page.images]
    assert alts.count("forest plot: macro-F1 gain per combo, tfidf") == 1  # the confirmed combos only
    assert "per-class F1 gain heatmap, tfidf" in alts and "the confirmed combos in each class" in text
    assert _rarest_line(doc, main) in text
    assert "learning curve: macro-F1 gain per train size, tfidf" in alts and "the 2 confirmed combos" in text
    ratios = ", ".join(f"{s['power']['test_over_train']:.2f} at {s['train_size']:g}"
                       for s in sorted(doc["confirm"]["results"], key=lambda s: s["train_size"]))  # fmt: skip
    assert f"n_test/n_train grows as the training originals shrink ({ratios}; at train size 0.1" in text


@pytest.mark.slow
def test_the_learning_curve_is_on_a_log_axis(confirmed: Path) -> None:
    """The figure before it is encoded: the confirmed combos' gains with their intervals at every size, the
    baseline's macro-F1 below, both over a log-scaled train size with the sizes (and training originals) as ticks."""
    doc = read_document(confirmed / "data/processed/augsets/evaluation.json")
    curve, followed = doc.curve("tfidf"), doc.followed("tfidf")
    assert followed == doc.confirm.combos and [s.train_size for s in curve] == [0.5, 1.0]
    fig = learning_curve_figure(curve, followed)
    top, bottom = fig.axes
    assert top.get_xscale() == bottom.get_xscale() == "log"
    assert list(bottom.get_xticks()) == [0.5, 1.0]
    assert [t.get_text() for t in bottom.get_xticklabels()] == [
        f"{s.train_size:g}\n({s.baseline.train_originals:,.0f})" for s in curve
    ]
    names = [next(s.row(c).name for s in curve) for c in followed]
    assert top.get_legend_handles_labels()[1] == names  # one colour per combo
    bars = [c for c in top.containers if isinstance(c, ErrorbarContainer)]
    for combo_id, bar in zip(followed, bars, strict=True):
        xs, ys = bar.lines[0].get_data()
        assert list(ys) == [s.row(combo_id).gain.mean for s in curve]
        assert 0.5 * 0.9 < xs[0] < 0.5 * 1.1 and 0.9 < xs[1] < 1.1  # side by side at each size
    assert len({to_hex(bar.lines[0].get_color()) for bar in bars}) == len(bars) == len(followed)
    zero = [line for line in top.get_lines() if line.get_linestyle() == "--"]
    assert len(zero) == 1 and list(zero[0].get_ydata()) == [0, 0]
    [baseline] = bottom.get_lines()
    assert list(baseline.get_ydata()) == [s.baseline.macro_f1.mean for s in curve]
    assert learning_curve_figure(curve[-1:], followed) is None  # one train size: no curve


@pytest.mark.slow
def test_the_class_heatmap_marks_the_intervals_that_exclude_0(confirmed: Path) -> None:
    doc = read_document(confirmed / "data/processed/augsets/evaluation.json")
    main, p = doc.main_section(), doc.protocol
    classes = p.rarest(len(p.classes))
    first = main.combos[0]
    name = classes[0]
    sure = replace(first.per_class[name], ci_low=0.01, ci_high=0.05, mean=0.03)  # an interval above 0
    rows = [replace(first, per_class={**first.per_class, name: sure}), *main.combos[1:]]
    fig = class_gains_figure(main, rows, classes, p.class_counts)
    [ax] = [a for a in fig.axes if a.get_images()]
    values = ax.get_images()[0].get_array()
    assert values.shape == (2, len(classes))
    assert [[round(float(v), 6) for v in line] for line in values] == [
        [r.per_class[c].mean for c in classes] for r in rows
    ]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{c}\n({p.class_counts[c]})" for c in classes]
    assert [t.get_text() for t in ax.get_yticklabels()] == [r.name for r in rows]
    cells = {t.get_text(): t.get_fontweight() for t in ax.texts}
    assert cells["+0.030*"] == "bold"
    marked = [text for text in cells if text.endswith("*")]
    assert marked == [
        f"{r.per_class[c].mean:+.3f}*" for r in rows for c in classes
        if r.per_class[c].ci_low > 0 or r.per_class[c].ci_high < 0
    ]  # fmt: skip
    vmin, vmax = ax.get_images()[0].get_clim()
    assert vmin == -vmax  # centred on 0
    assert "not adjusted" in ax.get_xlabel()
    assert class_gains_figure(main, [replace(r, per_class={}) for r in rows], classes, p.class_counts) is None


@pytest.mark.slow
def test_no_evaluation_no_section(evaluated: Path) -> None:
    text = (evaluated / "before.html").read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    assert SECTION not in page.headings and "id='evaluation'" not in text
    assert len(page.images) == 3 and "Combos" in page.headings


@pytest.mark.slow
def test_an_unreadable_evaluation_is_one_line(evaluated: Path, tmp_path: Path) -> None:
    root = tmp_path / "augsets"
    shutil.copytree(evaluated / "data/processed/augsets", root)
    (root / "evaluation.json").write_text('{"schema": 1, "results": [', encoding="utf-8")
    text = write_report(root, tmp_path / "r.html", log_dir=evaluated / "logs/augment").read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    assert SECTION not in page.headings
    lines = [line for line in text.splitlines() if "The evaluation is not shown" in line]
    assert len(lines) == 1 and lines[0].startswith("<p class='failed' id='evaluation'>")
    assert f"{root / 'evaluation.json'}: not a readable evaluation" in lines[0]
    assert "Combos" in page.headings and "Examples: original vs variant" in page.headings and len(page.images) == 3

    contradicting = {**_old_document(), "confirm": {"combos": [], "results": []}}  # a confirm stage of nothing
    (root / "evaluation.json").write_text(json.dumps(contradicting), encoding="utf-8")
    text = write_report(root, tmp_path / "r.html", log_dir=evaluated / "logs/augment").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if "The evaluation is not shown" in line]
    assert lines == ["<p class='failed' id='evaluation'>The evaluation is not shown: the evaluation has no "
                     "&#x27;tfidf&#x27; results (it has: tfidf)</p>"]  # fmt: skip


def _old_row(combo_id: str, name: str, gain: float, verdict: str) -> dict:
    """A row of the first evaluation.json: no screen rank, no per-class gains."""
    return {
        "combo_id": combo_id, "combo_dir": f"combo_{name}", "name": name, "methods": name.split("+"),
        "k": name.count("+") + 1, "combo_fingerprint": "0123456789abcdef", "variants_used": 40.0,
        "macro_f1": {"mean": 0.5 + gain, "std": 0.05}, "accuracy": {"mean": 0.55, "std": 0.05},
        "gain": {"mean": gain, "ci_low": gain - 0.02, "ci_high": gain + 0.02, "p_value": 0.01, "splits": 3,
                 "p_holm": 0.02},
        "accuracy_gain": {"mean": 0.0, "ci_low": -0.1, "ci_high": 0.1, "p_value": 1.0, "splits": 3},
        "macro_f1_splits": [0.5 + gain] * 3, "verdict": verdict,
    }  # fmt: skip


def _old_section(size: float) -> dict:
    return {
        "features": "tfidf", "train_size": size, "splits": 3,
        "baseline": {"macro_f1": {"mean": 0.5, "std": 0.05}, "accuracy": {"mean": 0.55, "std": 0.05},
                     "train_originals": 40 * size, "macro_f1_splits": [0.5, 0.5, 0.5]},
        "combos": [_old_row("old0000001", "nlp_keyboard", 0.05, "helps"),
                   _old_row("old0000002", "nlp_keyboard+nlp_ocr", -0.04, "hurts")],
        "methods": [],
    }  # fmt: skip


def _old_document() -> dict:
    """An evaluation.json as the first `augshard evaluate` wrote it (schema 1, none of the keys added since)."""
    return {
        "schema": 1,
        "source": {"kind": "run", "path": "data/processed/augsets", "input": {"path": "in.csv", "sha256": "00"},
                   "plan_fingerprints": ["725b719b3a1e2eb0"]},
        "protocol": {"label_col": "label", "group_col": "post", "field": "text", "folds": 3, "repeats": 1, "seed": 0,
                     "train_sizes": [0.5, 1.0], "features": ["tfidf"], "classes": ["negative", "neutral", "positive"],
                     "originals": 60, "groups": 55, "blank_group_rows": 0, "dropped_rows": {}, "dropped_classes": {},
                     "interval": "95%, corrected resampled t", "adjustment": "Holm over the combos of each section"},
        "classifiers": {"tfidf": {}}, "libraries": {"augshard": "0.1"},
        "results": [_old_section(0.5), _old_section(1.0)],
        "run_info": {"created": "2026-01-01T00:00:00Z"},
    }  # fmt: skip


@pytest.mark.slow
def test_an_old_evaluation_still_renders(evaluated: Path, tmp_path: Path) -> None:
    """A first-version evaluation.json: one stage, its tables and its learning curve; no power, no heatmap."""
    root = tmp_path / "augsets"
    shutil.copytree(evaluated / "data/processed/augsets", root)
    (root / "evaluation.json").write_text(json.dumps(_old_document()), encoding="utf-8")
    text = write_report(root, tmp_path / "r.html", log_dir=evaluated / "logs/augment").read_text(encoding="utf-8")
    page, tables = Page(), Tables()
    page.feed(text)
    tables.feed(text)
    assert SECTION in page.headings and "The evaluation is not shown" not in text
    assert "3 folds &times; 1 repeat, with tfidf features" in text and "One stage: those splits give" in text
    assert "Originals with the same id or text or the same <code>post</code> are one group (55 groups), and" in text
    assert "Baseline macro-F1 <b>0.5000 &plusmn; 0.0500</b> (mean &plusmn; std over 3 splits, 40 training" in text
    assert "<b>1</b> help, <b>1</b> hurt and <b>0</b> show no evidence" in text
    rows = tables.tables["eval combos"][1:]
    assert [(row[1], row[5], row[8]) for row in rows] == [("nlp_keyboard", "+0.0500", "helps"),
                                                          ("nlp_keyboard+nlp_ocr", "-0.0400", "hurts")]  # fmt: skip
    assert "eval ranking" not in tables.tables and "<ul class='power'>" not in text
    alts = [img["alt"] for img in page.images]
    assert "forest plot: macro-F1 gain per combo, tfidf" in alts
    assert "learning curve: macro-F1 gain per train size, tfidf" in alts and "the 2 best combos at the largest" in text
    assert "per-class F1 gain heatmap, tfidf" not in alts and "The rarest classes" not in text
    assert "shrink (at train size 0.1 with 5 folds it is about 2.5)" in text  # no power: no ratios of its own
    assert "2 evaluated combo(s) were remade or are gone since this evaluation" in text  # not this run's combos


def _many_combos(evaluated: Path, root: Path, n: int) -> None:
    """The real evaluation with each section's combos copied to `n` (long names, spread gains): a big run's page."""
    shutil.copytree(evaluated / "data/processed/augsets", root)
    doc = _evaluation(evaluated)
    for section in doc["results"]:
        rows = []
        for i in range(n):
            r = json.loads(json.dumps(section["combos"][i % len(section["combos"])]))
            r["combo_id"], r["k"] = f"fake{i:06d}", 3
            r["name"] = f"nlp_keyboard+nlp_randchar_swap+nlp_contextual_word_embs_insert_{i:03d}"
            r["gain"].update(mean=0.1 - i * 0.003, ci_low=0.05 - i * 0.003, ci_high=0.15 - i * 0.003)
            r["verdict"] = "helps" if i < 5 else "hurts" if i >= n - 5 else "no evidence"
            rows.append(r)
        section["combos"] = rows
    (root / "evaluation.json").write_text(json.dumps(doc), encoding="utf-8")


@pytest.mark.slow
def test_a_big_evaluation_plots_the_ends(evaluated: Path, tmp_path: Path) -> None:
    root = tmp_path / "augsets"
    _many_combos(evaluated, root, 70)
    text = write_report(root, tmp_path / "r.html", log_dir=evaluated / "logs/augment").read_text(encoding="utf-8")
    tables = Tables()
    tables.feed(text)
    assert "Only the 30 best and the 30 worst of 70 combos are plotted." in text
    assert "The 10 best and the 10 worst of 70 combos" in text
    rows = tables.tables["eval combos"][1:]
    assert len(rows) == 21 and rows[10] == ["… 50 combos …"]
    assert rows[0][0] == "1" and rows[-1][0] == "70"
    assert "<b>5</b> help, <b>5</b> hurt and <b>60</b> show no evidence" in text
    assert "70 evaluated combo(s) were remade or are gone since this evaluation" in text  # no such combos in the run


MEASURE = """<script>
const wide = [...document.querySelectorAll('#evaluation ~ div.wide')].map(d => [d.scrollWidth, d.clientWidth]);
const page = [document.documentElement.scrollWidth, document.documentElement.clientWidth];
document.body.setAttribute('data-widths', JSON.stringify({wide, page}));
</script>"""


@pytest.mark.slow
def test_evaluation_tables_fit_in_a_browser(evaluated: Path, confirmed: Path, tmp_path: Path) -> None:
    """At 1,280 px, every evaluation table fits its box without a scrollbar (long combo names wrap)."""
    if CHROMIUM is None:
        # CI installs Debian's chromium (.ci/run) and sets AUGSHARD_REQUIRE_BROWSER: there, a missing browser fails.
        if os.environ.get("AUGSHARD_REQUIRE_BROWSER"):
            pytest.fail("AUGSHARD_REQUIRE_BROWSER is set but no Chromium is on PATH")
        pytest.skip("no Chromium on this machine (apt-get install chromium); parsed only")
    root = tmp_path / "augsets"
    _many_combos(evaluated, root, 70)
    page = write_report(root, tmp_path / "r.html", log_dir=evaluated / "logs/augment")
    assert len(_widths(page, tmp_path)["wide"]) == 2  # the tfidf section's combos and methods tables
    root = tmp_path / "confirmed"
    _many_combos(confirmed, root, 70)  # the screen's 70 rows: its ranking
    page = write_report(root, tmp_path / "c.html", log_dir=confirmed / "logs/augment")
    assert "The 10 best and the 10 worst of 70 combos" in page.read_text(encoding="utf-8")
    assert len(_widths(page, tmp_path)["wide"]) == 3  # the confirmed table, the screen's ranking, the methods


def _widths(page: Path, tmp_path: Path) -> dict:
    """The page in Chromium at 1,280 px: each evaluation table's and the page's (scroll width, client width), checked
    to fit."""
    measured = tmp_path / "measured.html"  # the report itself has no script; this copy measures itself
    measured.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2000"]
    dom = subprocess.run([*base, "--dump-dom", measured.as_uri()], capture_output=True, text=True, timeout=120)
    assert SECTION in dom.stdout, dom.stderr[-2000:]
    start = dom.stdout.index("data-widths=") + len("data-widths=") + 1
    widths = json.loads(html.unescape(dom.stdout[start : dom.stdout.index('"', start)]))
    for scroll, client in widths["wide"]:
        assert 0 < client <= 1280 and scroll <= client
    scroll, client = widths["page"]
    assert client == 1280 and scroll <= client  # nothing on the page is wider than the window
    return widths
