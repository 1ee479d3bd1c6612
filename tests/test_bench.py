"""`methods --bench` measures real methods and writes a costs file; `run --calibrate` plans with it; the `bench/`
scripts record their host in every results file, and docs/benchmarks.md is generated from those files."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from helpers import REPO, run_cli, sample_rows, tree, write_csv

from augshard.core.config import DEFAULT_COSTS_PATH, load_config
from augshard.core.errors import ConfigError
from augshard.core.planning import make_plan
from augshard.methods import load_catalogue
from augshard.methods.bench import load_costs

CHEAP = ("nlp_keyboard", "nlp_randword_delete", "nlp_spelling")
BOGUS = {"id": "ta_bogus", "lib": "textattack", "kind": "WordSwapNoSuchClass", "args": {"pct_words_to_swap": 0.1}}


@pytest.fixture(scope="module")
def benched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """Three real catalogue entries plus one TextAttack class that does not exist, timed on 10 sample texts."""
    cwd = tmp_path_factory.mktemp("bench")
    entries = yaml.safe_load((REPO / "conf" / "augment_methods.yaml").read_text(encoding="utf-8"))["methods"]
    chosen = [e for e in entries if e["id"] in CHEAP] + [BOGUS]
    (cwd / "methods.yaml").write_text(yaml.safe_dump({"methods": chosen}), encoding="utf-8")
    write_csv(cwd / "in.csv", sample_rows(8))
    proc = run_cli("methods", "--methods-config", "methods.yaml", "--bench", "--rows", "10", "--out", "out/costs.json",
                   cwd=cwd)  # fmt: skip
    return cwd, proc


@pytest.mark.slow
def test_bench_writes_positive_costs_for_available_methods_only(benched) -> None:
    cwd, proc = benched
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = json.loads((cwd / "out/costs.json").read_text(encoding="utf-8"))
    costs = doc["method_costs"]
    assert set(costs) == set(CHEAP)
    assert all(c > 0 for c in costs.values())
    assert min(costs.values()) == 1.0
    assert set(doc["rows_per_second"]) == set(CHEAP) and all(r > 0 for r in doc["rows_per_second"].values())
    # The relative cost is the ratio of seconds per row, so the fastest has the most rows per second.
    fastest = max(doc["rows_per_second"], key=doc["rows_per_second"].get)
    assert costs[fastest] == 1.0
    assert doc["rows"] == 10 and doc["machine"]["cpu_count"] >= 1 and doc["measured_at"].startswith("20")
    assert "ta_bogus" in doc["skipped"]
    assert sorted(p.name for p in (cwd / "out").iterdir()) == ["costs.json"]  # no temp file left behind
    for method in CHEAP:
        assert any(line.split("│")[1].strip() == method for line in proc.stdout.splitlines() if "│" in line)
    assert "skipped (unavailable): ta_bogus" in proc.stdout
    assert "3 methods timed, 1 skipped" in proc.stdout


def _plan_costs(stdout: str) -> dict[str, float]:
    """combo folder -> est. cost, from the dry-run plan (aligned columns off a terminal: shard, combo, k, cost)."""
    out = {}
    for line in stdout.splitlines():
        cells = line.split()
        if len(cells) > 4 and cells[1].startswith("combo_"):
            out[cells[1]] = float(cells[3])
    return out


def _dry_run(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    """The plan with its costs, not its time (a time would take the cost column's place)."""
    args = ["run", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--id-col", "id",
            "--methods-config", "methods.yaml", "--methods", ",".join(CHEAP), "--quality-metric", "none",
            "--num-shards", "2", "--dry-run", "--no-estimate", *extra]  # fmt: skip
    return run_cli(*args, cwd=cwd)


@pytest.mark.slow
def test_calibrated_dry_run_plans_with_the_measured_costs_and_writes_nothing(benched) -> None:
    cwd, _ = benched
    costs = json.loads((cwd / "out/costs.json").read_text(encoding="utf-8"))["method_costs"]
    before = tree(cwd)
    plain = _dry_run(cwd)
    calibrated = _dry_run(cwd, "--calibrate", "out/costs.json")
    assert plain.returncode == 0 and calibrated.returncode == 0, plain.stderr + calibrated.stderr
    assert tree(cwd) == before
    catalogue = load_catalogue(cwd / "methods.yaml")
    plain_costs, measured = _plan_costs(plain.stdout), _plan_costs(calibrated.stdout)
    assert set(plain_costs) == set(measured) and len(measured) == 6  # 3 singles + 3 pairs
    for combo, cost in measured.items():
        ids = combo.split("_", 2)[2].split("+")
        assert cost == pytest.approx(sum(costs[m] for m in ids), rel=1e-4), combo
        assert plain_costs[combo] == pytest.approx(sum(catalogue[m].cost for m in ids)), combo
    assert measured != plain_costs
    assert "costs: measured for 3 of 3 methods (out/costs.json)" in calibrated.stdout
    # The costs are part of the plan's identity (the plan table's title carries its fingerprint).
    title = next(line for line in calibrated.stdout.splitlines() if "augshard plan" in line)
    assert title not in plain.stdout


@pytest.mark.slow
def test_calibrated_flag_reads_the_default_file_and_missing_methods_keep_catalogue_costs(benched) -> None:
    cwd, _ = benched
    default = cwd / DEFAULT_COSTS_PATH
    default.parent.mkdir(parents=True, exist_ok=True)
    default.write_text(json.dumps({"method_costs": {"nlp_keyboard": 3.5}}), encoding="utf-8")
    try:
        proc = _dry_run(cwd, "--calibrated")
    finally:
        default.unlink()
    assert proc.returncode == 0, proc.stderr
    costs = _plan_costs(proc.stdout)
    assert costs["combo_1_nlp_keyboard"] == 3.5
    assert costs["combo_1_nlp_randword_delete"] == 1.0  # the catalogue's cost
    assert costs["combo_1_nlp_spelling"] == 1.2  # the catalogue's cost
    assert costs["combo_2_nlp_keyboard+nlp_spelling"] == 4.7


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not a readable method costs file"),
        (None, "method costs file not found"),
    ],
)
def test_a_malformed_costs_file_is_one_line_and_exit_2(benched, content: str | None, expected: str) -> None:
    cwd, _ = benched
    bad = cwd / "bad_costs.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    try:
        proc = _dry_run(cwd, "--calibrate", "bad_costs.json")
    finally:
        bad.unlink(missing_ok=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad_costs.json" in lines[0] and expected in lines[0], proc.stderr


def test_load_costs_rejects_malformed_costs(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"rows_per_second": {}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="expected an object with 'method_costs'"):
        load_costs(path)
    path.write_text('{"method_costs": {"nlp_keyboard": -1}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="cost of 'nlp_keyboard' must be a positive number"):
        load_costs(path)
    path.write_text('{"method_costs": {"a": 2, "b": 0.5}}', encoding="utf-8")
    assert load_costs(path) == {"a": 2.0, "b": 0.5}


def test_costs_change_the_assignment_and_the_plan_fingerprint_but_not_combo_fingerprints(tmp_path: Path) -> None:
    specs = [s for s in load_catalogue(REPO / "conf" / "augment_methods.yaml").values() if s.id in CHEAP]
    cfg = load_config(overrides={"input": "x.csv", "num_shards": 2, "combo_mode": "single"})
    plain = make_plan(cfg, specs, "ab" * 32)
    heavy = make_plan(cfg, specs, "ab" * 32, costs={"nlp_keyboard": 10.0})
    assert {pc.combo.methods: pc.cost for pc in heavy.combos}[("nlp_keyboard",)] == 10.0
    # The expensive combo gets a shard to itself.
    assert sorted(len(s) for s in heavy.shards) == [1, 2]
    assert [pc.combo.methods for pc in heavy.shards[0]] == [("nlp_keyboard",)]
    assert heavy.plan_fingerprint != plain.plan_fingerprint
    assert make_plan(cfg, specs, "ab" * 32, costs={"nlp_keyboard": 9.0}).plan_fingerprint != heavy.plan_fingerprint
    assert make_plan(cfg, specs, "ab" * 32, costs=None).plan_fingerprint == plain.plan_fingerprint
    # Costs never change what a combo produces: its output fingerprint is the same.
    assert {pc.combo.combo_id: pc.fingerprint for pc in heavy.combos} == {
        pc.combo.combo_id: pc.fingerprint for pc in plain.combos
    }


def test_calibrate_is_a_run_setting_outside_the_output_fingerprint(tmp_path: Path) -> None:
    base = load_config(overrides={"input": "x.csv"})
    calibrated = load_config(overrides={"input": "x.csv", "calibrate": "c.json"})
    assert base.calibrate is None and calibrated.calibrate == "c.json"
    assert calibrated.fingerprint() == base.fingerprint()
    conf = tmp_path / "augshard.yaml"
    conf.write_text("input: x.csv\ncalibrate: true\n", encoding="utf-8")
    assert load_config(str(conf)).calibrate == DEFAULT_COSTS_PATH
    conf.write_text("input: x.csv\ncalibrate: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="--calibrate"):
        load_config(str(conf))


def _bench_module(name: str) -> ModuleType:
    """A script of bench/ (not a package: its scripts import each other by name when run from there)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _docs(tmp_path: Path, template: str, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "t.md.in").write_text(template, encoding="utf-8")
    args = ["--template", str(tmp_path / "t.md.in"), "--results", str(tmp_path), "--out", str(tmp_path / "out.md")]
    return subprocess.run([sys.executable, str(REPO / "bench" / "docs.py"), *args, *extra], capture_output=True,
                          text=True)  # fmt: skip


def test_docs_refuses_a_figure_whose_results_file_is_missing(tmp_path: Path) -> None:
    proc = _docs(tmp_path, "W took {{NOPE:augshard_2_shards_s|.1f}} s\n")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "{{NOPE:augshard_2_shards_s|.1f}}" in lines[0] and "no results file" in lines[0]
    assert "NOPE.json" in lines[0]
    assert not (tmp_path / "out.md").exists()


def test_docs_refuses_a_figure_whose_key_is_missing(tmp_path: Path) -> None:
    (tmp_path / "R.json").write_text(json.dumps({"wall_s": 3.25, "busy_s": [1.0, 2.0]}), encoding="utf-8")
    for placeholder, expected in (("{{R:rows|,}}", "has no key 'rows'"), ("{{R:busy_s.2}}", "has no key 'busy_s.2'"),
                                  ("{{R:wall_s / rows}}", "has no key 'rows'")):  # fmt: skip
        proc = _docs(tmp_path, f"a figure: {placeholder}\n")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert placeholder in lines[0] and expected in lines[0] and "R.json" in lines[0]
        assert not (tmp_path / "out.md").exists()


def test_docs_renders_figures_checks_and_provenance_from_the_files(tmp_path: Path) -> None:
    common = _bench_module("common")
    common.write_result("new", {"wall_s": 2935.8, "checks": [common.check("scaling", 1.5, 1.8)]}, tmp_path)
    (tmp_path / "old.json").write_text(json.dumps({"ratio": 0.9952, "measured_at": "2026-11-30T15:36:37"}),
                                       encoding="utf-8")  # fmt: skip
    template = ("{{new:wall_s|mins}}; {{new:wall_s / 60|.1f}} min; {{new:checks.0|check:×}}; {{old:ratio|le:1}}\n"
                "{{@old}}\n{{@sources}}\n")  # fmt: skip
    proc = _docs(tmp_path, template)
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "out.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "48 min 56 s; 48.9 min; ≥ 1.8× ✗ (missed by 17%); ≤ 1 ✓"
    assert lines[1] == "`" + str(tmp_path / "old.json") + "`: 2026-11-30, commit not recorded, host not recorded"
    host = json.loads((tmp_path / "new.json").read_text(encoding="utf-8"))["host"]
    new_row = next(line for line in lines if "new.json" in line)
    assert host["commit"] in new_row and host["date"][:10] in new_row and host["cpu"] in new_row
    assert ("AVX2" in new_row) == ("avx2" in host["cpu_flags"])
    assert "host not recorded" in next(line for line in lines if "old.json" in line)
    assert _docs(tmp_path, template, "--check").returncode == 0
    (tmp_path / "old.json").write_text(json.dumps({"ratio": 1.2}), encoding="utf-8")
    stale = _docs(tmp_path, template, "--check")
    assert stale.returncode == 1 and "is not what bench/results gives" in stale.stderr


def test_a_results_file_carries_the_host_it_was_measured_on(tmp_path: Path) -> None:
    common = _bench_module("common")
    host = common.host()
    path = common.write_result("tiny", {"name": "tiny", "wall_s": 1.5}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json"]  # no temp file left behind
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["name"] == "tiny" and doc["wall_s"] == 1.5
    recorded = doc["host"]
    assert set(recorded) == set(host)
    assert recorded["commit"] == host["commit"] and re.fullmatch(r"[0-9a-f]{7,}", recorded["commit"])
    assert isinstance(recorded["dirty"], bool) and recorded["date"].startswith("20")
    assert recorded["cores"] >= 1 and recorded["python"].count(".") == 2 and recorded["cpu"]
    assert set(recorded["cpu_flags"]) <= {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                                          "amx_bf16"}  # fmt: skip
    assert set(recorded["versions"]) == set(common.LIBRARIES) and recorded["versions"]["pyarrow"]


def test_a_tree_whose_only_changes_are_results_files_is_not_dirty(tmp_path: Path, monkeypatch) -> None:
    """A bench run writes results files; that alone does not make its figures "with uncommitted changes"."""
    common = _bench_module("common")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "A.json").write_text("{}", encoding="utf-8")
    (tmp_path / "code.py").write_text("x = 1\n", encoding="utf-8")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "c"]):
        subprocess.run([*git, *args], cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.setattr(common, "REPO", tmp_path)
    (tmp_path / "bench" / "results" / "A.json").write_text('{"a": 1}', encoding="utf-8")
    assert common._commit()["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n", encoding="utf-8")
    assert common._commit()["dirty"] is True


def test_the_committed_benchmarks_doc_is_what_the_results_files_give() -> None:
    docs = _bench_module("docs")
    assert docs.main(["--check"]) == 0, "run .venv/bin/python bench/docs.py"


def test_every_results_file_the_docs_cite_exists() -> None:
    docs = _bench_module("docs")
    results = docs.Results(docs.RESULTS)
    docs.render(docs.TEMPLATE.read_text(encoding="utf-8"), results)
    assert "W" in results.cited and "B6" not in results.cited and "B6-char_ratio" not in results.cited
    for doc in ("benchmarks.md", "evaluate.md", "operations.md"):
        text = (REPO / "docs" / doc).read_text(encoding="utf-8")
        for cited in set(re.findall(r"bench/results/([\w.+-]+\.json)", text)):
            assert (REPO / "bench" / "results" / cited).is_file(), f"docs/{doc} cites a missing {cited}"


def _stale_figures(docs: ModuleType, template: str, committed: str) -> list[str]:
    """The placeholders of `template` whose figure in `committed` (the doc as it is in git) is not what its results
    file gives today: a results file rerun, or edited, without its doc being regenerated."""
    results = docs.Results(docs.RESULTS)
    parts = docs.PLACEHOLDER.split(template)  # literal, placeholder body, literal, ...
    literals, bodies = parts[0::2], parts[1::2]
    if not committed.startswith(literals[0]):
        return ["the text before the first figure differs from the template: run .venv/bin/python bench/docs.py"]
    pos, stale = len(literals[0]), []
    for body, after in zip(bodies, literals[1:], strict=True):
        figure = docs.render("{{" + body + "}}", results)
        if body.strip() == "@sources":  # the provenance table: its rows are the @FILE lines, each compared
            figure = committed[pos : committed.find(after, pos) if after else len(committed)]
        if committed.startswith(figure + after, pos):
            pos += len(figure) + len(after)
            continue
        end = committed.find(after, pos) if after else len(committed)
        if end < 0:
            return [*stale, f"the text after {{{{{body}}}}} differs from the template: run bench/docs.py"]
        stale.append(f"{{{{{body}}}}}: the doc says {committed[pos:end]!r}, the results file gives {figure!r}")
        pos = end + len(after)
    return stale


def test_no_results_file_is_stale_and_each_names_its_commit_and_host() -> None:
    """Issue 21's rule: every figure the docs and README give comes from a results file that says where it was
    measured (the commit, the CPU and its flags), and no results file lies about unused. Stale: a results file whose
    figure, as docs/benchmarks.md or README.md cites it, no longer matches the file."""
    docs = _bench_module("docs")
    results = docs.Results(docs.RESULTS)
    docs.render(docs.TEMPLATE.read_text(encoding="utf-8"), results)
    docs.render(docs.README_TEMPLATE.read_text(encoding="utf-8"), results)
    cited = set(results.cited)
    for doc in ("evaluate.md", "operations.md"):
        text = (REPO / "docs" / doc).read_text(encoding="utf-8")
        cited |= {name.removesuffix(".json") for name in re.findall(r"bench/results/([\w.+-]+\.json)", text)}
    on_disk = {p.stem for p in docs.RESULTS.glob("*.json")}
    assert on_disk <= cited, f"results files no doc cites: {sorted(on_disk - cited)}"
    for name in sorted(on_disk):
        host = json.loads((docs.RESULTS / f"{name}.json").read_text(encoding="utf-8")).get("host") or {}
        assert host.get("commit") and host.get("cpu") and "cpu_flags" in host and host.get("date"), name
    readme = docs.README.read_text(encoding="utf-8")
    table = readme[readme.index(docs.README_BEGIN) + len(docs.README_BEGIN) + 1 : readme.index(docs.README_END)]
    for template, committed in ((docs.TEMPLATE, docs.DOC.read_text(encoding="utf-8")), (docs.README_TEMPLATE, table)):
        assert _stale_figures(docs, template.read_text(encoding="utf-8"), committed) == [], template.name


def test_a_changed_results_figure_is_named_stale(tmp_path: Path) -> None:
    docs = _bench_module("docs")
    template = docs.README_TEMPLATE.read_text(encoding="utf-8")
    committed = docs.render(template, docs.Results(docs.RESULTS))
    assert _stale_figures(docs, template, committed) == []
    w = json.loads((docs.RESULTS / "W.json").read_text(encoding="utf-8"))
    shown = f"{w['augshard_2_shards_s']:.1f} s"
    assert shown in committed
    (stale,) = _stale_figures(docs, template, committed.replace(shown, "22.0 s", 1))
    assert "{{W:augshard_2_shards_s|.1f}}" in stale and "'22.0'" in stale


# A figure with a unit, as README's prose (and the comments of its examples) might quote one.
FIGURE = re.compile(r"(?<![\w.])~?\d[\d,]*(?:\.\d+)?\s?(?:s|min|h|×|MB|GB)(?!\w)")


def test_readme_quotes_no_figure_the_results_files_do_not_hold() -> None:
    """README's benchmarks table is rendered from the results files (bench/readme.md.in; `make lint` checks it), and
    nowhere else does README quote a time, a speed-up or a size that docs/benchmarks.md (the results files') lacks."""
    docs = _bench_module("docs")
    opts = argparse.Namespace(out=docs.DOC, template=docs.TEMPLATE, results=docs.RESULTS)
    rendered = dict(docs.outputs(opts))
    readme = docs.README.read_text(encoding="utf-8")
    assert rendered[docs.README] == readme, "README.md's table is not what bench/results gives: run bench/docs.py"
    outside = readme[: readme.index(docs.README_BEGIN)] + readme[readme.index(docs.README_END) :]
    held = rendered[docs.DOC] + rendered[docs.README]
    quoted, fenced = [], False
    for line in outside.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        prose = line if not fenced else line.partition("#")[2]  # in an example, only its comments are claims
        quoted += [m.group().lstrip("~") for m in FIGURE.finditer(prose)]
    assert [q for q in quoted if q not in held] == []
