"""Every catalogue method that can run here changes real sentences the way its kind says, reproducibly."""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from augshard.methods import Augmenter, MethodSpec, build_method, check_method, load_catalogue

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SENTENCES = Path(__file__).resolve().parents[2] / "shared/data/redsm5/sentences.csv"
CATALOGUE = load_catalogue(REPO / "conf" / "augment_methods.yaml")

if not SENTENCES.is_file():
    pytest.skip(f"real sentences not found: {SENTENCES} (the shared RedSM5 data)", allow_module_level=True)

# The pairs TextAttack's WordSwapContract knows (a copy of EXTENSION_MAP's values, so collecting needs no import).
CONTRACTIBLE = (
    *("I am", "i am", "I have", "I will", "it is", "that is", "they are", "you are", "we are"),
    *("do not", "does not", "did not", "is not", "are not", "was not", "could not", "would not", "have not"),
)
TA_CHAR_KINDS = {
    "WordSwapQWERTY",
    "WordSwapNeighboringCharacterSwap",
    "WordSwapRandomCharacterDeletion",
    "WordSwapRandomCharacterInsertion",
    "WordSwapRandomCharacterSubstitution",
    "WordSwapHomoglyphSwap",
}


def _read_sentences() -> list[str]:
    with open(SENTENCES, encoding="utf-8", newline="") as fh:
        texts = [r["sentence_text"].strip() for r in csv.DictReader(fh)]
    return list(dict.fromkeys(t for t in texts if t))  # the file repeats a sentence per symptom


ALL = _read_sentences()
# 20 real sentences long enough for every word-level method to have something to change.
SENTS = [t for t in ALL if 10 <= len(t.split()) <= 40][:20]


def _pairs(text: str) -> int:
    return sum(len(re.findall(rf"(?<!\S){p}(?!\S)", text)) for p in CONTRACTIBLE)


# Sentences with a contractible pair; those with two come first, so the seed has a choice to make.
CONTRACTION_SENTS = sorted((t for t in ALL if _pairs(t) and len(t.split()) <= 40), key=lambda t: -min(_pairs(t), 2))[
    :10
]

_built: dict[str, object] = {}


def method_for(method_id: str) -> Augmenter:
    """Build each method once per module; an unavailable one skips with its reason."""
    if method_id not in _built:
        spec = CATALOGUE[method_id]
        status = check_method(spec)
        _built[method_id] = build_method(spec) if status.ok else f"{method_id} is unavailable here: {status.reason}"
    built = _built[method_id]
    if isinstance(built, str):
        pytest.skip(built)
    return built


def augment(method: Augmenter, texts: list[str], seeds: list[int]) -> list[str]:
    out = method.augment(texts, seeds)
    errors = [(t, o) for t, o in zip(texts, out, strict=True) if isinstance(o, Exception)]
    assert not errors, f"{method.spec.id} raised on real sentences: {errors[:2]}"
    return out


def words(text: str) -> list[str]:
    """Words as nlpaug spaces them: it tokenizes on non-word characters and joins back ('6-8' becomes '6 - 8')."""
    from nlpaug.util.text.tokenizer import Tokenizer

    return Tokenizer.reverse_tokenizer(Tokenizer.tokenizer(text)).split()


def tokens(text: str) -> Counter:
    # nlpaug re-capitalises a sentence whose first word moved ("I have" -> "Have I").
    return Counter(re.findall(r"\w+|[^\w\s]", text.lower()))


def changed_words(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a.split(), b.split(), strict=True))


def _share(pairs: list[tuple[str, str]], ok: Callable[[str, str], bool]) -> float:
    return sum(bool(ok(s, o)) for s, o in pairs) / len(pairs)


def check_kind(spec: MethodSpec, pairs: list[tuple[str, str]]) -> None:
    """The change each kind of method must make; `pairs` are (original, augmented)."""
    args = spec.args
    action = args.get("action")
    # How many words TextAttack swaps: max(int(pct * words), 1), with our whitespace words as an upper bound.
    pct = args.get("pct_words_to_swap", 0.1)

    def few(s: str) -> int:
        return max(int(pct * len(s.split())), 1)

    for s, o in pairs:
        msg = f"{spec.id}: {s!r} -> {o!r}"
        if spec.lib == "nlpaug" and (spec.kind in ("KeyboardAug", "OcrAug") or action in ("substitute", "swap")):
            if spec.kind == "RandomWordAug" and action == "swap":
                assert tokens(o) == tokens(s) and o != s, msg
            elif spec.kind == "RandomWordAug":  # substitute
                assert len(o.split()) == len(words(s)) and o.split() != words(s), msg
            else:
                # KeyboardAug can type a space next to a key (one sentence in 20 here): a word may split in two.
                assert abs(len(o.split()) - len(words(s))) <= 1 and o != s, msg
                if action == "swap":  # neighbouring characters trade places; nlpaug fixes the capital ("Htere")
                    assert sorted(o.lower().replace(" ", "")) == sorted(s.lower().replace(" ", "")), msg
        elif spec.kind == "RandomCharAug" and action == "delete":
            assert len(o) < len(s), msg
        elif spec.kind == "RandomCharAug" and action == "insert":
            assert len(o) > len(s), msg
        elif spec.kind == "RandomWordAug" and action == "delete":
            assert len(o.split()) < len(words(s)), msg
        elif spec.kind in TA_CHAR_KINDS:
            assert len(o.split()) == len(s.split()), msg
            assert 1 <= changed_words(s, o) <= few(s), msg
            if spec.kind == "WordSwapRandomCharacterDeletion":
                assert len(o) < len(s), msg
            if spec.kind == "WordSwapRandomCharacterInsertion":
                assert len(o) > len(s), msg
        elif spec.kind == "WordDeletion":
            assert 1 <= len(s.split()) - len(o.split()) <= few(s), msg
        elif spec.kind == "WordInsertionRandomSynonym":
            assert len(o.split()) >= len(s.split()), msg
        elif spec.kind in ("SynonymAug", "SpellingAug", "WordSwapWordNet", "WordSwapInflections"):
            # A synonym or misspelling may span words ("look at"); the sentence keeps roughly its length.
            assert abs(len(o.split()) - len(s.split())) <= 5, msg
    # Some sentences offer nothing to change (no synonym, no inflection): most must still change.
    if spec.lib == "nlpaug" and (spec.kind in ("KeyboardAug", "OcrAug") or action in ("substitute", "swap")):
        assert _share(pairs, lambda s, o: len(o.split()) == len(words(s))) >= 0.9, pairs
    if spec.kind in ("SynonymAug", "SpellingAug", "WordSwapWordNet", "WordSwapInflections"):
        assert _share(pairs, lambda s, o: words(o) != words(s)) >= 0.75, pairs
    elif spec.kind == "WordInsertionRandomSynonym":
        assert _share(pairs, lambda s, o: len(o.split()) > len(s.split())) >= 0.75, pairs
    else:
        assert _share(pairs, lambda s, o: o != s) >= 0.5, pairs


METHOD_IDS = sorted(CATALOGUE)


@pytest.mark.parametrize("method_id", METHOD_IDS)
def test_method_changes_text_as_its_kind_says(method_id: str) -> None:
    method = method_for(method_id)
    spec = CATALOGUE[method_id]
    if spec.kind == "WordSwapContract":
        assert len(CONTRACTION_SENTS) >= 5
        out = augment(method, CONTRACTION_SENTS, list(range(len(CONTRACTION_SENTS))))
        for s, o in zip(CONTRACTION_SENTS, out, strict=True):
            assert o.count("'") > s.count("'"), f"{method_id}: no contraction in {s!r} -> {o!r}"
        return
    out = augment(method, SENTS, list(range(len(SENTS))))
    check_kind(spec, list(zip(SENTS, out, strict=True)))


@pytest.mark.parametrize("method_id", METHOD_IDS)
def test_same_seed_same_output_and_other_seeds_differ(method_id: str) -> None:
    method = method_for(method_id)
    texts = CONTRACTION_SENTS if CATALOGUE[method_id].kind == "WordSwapContract" else SENTS
    seeds = list(range(len(texts)))
    first = augment(method, texts, seeds)
    assert augment(method, texts, seeds) == first
    other = augment(method, texts, [s + 1000 for s in seeds])
    assert any(a != b for a, b in zip(first, other, strict=True)), f"{method_id}: seeds make no difference"
