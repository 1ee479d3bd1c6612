"""`augshard report`'s evaluation section: a real run, `augshard evaluate` on it, and the page a user gets."""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import run_cli, sample_rows, write_csv
from test_report import CHROMIUM, Page

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
    proc = run_cli("evaluate", "--label-col", "label", "--folds", "3", "--train-sizes", "0.5,1.0", "--num-shards", "1",
                   cwd=cwd, timeout=300)  # fmt: skip
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

    alts = [img["alt"] for img in page.images]
    assert "forest plot: macro-F1 gain per combo, tfidf" in alts
    assert "learning curve: macro-F1 per train size" in alts
    for img in page.images:
        png = base64.b64decode(img["src"].split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


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
def test_evaluation_tables_fit_in_a_browser(evaluated: Path, tmp_path: Path) -> None:
    """At 1,280 px, every evaluation table fits its box without a scrollbar (long combo names wrap)."""
    if CHROMIUM is None:
        # CI installs Debian's chromium (.ci/run) and sets AUGSHARD_REQUIRE_BROWSER: there, a missing browser fails.
        if os.environ.get("AUGSHARD_REQUIRE_BROWSER"):
            pytest.fail("AUGSHARD_REQUIRE_BROWSER is set but no Chromium is on PATH")
        pytest.skip("no Chromium on this machine (apt-get install chromium); parsed only")
    root = tmp_path / "augsets"
    _many_combos(evaluated, root, 70)
    page = write_report(root, tmp_path / "r.html", log_dir=evaluated / "logs/augment")
    measured = tmp_path / "measured.html"  # the report itself has no script; this copy measures itself
    measured.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2000"]
    dom = subprocess.run([*base, "--dump-dom", measured.as_uri()], capture_output=True, text=True, timeout=120)
    assert SECTION in dom.stdout, dom.stderr[-2000:]
    start = dom.stdout.index("data-widths=") + len("data-widths=") + 1
    widths = json.loads(html.unescape(dom.stdout[start : dom.stdout.index('"', start)]))
    assert len(widths["wide"]) == 2  # the tfidf section's combos and methods tables
    for scroll, client in widths["wide"]:
        assert 0 < client <= 1280 and scroll <= client
    scroll, client = widths["page"]
    assert client == 1280 and scroll <= client  # nothing on the page is wider than the window
