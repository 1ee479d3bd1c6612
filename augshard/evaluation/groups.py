"""Which originals must share a fold: rows that are one text (exactly, or but for punctuation, apostrophes and white
space, or with `near`, MinHash-similar), or that name one `--group-col` value, are one group (union-find).

Why more than exact text: a character edit of a training original ('i cant stop crying.') can reproduce a test
original ('i can't stop crying.') word for word, so the two must never sit on both sides of a split."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from augshard.core.text import NEAR_PERMUTATIONS, minhash, normalise

# The sketch of the near-duplicate check, as export's near-dedupe builds it (export's constants are to move here).
NEAR_THRESHOLD = 0.9  # estimated Jaccard similarity of two originals' 5-gram sets at or above which they are one
# LSH bands x rows per band. Sketches agreeing on >= 90 % of 128 values differ in <= 12, so >= 4 of 16 bands agree
# whole: LSH proposes every pair at the threshold (the bands datasketch tunes for 0.9, 5 x 25, propose a pair at 0.9
# a third of the time). A proposal below the threshold costs one comparison.
BANDS = (16, 8)
# Apostrophes that are not Unicode punctuation (P*): modifier letters and symbols people type for one.
APOSTROPHES = frozenset("'`´ʹʼʻʽʾʿˈ′‵＇‘’‛")


@dataclass(frozen=True)
class GroupCounts:
    """How many rows each rule beyond exact text and group value joined to a group they were not in already
    (each such join is one group fewer): for evaluation.json's protocol.joined."""

    punctuation: int = 0
    near: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"punctuation": self.punctuation, "near": self.near}


# evaluate.py's `blank` and `_groups` are to be deleted for these (evaluate imports this module, never the reverse).
def blank(value: Any) -> bool:
    """A `--group-col` cell that names no group (missing, empty, white space, NaN): its row is a group of its own
    (or of its text's), never one group with every other blank row."""
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
    )


def bare(text: str) -> str:
    """The text with nothing a character edit changes cheaply: normalised, without punctuation, apostrophes of any
    kind and white space. '' for a text made of those only (it names no group, as a blank cell does)."""
    return "".join(
        c
        for c in normalise(text)
        if not unicodedata.category(c).startswith("P") and c not in APOSTROPHES and not c.isspace()
    )


class _Union:
    """Union-find over row numbers; `join` says whether two rows were in different groups until then."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, i: int, j: int) -> bool:
        a, b = self.find(i), self.find(j)
        if a == b:
            return False
        self.parent[max(a, b)] = min(a, b)
        return True

    def join_equal(self, keys: Sequence[str | None]) -> int:
        """Join the rows of one non-empty key; how many joins merged two groups."""
        first: dict[str, int] = {}
        return sum(self.join(i, first.setdefault(key, i)) for i, key in enumerate(keys) if key)

    def numbers(self) -> list[int]:
        """Group numbers in order of each group's first row (0, 1, ...), whatever the order of the joins."""
        roots: dict[int, int] = {}
        return [roots.setdefault(self.find(i), len(roots)) for i in range(len(self.parent))]


def group_ids(texts: list[str], group_values: list[Any] | None, near: bool = False) -> tuple[list[int], GroupCounts]:
    """Each row's group number and how many rows the punctuation and near rules joined. The rules run in a fixed
    order (exact text and group value, then punctuation, then near), so each count is the groups it removed."""
    union = _Union(len(texts))
    normal = [normalise(t) for t in texts]
    union.join_equal(normal)
    if group_values is not None:
        union.join_equal([None if blank(g) else str(g) for g in group_values])
    punctuation = union.join_equal([bare(t) for t in texts])
    joined_near = _join_near(union, normal) if near else 0
    return union.numbers(), GroupCounts(punctuation, joined_near)


def _join_near(union: _Union, normal: list[str]) -> int:
    """Join rows whose sketches estimate a Jaccard similarity >= NEAR_THRESHOLD: LSH proposes the candidates, the
    sketches' own estimate decides. One sketch per distinct text: the rows of one text are one group already."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(num_perm=NEAR_PERMUTATIONS, params=BANDS)
    sketches: dict[str, Any] = {}
    first: dict[str, int] = {}
    joins = 0
    for i, text in enumerate(normal):
        if text in first:
            continue
        first[text] = i
        sketch = sketches[text] = minhash(text)
        for other in sorted(lsh.query(sketch)):
            if sketch.jaccard(sketches[other]) >= NEAR_THRESHOLD:
                joins += union.join(i, first[other])
        lsh.insert(text, sketch)
    return joins
