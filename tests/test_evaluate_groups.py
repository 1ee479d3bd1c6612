"""Which originals share a fold (evaluation/groups.py): one text but for punctuation, apostrophes and white space is
one group, near-duplicates join only when asked, group values and blank cells behave as before, and no group, so
no near-duplicate original, ever straddles training and test."""

from __future__ import annotations

import random

from augshard.evaluation.evaluate import EvaluateOptions, Originals, make_splits
from augshard.evaluation.groups import blank, group_ids

# ~150 characters: one letter changed moves 5 of ~146 five-character shingles, an estimated Jaccard above 0.9.
LONG = ("I have not slept properly for three weeks now and every single night seems to be a little bit worse than "
        "the one that came right before it, honestly")  # fmt: skip
LONG_EDITED = LONG.replace("three weeks", "three weaks")
# Shares a long half with LONG, far below 0.9: never joined.
HALF = LONG[:75] + " and yet the mornings are fine, I go for a run and eat breakfast with my family before work"


def test_apostrophe_punctuation_and_space_variants_are_one_group() -> None:
    texts = ["i cant stop crying.", "I can't stop crying!", "i can’t  stop crying", "i canʼt stop crying…",
             "i can stop crying", "...", "!!", "I'm so sad..", "im so sad"]  # fmt: skip
    ids, counts = group_ids(texts, None)
    assert ids == [0, 0, 0, 0, 1, 2, 3, 4, 4]
    # Exact text joins nothing here: each of the 4 later crying variants and 'im so sad' is a punctuation join;
    # texts of punctuation only ('...', '!!') name no group and stay apart.
    assert counts.punctuation == 4
    assert counts.near == 0
    assert counts.as_dict() == {"punctuation": 4, "near": 0}


def test_exact_text_joins_are_not_counted_as_punctuation_joins() -> None:
    ids, counts = group_ids(["Same text.", "same   TEXT.", "same text"], None)
    assert ids == [0, 0, 0]
    assert counts.punctuation == 1  # the first two were one group by their normalised text already


def test_near_duplicates_join_only_when_asked() -> None:
    texts = [LONG, "something else entirely", LONG_EDITED, HALF]
    assert group_ids(texts, None) == ([0, 1, 2, 3], group_ids(texts, None)[1])
    assert group_ids(texts, None)[1].near == 0
    ids, counts = group_ids(texts, None, near=True)
    assert ids == [0, 1, 0, 2]  # the edited copy joins; the half-shared text does not
    assert counts.near == 1 and counts.punctuation == 0


def test_a_near_duplicate_already_joined_by_punctuation_is_not_counted_twice() -> None:
    texts = [LONG, LONG.replace(",", "")]
    _, counts = group_ids(texts, None, near=True)
    assert counts.punctuation == 1 and counts.near == 0


def test_group_values_join_rows_and_blank_values_join_nothing() -> None:
    texts = [f"text number {n}" for n in range(8)]
    values = ["p1", None, "p1", "", "   ", float("nan"), "p2", "p2"]
    ids, counts = group_ids(texts, values)
    assert ids == [0, 1, 0, 2, 3, 4, 5, 5]
    assert counts.punctuation == 0
    # A blank row still joins its identical text, whatever that text's group value.
    ids, _ = group_ids(["a b", "c", "A  b", "d"], [None, "p", "p", ""])
    assert ids == [0, 0, 0, 1]  # 'A  b' is 'a b' and in p with 'c': all three one group
    assert [blank(v) for v in (None, "", " \t", float("nan"), "0", 0, "x")] == [True] * 4 + [False] * 3


def test_group_numbers_follow_first_appearance_whatever_the_join_order() -> None:
    rng = random.Random(3)
    texts = [rng.choice(["a", "b", "c", "d", "e", "A!", "b.", "f", "g"]) + f" {rng.randrange(12)}" for _ in range(200)]
    values = [rng.choice([None, "", "p1", "p2", "p3", "p4"]) for _ in texts]
    ids, _ = group_ids(texts, values, near=True)
    assert ids[0] == 0
    assert all(ids[i] <= max(ids[:i]) + 1 for i in range(1, len(ids)))  # a new group is the next number
    assert group_ids(texts, values, near=True) == group_ids(texts, values, near=True)


def _word(rng: random.Random) -> str:
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 8)))


def _rows(rng: random.Random) -> tuple[list[str], list[str], list[str | None], list[int]]:
    """ReDSM5-like originals, with the original each row was made from: short sentences repeated with other
    punctuation, apostrophes and case; long ones (40 random words: few shared 5-grams) repeated with one letter
    edited; some rows in posts, most blank."""
    texts, labels, posts, sources = [], [], [], []
    for n in range(60):
        base = f"i can't sleep {n} nights" if n % 2 else " ".join(_word(rng) for _ in range(40)) + f" {n}"
        for copy in range(rng.choice([1, 2, 3])):
            if copy == 0:
                text = base
            elif n % 2:
                text = base.replace("'", "’" if copy == 1 else "").upper() + "!"
            else:
                middle = base.index(" ", len(base) // 2) - copy  # a letter, never a space
                text = base[:middle] + "q" + base[middle + 1 :]
            texts.append(text)
            labels.append(rng.choice("abc"))
            posts.append(f"post{n // 7}" if rng.random() < 0.3 else None)
            sources.append(n)
    return texts, labels, posts, sources


def test_near_duplicate_originals_never_straddle_folds() -> None:
    rng = random.Random(7)
    texts, labels, posts, sources = _rows(rng)
    ids, counts = group_ids(texts, posts, near=True)
    assert counts.punctuation > 0 and counts.near > 0  # both rules had pairs to join
    # Every row made from one original is in that original's group (the rules found every copy).
    assert all(ids[i] == ids[sources.index(sources[i])] for i in range(len(texts)))
    originals = Originals([f"k{i:04d}" for i in range(len(texts))], texts, labels, ids)
    for seed in range(5):
        options = EvaluateOptions(label_col="label", folds=4, repeats=2, seed=seed, train_sizes=(0.5, 1.0))
        splits = make_splits(originals, options)
        assert len(splits) == 4 * 2 * 2
        for split in splits:
            assert split.test and split.train
            assert not {ids[i] for i in split.train} & {ids[i] for i in split.test}
            # Directly: no original in training was made from the same original as a test one.
            assert not {sources[i] for i in split.train} & {sources[i] for i in split.test}
            assert not {posts[i] for i in split.train if posts[i]} & {posts[i] for i in split.test if posts[i]}


def test_without_near_one_letter_copies_are_apart_and_would_straddle() -> None:
    """The control: without `near`, an edited long original is a group of its own, so folds can split it from its
    original, which is what `--group-near` prevents."""
    texts, labels, posts, sources = _rows(random.Random(7))
    ids, counts = group_ids(texts, [None] * len(texts))
    assert counts.near == 0
    long_sources = {s for s in sources if s % 2 == 0 and sources.count(s) > 1}
    assert long_sources
    assert all(len({ids[i] for i in range(len(texts)) if sources[i] == s}) > 1 for s in long_sources)
    short = [s for s in set(sources) if s % 2]
    assert all(len({ids[i] for i in range(len(texts)) if sources[i] == s}) == 1 for s in short)


def test_near_joins_exactly_the_pairs_whose_estimate_reaches_the_threshold() -> None:
    """LSH proposes, the estimate decides, and no pair at the threshold is missed: the groups equal those of a
    comparison of every pair (datasketch's own bands for 0.9 would find a pair at 0.92 about half the time)."""
    from augshard.evaluation.groups import NEAR_THRESHOLD, minhash

    rng = random.Random(11)
    texts = []
    for _ in range(12):
        base = " ".join(_word(rng) for _ in range(30))
        texts.append(base)
        for edits in range(1, 7):  # 1..6 letters changed: estimates from about 0.95 down to about 0.75
            text = list(base)
            for at in rng.sample([i for i, c in enumerate(base) if c != " "], edits):
                text[at] = "Q"
            texts.append("".join(text))
    sketches = [minhash(t.casefold()) for t in texts]
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        return i if parent[i] == i else find(parent[i])

    pairs = 0
    for i in range(len(texts)):
        for j in range(i):
            if sketches[i].jaccard(sketches[j]) >= NEAR_THRESHOLD:
                pairs += 1
                parent[find(i)] = find(j)
    roots: dict[int, int] = {}
    expected = [roots.setdefault(find(i), len(roots)) for i in range(len(texts))]
    assert pairs > 12  # the threshold falls inside the range of edits
    assert len(set(expected)) > 12
    ids, counts = group_ids(texts, None, near=True)
    assert ids == expected
    assert counts.near == len(texts) - len(set(expected))
