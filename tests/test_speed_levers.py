"""The speed levers keep outputs exact: lazily built methods, the score and vector caches, the method-check
record, and a rerun from caches that imports no augmentation library."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import run_cli, run_events, sample_rows, write_csv

from augshard import methods as methods_pkg
from augshard.methods import LazyMethod, MethodStatus, build_method, check_methods, load_catalogue
from augshard.methods.spec import MethodSpec
from augshard.shard.cache import Cache
from augshard.shard.quality import CachedScorer, CharRatioScorer, EmbeddingScorer

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = load_catalogue(REPO / "conf" / "augment_methods.yaml")


def test_lazy_method_knows_its_cache_identity_before_building() -> None:
    for method_id in ("nlp_keyboard", "ta_wordswap_qwerty", "ta_contraction"):
        lazy = LazyMethod(CATALOGUE[method_id])
        version, batched = lazy.version, lazy.batch_dependent
        assert not lazy.built
        built = build_method(CATALOGUE[method_id])
        assert (version, batched) == (built.version, bool(getattr(built, "batch_dependent", False)))
        assert lazy.augment(["A plain sentence to change a little."], [7]) == built.augment(
            ["A plain sentence to change a little."], [7]
        )
        assert lazy.built


def test_lazy_model_methods_announce_their_batch_from_the_spec() -> None:
    assert (
        LazyMethod(CATALOGUE["ta_mlm_sub_bert"]).batch_dependent,
        LazyMethod(CATALOGUE["ta_mlm_sub_bert"]).batch_size,
    ) == (True, 8)
    cwe = LazyMethod(CATALOGUE["nlp_cwe_sub_roberta"])
    assert (cwe.batch_dependent, cwe.batch_size) == (
        True,
        int(CATALOGUE["nlp_cwe_sub_roberta"].args.get("batch_size", 32)),
    )
    assert not LazyMethod(CATALOGUE["nlp_keyboard"]).batch_dependent


class CountingScorer(CharRatioScorer):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        self.calls.append(len(candidates))
        return super().score(originals, candidates)


def test_cached_scorer_scores_a_pair_once_and_returns_the_stored_value(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.db")
    inner = CountingScorer()
    scorer = CachedScorer(inner, cache)
    originals, candidates = ["The screen is bright.", "It boils fast."], ["The scren is bright.", "It boils fst."]
    first = scorer.score(originals, candidates)
    assert first == CharRatioScorer().score(originals, candidates)
    again = scorer.score(originals + ["It boils fast."], candidates + ["It boils quick."])
    assert again[:2] == first
    assert inner.calls == [2, 1]  # only the new pair was computed
    assert (scorer.hits, scorer.misses) == (2, 3)
    reopened = CachedScorer(CountingScorer(), Cache(tmp_path / "c.db"))
    assert reopened.score(originals, candidates) == first and reopened.inner.calls == []


def test_scores_of_another_metric_are_not_reused(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c.db")
    CachedScorer(CharRatioScorer(), cache).score(["abc"], ["abd"])
    other = CountingScorer()
    other.identity = "char_ratio|another"
    CachedScorer(other, cache).score(["abc"], ["abd"])
    assert other.calls == [1]


def test_embedding_originals_are_encoded_once_per_shard_and_read_back(tmp_path: Path) -> None:
    originals = ["The kettle boils a full litre quickly.", "Shipping took two weeks.", "Great value."]
    candidates = ["The kettle boils a litre quickly.", "Shipping took 2 weeks.", "Good value."]
    first = EmbeddingScorer(batch_size=8, cache=Cache(tmp_path / "v.db"))
    first.prime(originals)
    assert not first.encoder.loaded  # nothing loaded until a score is needed
    sims = first.score(originals, candidates)
    first.score(originals[:1], ["Another kettle sentence."])
    assert (first.originals_encoded, first.encode_calls) == (3, 3)
    second = EmbeddingScorer(batch_size=8, cache=Cache(tmp_path / "v.db"))
    second.prime(originals)
    assert second.score(originals, candidates) == sims
    assert (second.originals_encoded, second.originals_from_cache) == (0, 3)


def test_embedding_memory_window_reloads_what_a_call_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MEMORY originals the in-memory vectors are dropped; a score still finds every original it needs."""
    monkeypatch.setattr(EmbeddingScorer, "MEMORY", 4)
    scorer = EmbeddingScorer(batch_size=8, cache=Cache(tmp_path / "v.db"))
    chunks = [[f"Sentence number {i} about kettles." for i in range(j, j + 3)] for j in (0, 3, 6)]
    for chunk in chunks:
        scorer.prime(chunk)
        assert len(scorer.score(chunk, [c.replace("kettles", "teapots") for c in chunk])) == 3
    # An original of the first chunk again, after two windows: read back from the cache, not encoded again.
    scorer.prime(chunks[0])
    first = scorer.score(chunks[0][:1] + chunks[2][:1], ["Sentence number 0 about teapots.", "Another one."])
    assert len(first) == 2 and scorer.originals_encoded == 9 and scorer.originals_from_cache >= 3


def test_method_check_record_skips_every_method_probed_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "checks.json"
    good, bad = CATALOGUE["nlp_keyboard"], CATALOGUE["ta_mlm_sub_bert"]
    calls: list[str] = []

    def fake_check(spec: MethodSpec, probe: bool = True) -> MethodStatus:
        calls.append(spec.id)
        return MethodStatus(spec.id, spec.lib, spec.kind, ok=spec is good, reason="" if spec is good else "no model")

    monkeypatch.setattr(methods_pkg, "check_method", fake_check)
    first = check_methods([good, bad], record)
    assert calls == ["nlp_keyboard", "ta_mlm_sub_bert"] and first["ta_mlm_sub_bert"].ok is False
    second = check_methods([good, bad], record)
    assert calls[2:] == []  # neither is probed again: the failure comes back with its reason
    assert second == first
    stored = json.loads(record.read_text())["probes"].values()
    assert sorted((p["id"], p["ok"]) for p in stored) == [("nlp_keyboard", True), ("ta_mlm_sub_bert", False)]
    check_methods([good], record, trust_record=False)
    assert calls[2:] == ["nlp_keyboard"]
    monkeypatch.setenv("AUGSHARD_NLTK_DATA", str(tmp_path / "elsewhere"))
    check_methods([good], record)
    assert calls[3:] == ["nlp_keyboard"]  # other resources: checked again


def test_rerun_from_caches_computes_nothing_and_gives_the_same_bytes(tmp_path: Path) -> None:
    """Datasets deleted, caches kept: every call and score comes from the cache, no method is even built."""
    write_csv(tmp_path / "in.csv", sample_rows(12))
    args = ("run", "--no-live", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--methods",
            "nlp_keyboard,ta_wordswap_qwerty", "--quality-metric", "char_ratio", "--num-shards", "2")  # fmt: skip
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    out = tmp_path / "data/processed/augsets"
    before = {p.relative_to(out): p.read_bytes() for p in out.glob("combo_*/dataset.parquet")}
    assert len(before) == 3
    for folder in out.glob("combo_*"):
        shutil.rmtree(folder)
    for log in (tmp_path / "logs/augment").glob("*"):
        log.unlink()
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.relative_to(out): p.read_bytes() for p in out.glob("combo_*/dataset.parquet")} == before
    done = run_events(tmp_path, "shard_done")
    assert len(done) == 2
    assert sum(e.calls_computed for e in done) == 0 and sum(e.calls_cached for e in done) > 0
    # A shard whose combos were all stolen by the other (a loaded machine) built no filter and has no counters.
    assert sum(e.filter.get("score_misses", 0) for e in done) == 0 and sum(e.filter.get("score_hits", 0) for e in done)
    assert sum(e.calls_s for e in done) == 0 and sum(e.write_s for e in done) > 0  # no call made, files written
    assert all(e.peak_rss_mb > 0 for e in done)
    logs = "".join(p.read_text() for p in (tmp_path / "logs/augment").glob("*.log"))
    assert "0 computed in 0.0s" in logs
