"""`augshard report`: a self-contained HTML page with real charts and examples, parsed (and rendered if possible)."""

from __future__ import annotations

import base64
import csv
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import run_cli, sample_rows, write_csv

from augshard.report.page import diff_html, write_report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


class Page(HTMLParser):
    """What a reader would see: headings, images, example rows, and any outside references."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.images: list[dict[str, str]] = []
        self.external: list[str] = []
        self.summaries: list[str] = []
        self.example_rows = 0
        self.ins = self.dels = 0
        self._in: str | None = None
        self._table_class: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("h1", "h2", "summary"):
            self._in = tag
        elif tag == "img":
            self.images.append(a)
        elif tag == "table":
            self._table_class.append(a.get("class", ""))
        elif tag == "tr" and self._table_class and self._table_class[-1] == "ex":
            self.example_rows += 1
        elif tag == "ins":
            self.ins += 1
        elif tag == "del":
            self.dels += 1
        for key in ("src", "href"):
            if key in a and not a[key].startswith("data:"):
                self.external.append(a[key])
        if tag in ("script", "link", "iframe"):
            self.external.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._table_class:
            self._table_class.pop()
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in in ("h1", "h2"):
            self.headings.append(data.strip())
        elif self._in == "summary":
            self.summaries.append(data.strip())


def test_diff_marks_removed_and_new_words() -> None:
    left, right = diff_html("The crust is <crackly> and sweet", "The crust is <crackly> and swete")
    assert left == "The crust is &lt;crackly&gt; and <del>sweet</del>"
    assert right == "The crust is &lt;crackly&gt; and <ins>swete</ins>"


def test_help_stays_light() -> None:
    code = "import sys, augshard.cli; print(sorted(m for m in ('matplotlib', 'pyarrow', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("report")
    write_csv(cwd / "in.csv", sample_rows(12))
    proc = run_cli("run", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--id-col", "id",
                   "--methods", "nlp_keyboard,nlp_randword_delete", "--quality-metric", "char_ratio",
                   "--num-shards", "2", cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd


@pytest.mark.slow
def test_report_is_a_self_contained_page_with_charts_and_examples(run_dir: Path) -> None:
    proc = run_cli("report", "--out", "out/report.html", cwd=run_dir, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "report: out/report.html" in proc.stdout
    page = Page()
    page.feed((run_dir / "out/report.html").read_text(encoding="utf-8"))
    assert page.headings[0] == "augshard report"
    for section in ("Rows and acceptance per combo", "Similarity per method", "Time per shard", "Combos"):
        assert section in page.headings
    assert "Examples: original vs variant" in page.headings
    assert page.external == []  # nothing to fetch: one file to mail or archive
    assert len(page.images) == 3
    for img in page.images:
        assert img["alt"] and img["src"].startswith("data:image/png;base64,")
        png = base64.b64decode(img["src"].split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    with open(run_dir / "data/processed/augsets/manifest_final.csv", newline="") as fh:
        combos = list(csv.DictReader(fh))
    assert sorted(s.split(" — ")[0] for s in page.summaries) == sorted(c["methods"] for c in combos)
    assert page.example_rows == len(combos) * (3 + 1)  # a header and 3 examples per combo
    assert page.ins > 0 and page.dels > 0


@pytest.mark.slow
def test_report_lists_failed_combos(run_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "augsets"
    shutil.copytree(run_dir / "data/processed/augsets", root)
    with open(root / "manifest_final.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0].update(status="failed", error="ValueError: boom")
    with open(root / "manifest_final.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = write_report(root, tmp_path / "r.html", log_dir=tmp_path / "no-logs", examples=1)
    text = out.read_text(encoding="utf-8")
    assert "Failed and unavailable combos" in text and "ValueError: boom" in text
    page = Page()
    page.feed(text)
    assert page.example_rows == (len(rows) - 1) * 2


@pytest.mark.slow
def test_report_renders_in_a_headless_browser(run_dir: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        # CI installs Debian's chromium (.ci/run) and sets AUGSHARD_REQUIRE_BROWSER: there, a missing browser fails.
        if os.environ.get("AUGSHARD_REQUIRE_BROWSER"):
            pytest.fail("AUGSHARD_REQUIRE_BROWSER is set but no Chromium is on PATH")
        pytest.skip("no Chromium on this machine (apt-get install chromium); parsed only")
    page = write_report(run_dir / "data/processed/augsets", tmp_path / "r.html", log_dir=run_dir / "logs/augment")
    shot = tmp_path / "r.png"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "Rows and acceptance per combo" in dom.stdout
    subprocess.run([*base, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120, check=True)  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    # At 1,280 px the page itself never scrolls sideways: the wide combos table scrolls inside its own box. The
    # browser measures its layout and writes the widths into the DOM it dumps.
    probe = tmp_path / "probe.html"
    measure = (
        "<script>window.addEventListener('load',()=>{"
        "const d=document.documentElement,w=document.querySelector('.wide');"
        "document.body.setAttribute('data-fit',[d.scrollWidth,window.innerWidth,w.scrollWidth,w.clientWidth].join(','))"
        "});</script></body>"
    )
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", measure), encoding="utf-8")
    dom = subprocess.run([*base, "--window-size=1280,2400", "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    fit = re.search(r'data-fit="(\d+),(\d+),(\d+),(\d+)"', dom.stdout)
    assert fit, dom.stdout[-500:]
    page_width, window, table_width, box_width = map(int, fit.groups())
    assert window == 1280 and page_width <= window, fit.groups()
    assert box_width <= window and table_width >= box_width, fit.groups()


@pytest.mark.slow
def test_report_counts_every_input_row_and_marks_label_flips(tmp_path: Path) -> None:
    rows = sample_rows(12)
    rows.append({**rows[0], "id": "lost", "evidence": "A sentence that is nowhere in its text."})
    write_csv(tmp_path / "in.csv", rows)
    proc = run_cli("run", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--id-col", "id",
                   "--label-col", "label", "--methods", "nlp_randword_delete", "--quality-metric", "char_ratio",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = tmp_path / "data/processed/augsets"
    text = write_report(root, tmp_path / "r.html", log_dir=tmp_path / "logs/augment", examples=50).read_text()
    assert "<b>13</b><span>input rows, 12 usable (1: evidence not found)</span>" in text
    # Every example says whether its variant keeps its original's label; the flips are the dataset's own.
    table = pq.read_table(next(root.glob("combo_*/dataset.parquet"))).to_pylist()
    flips = [r for r in table if r["variant"] == 0 and not r["label_agrees"]]
    assert "<th>label check</th>" in text
    assert text.count("<td class='flip'>flips to ") == len(flips)
    assert text.count("<td>same label</td>") == sum(1 for r in table if r["variant"] == 0) - len(flips)
    for r in flips:
        assert f"flips to {r['label_pred']}</td>" in text


def test_time_chart_labels_never_overlap() -> None:
    """Many short combos on two shards: names go inside segments only where they fit, the rest are numbered."""
    import matplotlib

    matplotlib.use("Agg")
    from augshard.core.combos import Combo
    from augshard.report.charts import shards_figure
    from augshard.report.model import ComboReport
    from augshard.storage.outcome import ComboOutcome, Status

    combos = []
    for n in range(24):
        combo = Combo((f"nlp_method_with_a_long_name_{n}", "nlp_keyboard"))
        row = {"combo_id": combo.combo_id, "methods": combo.name, "k": "2", "status": Status.OK.value,
               "shard": str(n % 2), "rows": "10", "duration_s": str(1.0 + (n % 5) * 3)}  # fmt: skip
        combos.append(ComboReport(ComboOutcome.from_row(row)))
    fig = shards_figure(combos, {0: 60.0, 1: 58.0}, {})
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text()]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    names = [t.get_text() for t in ax.texts]
    assert any(name.isdigit() for name in names)  # some segments are numbered ...
    assert "1:\u00a0" in ax.get_xlabel()  # ... and named under the axis
