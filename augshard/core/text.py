"""How augshard compares texts: what two texts must share to be one (`normalise`), and the MinHash sketch of a
text's character 5-grams that finds near-duplicates (export's `--dedupe near`, evaluate's `--group-near`)."""

from __future__ import annotations

import unicodedata
from typing import Any

NEAR_PERMUTATIONS = 128
SHINGLE = 5  # characters per shingle of the near-duplicate check


def normalise(text: str) -> str:
    """What two texts must share to be exact duplicates: Unicode NFKC, case folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def minhash(text: str) -> Any:
    """The MinHash sketch of a text's character 5-grams (the caller normalises): near-duplicates share most.
    datasketch is imported here, when a near-duplicate check runs, not with augshard."""
    from datasketch import LeanMinHash, MinHash

    shingles = {text[i : i + SHINGLE] for i in range(max(1, len(text) - SHINGLE + 1))}
    sketch = MinHash(num_perm=NEAR_PERMUTATIONS, seed=1)
    sketch.update_batch(s.encode("utf-8", "surrogatepass") for s in sorted(shingles))
    return LeanMinHash(sketch)
