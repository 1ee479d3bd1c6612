"""Tests for augshard.shard.pipeline: one combo over real rows with real nlpaug methods, scorer and cache."""

from __future__ import annotations

import csv
import dataclasses
import itertools
from pathlib import Path
from unittest import mock

import pytest

from augshard.core.combos import Combo
from augshard.core.config import RunConfig, load_config
from augshard.events.stream import SCORING
from augshard.methods import Augmenter, build_method, load_catalogue
from augshard.shard.cache import Cache
from augshard.shard.pipeline import call_seed, output_schema, run_combo
from augshard.shard.progress import ChunkProgress
from augshard.shard.quality import CachedScorer, EmbeddingScorer, make_scorer
from augshard.storage.data import Dataset, load_dataset, splice

CATALOGUE = Path(__file__).resolve().parent.parent / "conf" / "augment_methods.yaml"
METHOD_IDS = ("nlp_keyboard", "nlp_randword_delete")

EVIDENCE = [
    "It boils a full litre in under three minutes, which is faster than my old one.",
    "The left earcup started crackling after just two weeks of light use.",
    "Breakfast was a standard buffet with eggs, toast and fruit every single morning.",
    "The risotto was creamy and perfectly seasoned, and the portions were generous.",
    "The battery easily lasts two full days of heavy use with the screen on.",
    "Assembly took almost three hours because two of the screws were missing.",
    "The fabric feels soft and thick, and it has not faded after many washes.",
    "Our guide spoke clearly and kept the whole group laughing during the tour.",
    "The printer jams on almost every page unless the paper is perfectly flat.",
    "Delivery arrived a day early and the box was packed with plenty of padding.",
]


def _row_text(i: int, evidence: str) -> str:
    return f"Review number {i} starts here. {evidence} Overall, I would say it is worth a look!"


@pytest.fixture(scope="module")
def methods() -> dict[str, Augmenter]:
    specs = load_catalogue(CATALOGUE)
    return {m: build_method(specs[m]) for m in METHOD_IDS}


@pytest.fixture(scope="module")
def input_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pipeline") / "reviews.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "label", "text", "evidence"])
        for i, evidence in enumerate(EVIDENCE):
            writer.writerow([f"r{i:03d}", "pos" if i % 2 else "neg", _row_text(i, evidence), evidence])
    return path


@pytest.fixture(scope="module")
def cfg(input_csv: Path) -> RunConfig:
    return load_config(
        None,
        {
            "input": str(input_csv),
            "text_col": "text",
            "evidence_col": "evidence",
            "id_col": "id",
            "quality_metric": "char_ratio",
            "quality_min_sim": 0.6,
            "quality_max_sim": 0.99,
            "variants_per_sample": 2,
            "chunk_size": 4,
            "seed": 42,
        },
    )


@pytest.fixture(scope="module")
def dataset(cfg: RunConfig) -> Dataset:
    ds = load_dataset(cfg.input, cfg.text_col, cfg.evidence_col, cfg.id_col)
    assert len(ds.rows) == 10
    assert all(r.match == "exact" for r in ds.rows)
    return ds


def _run(
    combo: Combo, dataset: Dataset, methods: dict, cache: Cache, cfg: RunConfig
) -> tuple[list[dict], list, object]:
    chunks: list[list[dict]] = []
    progress: list[tuple[int, int]] = []
    stats = run_combo(
        combo,
        dataset,
        methods,
        make_scorer(cfg.quality_metric),
        cache,
        cfg,
        chunks.append,
        lambda done, total: progress.append((done, total)),
    )
    assert progress == [(4, 10), (8, 10), (10, 10)]
    assert len(chunks) == 3
    return [r for chunk in chunks for r in chunk], progress, stats


COMBOS = [Combo(("nlp_keyboard",)), Combo(("nlp_randword_delete",)), Combo(METHOD_IDS)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset, methods: dict, cfg: RunConfig) -> dict:
    """Each combo run twice against one cache: first cold, then warm."""
    out = {}
    cache = Cache(tmp_path_factory.mktemp("cache") / "augment_shard0.db")
    for combo in COMBOS:
        cold, _, cold_stats = _run(combo, dataset, methods, cache, cfg)
        hits_before = cache.hits
        warm, _, warm_stats = _run(combo, dataset, methods, cache, cfg)
        out[combo] = {"cold": cold, "warm": warm, "cold_stats": cold_stats, "warm_stats": warm_stats,
                      "warm_hits": cache.hits - hits_before}  # fmt: skip
    cache.close()
    return out


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: c.name)
def test_similarity_within_thresholds(runs: dict, cfg: RunConfig, combo: Combo) -> None:
    records = runs[combo]["cold"]
    assert len(records) >= 10
    for r in records:
        assert cfg.quality_min_sim <= r["similarity"] <= cfg.quality_max_sim
    stats = runs[combo]["cold_stats"]
    assert stats.candidates >= len(records)
    assert stats.candidates_rejected == stats.rejected_similarity + stats.rejected_unchanged


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: c.name)
def test_only_the_evidence_span_changes(runs: dict, dataset: Dataset, combo: Combo) -> None:
    by_key = {row.key: row for row in dataset.rows}
    for r in runs[combo]["cold"]:
        row = by_key[r["row_key"]]
        assert r["evidence_original"] == row.evidence
        assert r["text"] == splice(row.text, row.start, row.end, r["evidence"])
        assert r["text"].startswith(row.text[: row.start])
        assert r["text"].endswith(row.text[row.end :])
        assert r["evidence_match"] == "exact"
        assert r["combo_id"] == combo.combo_id
        assert r["methods"] == combo.name
        # Input columns other than text and evidence are carried over unchanged.
        assert r["id"] == row.key
        assert r["label"] == dataset.table.to_pylist()[row.index]["label"]


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: c.name)
def test_variants_per_row_are_few_distinct_and_changed(
    runs: dict, dataset: Dataset, cfg: RunConfig, combo: Combo
) -> None:
    by_row: dict[str, list[dict]] = {}
    for r in runs[combo]["cold"]:
        by_row.setdefault(r["row_key"], []).append(r)
    assert set(by_row) <= {row.key for row in dataset.rows}
    for records in by_row.values():
        assert 1 <= len(records) <= cfg.variants_per_sample
        assert [r["variant"] for r in records] == list(range(len(records)))
        evidences = [r["evidence"] for r in records]
        assert len(set(evidences)) == len(evidences)
        assert all(e != r["evidence_original"] and e.strip() for e, r in zip(evidences, records, strict=True))
    stats = runs[combo]["cold_stats"]
    assert stats.rows_short == len(dataset.rows) - sum(1 for v in by_row.values() if len(v) == 2)


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: c.name)
def test_warm_cache_gives_identical_records(runs: dict, combo: Combo) -> None:
    assert runs[combo]["warm"] == runs[combo]["cold"]
    assert runs[combo]["warm_hits"] > 0
    assert runs[combo]["warm_stats"].candidates == runs[combo]["cold_stats"].candidates


def test_fresh_cache_gives_identical_records(
    runs: dict, tmp_path: Path, dataset: Dataset, methods: dict, cfg: RunConfig
) -> None:
    cache = Cache(tmp_path / "fresh.db")
    for combo in COMBOS:
        records, _, _ = _run(combo, dataset, methods, cache, cfg)
        assert records == runs[combo]["cold"]
    cache.close()


def test_pair_reuses_the_single_methods_first_step(
    tmp_path: Path, dataset: Dataset, methods: dict, cfg: RunConfig
) -> None:
    cache = Cache(tmp_path / "prefix.db")
    _run(Combo(("nlp_keyboard",)), dataset, methods, cache, cfg)
    hits = cache.hits
    _run(Combo(METHOD_IDS), dataset, methods, cache, cfg)
    assert cache.hits > hits  # the pair's keyboard step is the very same call as the single method's
    cache.close()


def test_records_match_output_schema(runs: dict, dataset: Dataset) -> None:
    import pyarrow as pa

    schema = output_schema(dataset.table.schema, has_evidence=True)
    table = pa.Table.from_pylist(runs[Combo(METHOD_IDS)]["cold"], schema=schema)
    assert table.column_names == [
        *["id", "label", "text", "evidence", "row_key", "variant", "evidence_original"],
        *["evidence_match", "similarity", "combo_id", "methods"],
    ]


def test_call_seed_differs_by_prefix_row_and_attempt() -> None:
    base = call_seed(42, ("nlp_keyboard",), "r001", 0)
    assert call_seed(42, ("nlp_keyboard",), "r001", 0) == base
    others = [
        call_seed(43, ("nlp_keyboard",), "r001", 0),
        call_seed(42, ("nlp_ocr",), "r001", 0),
        call_seed(42, ("nlp_keyboard", "nlp_ocr"), "r001", 0),
        call_seed(42, ("nlp_keyboard",), "r002", 0),
        call_seed(42, ("nlp_keyboard",), "r001", 1),
    ]
    assert base not in others
    assert len(set(others)) == len(others)
    assert all(0 <= s < 2**32 for s in [base, *others])


class ScriptedCase:
    """A method whose candidates differ from the original, or from each other, only in case or surrounding space,
    except for the third attempt of each row: what the original tool's casefold().strip() rule must reject."""

    version = "scripted-1"

    def __init__(self, dataset: Dataset, cfg: RunConfig) -> None:
        from augshard.methods.spec import MethodSpec

        self.spec = MethodSpec(id="case_games", lib="nlpaug", kind="Scripted")
        self.attempt = {call_seed(cfg.seed, ("case_games",), row.key, a): a for row in dataset.rows for a in range(6)}

    def augment(self, texts: list[str], seeds: list[int]) -> list[str | Exception]:
        out: list[str | Exception] = []
        for text, seed in zip(texts, seeds, strict=True):
            a = self.attempt[seed]
            changed = "Truly, " + text
            out.append([text.upper(), f"  {text.lower()} ", changed, changed.upper() + " ", changed, text][a])
        return out


def test_case_and_space_only_changes_are_not_variants(tmp_path: Path, dataset: Dataset, cfg: RunConfig) -> None:
    from dataclasses import replace

    run_cfg = replace(cfg, quality_metric="none", variants_per_sample=2, max_candidates_per_variant=3)
    combo = Combo(("case_games",))
    chunks: list[list[dict]] = []
    stats = run_combo(
        combo, dataset, {"case_games": ScriptedCase(dataset, run_cfg)}, make_scorer("none"), Cache(tmp_path / "c.db"),
        run_cfg, chunks.append,
    )  # fmt: skip
    records = [r for chunk in chunks for r in chunk]
    # Per row: attempts 0 and 1 are the original in other case/space, 3 and 4 repeat attempt 2, 5 is the original.
    assert [r["evidence"] for r in records] == ["Truly, " + row.evidence for row in dataset.rows]
    n = len(dataset.rows)
    assert (stats.candidates, stats.unchanged, stats.duplicates) == (6 * n, 3 * n, 2 * n)
    assert stats.rows_short == n and stats.candidates_rejected == 5 * n
    why = stats.explain(asked=2 * n, kept=n, min_sim=0.55, max_sim=0.95)
    assert why == ""  # half of what was asked: not a low yield
    why = stats.explain(asked=4 * n, kept=n, min_sim=0.55, max_sim=0.95)
    assert why.startswith(f"kept {n} of {4 * n} variants (25%) from {6 * n} candidates: 30 unchanged, 20 duplicates")
    assert "The method rarely changes these texts" in why


def test_each_step_scope_judges_every_method_of_a_pair_and_leaves_singles_alone(
    tmp_path: Path, dataset: Dataset, methods: dict, cfg: RunConfig
) -> None:
    from dataclasses import replace

    # A ceiling light edits can pass only together: one typo alone often scores above it, a typo and a lost word not.
    final = replace(cfg, quality_max_sim=0.93)
    each = replace(final, quality_scope="each-step")
    assert each.fingerprint() != final.fingerprint()  # a different filter makes different data
    out: dict[str, dict] = {}
    for scope, run_cfg in (("final", final), ("each-step", each)):
        cache = Cache(tmp_path / f"{scope}.db")
        for combo in COMBOS:
            chunks: list[list[dict]] = []
            stats = run_combo(combo, dataset, methods, make_scorer(cfg.quality_metric), cache, run_cfg, chunks.append)
            out.setdefault(scope, {})[combo.name] = ([r for c in chunks for r in c], stats)
        cache.close()
    pair = Combo(METHOD_IDS).name
    for single in METHOD_IDS:  # one step: its input is the original, so both scopes judge the same pair
        assert out["each-step"][single][0] == out["final"][single][0]
        assert out["each-step"][single][1].step_rejected == 0
    records, stats = out["each-step"][pair]
    assert stats.step_rejected > 0 and out["final"][pair][1].step_rejected == 0
    assert stats.candidates_rejected == stats.rejected_unchanged + stats.rejected_similarity + stats.step_rejected
    assert len(records) <= len(out["final"][pair][0])
    for r in records:  # the final check still holds
        assert final.quality_min_sim <= r["similarity"] <= final.quality_max_sim


def test_scoring_moves_the_rows_counter_batch_by_batch_and_changes_no_output(
    tmp_path: Path, dataset: Dataset, methods: dict, cfg: RunConfig
) -> None:
    """With the ONNX encoder, each batch it encodes moves the counter (the scoring phase of a round is half its
    work); the rows written are those of a run nobody watches."""
    embed = dataclasses.replace(cfg, quality_metric="embedding", quality_min_sim=0.5, quality_max_sim=0.99,
                                chunk_size=10, embedding_backend="onnx")  # fmt: skip
    combo = Combo(METHOD_IDS)

    def run(watched: bool) -> tuple[list[dict], list[tuple[int, int, str]]]:
        scorer = CachedScorer(EmbeddingScorer(batch_size=4, backend="onnx"), Cache(tmp_path / f"{watched}.db"))
        told: list[tuple[int, int, str]] = []
        chunks: list[list[dict]] = []
        on_work = (lambda done, total, phase: told.append((done, total, phase))) if watched else None
        run_combo(combo, dataset, methods, scorer, Cache(tmp_path / f"aug{watched}.db"), embed, chunks.append,
                  on_work=on_work)  # fmt: skip
        assert scorer.inner._watcher is None  # let go when the combo ends
        return [r for chunk in chunks for r in chunk], told

    with mock.patch.object(ChunkProgress, "__init__", _every_word(ChunkProgress.__init__)):
        watched, told = run(True)
    plain, _ = run(False)
    assert watched == plain and len(plain) > 0
    # One chunk of 10 rows: 10 originals and up to 20 candidates a round, in batches of 4. Unwatched, a round's
    # scoring is one word; watched, the first round's scoring is told batch by batch and the counter moves in it.
    runs = [[done for done, _, _ in group] for phase, group in itertools.groupby(told, key=lambda t: t[2])
            if phase == SCORING]  # fmt: skip
    assert max(len(set(run)) for run in runs) >= 2 and max(len(run) for run in runs) >= 4, told
    rows = [done for done, _, _ in told]
    assert rows == sorted(rows) and max(rows) < 10


def _every_word(init):  # noqa: ANN001, ANN202
    """ChunkProgress as the shard makes it, but told every reading (no minimum interval), for the test to see all."""

    def patched(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        kwargs["min_interval"] = 0.0
        init(self, *args, **kwargs)

    return patched
