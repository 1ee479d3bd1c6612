"""Tests for augshard.shard.quality: the char_ratio, embedding and none scorers."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from augshard.core.errors import ConfigError
from augshard.shard.quality import CharRatioScorer, EmbeddingScorer, NoScorer, make_scorer

PAIRS = [
    ("The Screen is bright.", "the screen is BRIGHT."),
    ("It boils a full litre in under three minutes.", "It boils a ful litre in undr three minutes."),
    ("Shipping was slow.", "Completely different words here, none shared."),
    ("abc", ""),
    ("Café crème ✓", "cafe creme"),
]


def test_char_ratio_equals_difflib_on_lowercase_rounded() -> None:
    scorer = make_scorer("char_ratio")
    assert isinstance(scorer, CharRatioScorer)
    assert scorer.name == "char_ratio"
    originals, candidates = [o for o, _ in PAIRS], [c for _, c in PAIRS]
    expected = [round(difflib.SequenceMatcher(None, o.lower(), c.lower()).ratio(), 6) for o, c in PAIRS]
    got = scorer.score(originals, candidates)
    assert got == expected
    assert got[0] == 1.0  # case does not count
    assert all(0.0 <= s <= 1.0 for s in got)
    assert all(round(s, 6) == s for s in got)


def test_the_compiled_matcher_is_difflib_to_the_last_bit() -> None:
    """The filter and the evidence locator use cydifflib's SequenceMatcher: it must be the one in use (a missing
    wheel would silently cost 7x) and give exactly difflib's ratio, unrounded, with and without autojunk, on texts
    with many ties (small alphabets), past autojunk's 200 characters, empty, and outside the BMP."""
    import random

    import cydifflib

    from augshard.storage import data

    assert data.SequenceMatcher is cydifflib.SequenceMatcher
    rng = random.Random(7)
    alphabets = ["ab", "abc ", "the quick brown fox ", "aé😀\u0301 b"]
    for _ in range(3000):
        alphabet = rng.choice(alphabets)
        a = "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 12, 150, 199, 200, 201, 320])))
        cut = rng.randint(0, len(a))
        b = a[:cut] + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) + a[rng.randint(cut, len(a)) :]
        for autojunk in (True, False):
            expected = difflib.SequenceMatcher(None, a, b, autojunk=autojunk)
            got = data.SequenceMatcher(None, a, b, autojunk=autojunk)
            assert got.ratio() == expected.ratio(), (a, b, autojunk)
            assert got.quick_ratio() == expected.quick_ratio() and got.real_quick_ratio() == expected.real_quick_ratio()


def test_char_ratio_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        CharRatioScorer().score(["a", "b"], ["a"])


def _long_text(n: int) -> str:
    import random

    rng = random.Random(3)
    words = ["screen", "battery", "kettle", "boils", "litre", "shipping", "slow", "bright", "the", "a", "was"]
    return " ".join(rng.choice(words) for _ in range(n // 5))[:n]


def test_char_ratio_is_difflibs_up_to_the_bound() -> None:
    """Texts up to CHAR_RATIO_EXACT_MAX characters (far past any sentence or review) keep difflib's exact ratio."""
    from augshard.shard.quality import CHAR_RATIO_EXACT_MAX

    a = _long_text(CHAR_RATIO_EXACT_MAX)
    b = a[:4000] + "an edit in the middle" + a[4030:] + "?"
    b = b[:CHAR_RATIO_EXACT_MAX]
    scorer = CharRatioScorer()
    assert scorer.score([a, a.upper()], [b, a]) == [round(difflib.SequenceMatcher(None, a, b).ratio(), 6), 1.0]
    assert scorer.bounded == 0


def test_char_ratio_of_a_megabyte_is_bounded_in_time() -> None:
    """A 1 MB text against a variant edited all along it: difflib's ratio would take minutes (holding the GIL in
    cydifflib); the bound takes well under a second, and the scorer counts it."""
    import random
    import time

    from augshard.shard.quality import bounded_char_ratio

    a = _long_text(1_000_000)
    rng = random.Random(5)
    b = list(a)
    for _ in range(2000):  # edits everywhere: the middle left after the common prefix and suffix is the whole text
        b[rng.randrange(len(b))] = "#"
    b = "".join(b)
    local = a[:500_000] + "a local edit" + a[500_040:]
    scorer = CharRatioScorer()
    t0 = time.perf_counter()
    spread, one_edit, same = scorer.score([a, a, a], [b, local, a])
    assert time.perf_counter() - t0 < 1.0
    assert scorer.bounded == 3 and same == 1.0 and 0.99 < spread < 1.0 and 0.9999 < one_edit < 1.0
    # A local edit: the prefix and suffix count whole and the middle is difflib's, as the docs say.
    middle = difflib.SequenceMatcher(None, a[500_000:500_040], "a local edit")
    matched = 1_000_000 - 40 + sum(m.size for m in middle.get_matching_blocks())
    assert bounded_char_ratio(a, local) == 2 * matched / (len(a) + len(local))


def test_none_scorer() -> None:
    scorer = make_scorer("none")
    assert isinstance(scorer, NoScorer)
    scorer.prime(["x"])
    assert scorer.score(["a", "b"], ["c", "d"]) == [None, None]
    assert scorer.score([], []) == []


def test_unknown_metric() -> None:
    with pytest.raises(ConfigError, match="unknown quality metric 'bleu'"):
        make_scorer("bleu")


def test_embedding_model_dir_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="embedding model directory not found"):
        make_scorer("embedding", model_path=str(tmp_path / "no-model"))


@pytest.fixture(scope="module")
def embedding() -> EmbeddingScorer:
    scorer = make_scorer("embedding", batch_size=8)
    assert isinstance(scorer, EmbeddingScorer)
    return scorer


def test_embedding_identical_text_is_one(embedding: EmbeddingScorer) -> None:
    text = "The risotto was creamy and perfectly seasoned."
    (sim,) = embedding.score([text], [text])
    assert sim == pytest.approx(1.0, abs=1e-4)
    assert sim <= 1.0


def test_embedding_paraphrase_beats_unrelated(embedding: EmbeddingScorer) -> None:
    original = "The battery lasts all day and charges quickly."
    paraphrase = "The battery holds up all day long and recharges fast."
    unrelated = "My grandmother planted tulips along the garden fence in spring."
    para, other = embedding.score([original, original], [paraphrase, unrelated])
    assert para > other + 0.3
    assert 0.0 <= other < para < 1.0
    assert embedding.name == "embedding"


def test_embedding_originals_encoded_once(embedding: EmbeddingScorer) -> None:
    originals = ["First original sentence about kettles.", "Second original sentence about hotels.",
                 "First original sentence about kettles."]  # fmt: skip
    before_orig, before_cand = embedding.originals_encoded, embedding.candidates_encoded
    first = embedding.score(originals, ["a kettle", "a hotel", "a kettle"])
    assert embedding.originals_encoded - before_orig == 2  # the repeated original is encoded once
    assert embedding.candidates_encoded - before_cand == 2
    second = embedding.score(originals, ["a kettle", "a hotel", "a kettle"])
    assert embedding.originals_encoded - before_orig == 2  # nothing new the second time
    assert second == first
    assert first[0] == first[2]


def test_embedding_prime_then_score(embedding: EmbeddingScorer) -> None:
    originals = ["Primed sentence number one.", "Primed sentence number two."]
    before = embedding.originals_encoded
    embedding.prime(originals)
    embedding.prime(originals)
    assert embedding.originals_encoded - before == 0  # remembered, encoded when a score first needs them
    embedding.score(originals, ["number one", "number two"])
    assert embedding.originals_encoded - before == 2
    embedding.score(originals[:1], ["number three"])
    assert embedding.originals_encoded - before == 2


def test_embedding_empty_candidates(embedding: EmbeddingScorer) -> None:
    assert embedding.score([], []) == []
