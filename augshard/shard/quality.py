"""Similarity scorers for the quality filter: sentence-embedding cosine, character ratio, or none."""

from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from augshard.core.errors import ConfigError
from augshard.shard.cache import Cache
from augshard.shard.encoders import DECIMALS, Encoder, ensure_onnx_export, resolve_embedding_model
from augshard.storage.data import SequenceMatcher

__all__ = ["DECIMALS", "Encoder", "ensure_onnx_export", "resolve_embedding_model"]


class Scorer(Protocol):
    name: str
    identity: str  # everything that decides a score; keys the score cache ("" = never cached)

    def prime(self, originals: list[str]) -> None:
        """Name the originals of the next chunk (the embedding scorer encodes them together, when first needed)."""

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        """Similarity of each candidate to its original, in [0, 1], or None when not measured."""

    def score_pairs(self, sources: list[str], outputs: list[str]) -> list[float | None]:
        """The same similarity between any two texts (a step's input and output, `--quality-scope each-step`)."""


class NoScorer:
    name = "none"
    identity = ""

    def prime(self, originals: list[str]) -> None:
        pass

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        return [None] * len(candidates)

    score_pairs = score


# difflib's ratio costs up to the product of the two lengths (minutes for a 1 MB text, and cydifflib holds the GIL,
# so the shard's heartbeat stops): it is exact while the longer text has at most this many characters (a few
# hundredths of a second), and `bounded_char_ratio` above (docs/cli.md, "Long texts").
CHAR_RATIO_EXACT_MAX = 10_000


def char_ratio(a: str, b: str) -> float:
    """difflib's ratio of two texts, exact up to CHAR_RATIO_EXACT_MAX characters, else `bounded_char_ratio`."""
    if max(len(a), len(b)) <= CHAR_RATIO_EXACT_MAX:
        return SequenceMatcher(None, a, b).ratio()
    return bounded_char_ratio(a, b)


def bounded_char_ratio(a: str, b: str) -> float:
    """The ratio of long texts in time linear in their length: their common prefix and suffix count as matched
    (what an edit in the middle leaves alone); the rest is matched by difflib when neither side is over
    CHAR_RATIO_EXACT_MAX characters, else by character counts (difflib's quick_ratio: an upper bound, blind to
    characters that only moved). 2 * matched / (len(a) + len(b)), as difflib's ratio."""
    head = _common_prefix(a, b)
    tail = _common_prefix(a[head:][::-1], b[head:][::-1])
    rest_a, rest_b = a[head : len(a) - tail], b[head : len(b) - tail]
    if max(len(rest_a), len(rest_b)) <= CHAR_RATIO_EXACT_MAX:
        matched = sum(block.size for block in SequenceMatcher(None, rest_a, rest_b).get_matching_blocks())
    else:
        matched = sum((Counter(rest_a) & Counter(rest_b)).values())
    return 2.0 * (head + tail + matched) / (len(a) + len(b))


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by bisection over slice comparisons (C speed on megabytes)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


class CharRatioScorer:
    """The original tool's metric: difflib's ratio on lowercased text (computed by cydifflib where it is installed:
    the same algorithm compiled, the same ratio to the last bit, ~7x faster; `tests/test_quality.py` holds it to
    difflib's). A pair of which a text is over CHAR_RATIO_EXACT_MAX characters is scored by `bounded_char_ratio`,
    and counted in `bounded` (the shard log names each combo that had one)."""

    name = "char_ratio"
    # The bound is part of the identity: a score cached by a version that computed long texts otherwise is not used.
    identity = f"char_ratio|difflib|py{sys.version_info[0]}.{sys.version_info[1]}|{DECIMALS}|{CHAR_RATIO_EXACT_MAX}"

    def __init__(self) -> None:
        self.bounded = 0

    def prime(self, originals: list[str]) -> None:
        pass

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        out: list[float | None] = []
        for o, c in zip(originals, candidates, strict=True):
            o, c = o.lower(), c.lower()
            self.bounded += max(len(o), len(c)) > CHAR_RATIO_EXACT_MAX
            out.append(round(char_ratio(o, c), DECIMALS))
        return out

    score_pairs = score


class EmbeddingScorer:
    """Cosine similarity of sentence-transformers embeddings.

    Nothing is loaded until a score is actually needed, so a shard answered from its score cache loads no model.
    An original is encoded once per shard: its vector goes to the scorer's cache (exact float32), and only the
    current chunk's vectors stay in memory, so memory does not grow with the input. Scorers of one shard share
    its `Encoder` (one model in memory), each with its own cache.
    """

    name = "embedding"
    MEMORY = 4096  # original vectors kept in memory (a few chunks' worth); the rest are read back from the cache

    def __init__(
        self,
        model_path: str | None = None,
        batch_size: int = 64,
        cache: Cache | None = None,
        backend: str = "torch",
        encoder: Encoder | None = None,
        device: str = "cpu",
    ) -> None:
        self.encoder = encoder or Encoder(model_path, batch_size, backend, device)
        self.identity = self.encoder.identity
        self.cache = cache
        self._originals: dict[str, object] = {}
        self._group: list[str] = []
        self.originals_encoded = 0
        self.originals_encode_s = 0.0  # the share of the encoder's seconds spent on originals
        self.originals_from_cache = 0
        self.candidates_encoded = 0
        self.candidates_reencoded = 0
        self.last: dict[str, Any] = {}  # the vectors of the last call's candidates (the label check reuses them)
        self._watcher: Callable[[float], None] | None = None
        self._work = (0, 0)  # texts encoded so far in this score() call, and the most it may encode

    @property
    def watchable(self) -> bool:
        """Whether `watch` hears anything: the ONNX encoder tells its batches; the torch path encodes unheard."""
        return bool(self.encoder.direct)

    def watch(self, watcher: Callable[[float], None] | None) -> None:
        """`watcher(share)` hears, batch by batch, the share of a score() call's encoding done (None: stop)."""
        self._watcher = watcher

    @property
    def encode_calls(self) -> int:
        return self.encoder.calls

    @property
    def encode_seconds(self) -> float:
        return self.encoder.seconds

    def _encode(self, texts: list[str]) -> Any:
        watcher, (base, total) = self._watcher, self._work
        if watcher is None or not total:
            return self.encoder.encode(texts)
        vectors = self.encoder.encode(texts, lambda done: watcher(min(1.0, (base + done) / total)))
        self._work = (base + len(texts), total)
        return vectors

    def prime(self, originals: list[str]) -> None:
        """Name the next chunk's originals; they are encoded together, once, when a score first needs one of them.

        The pipeline primes every chunk with all its rows, so an original's vector always comes from the same
        encode batch, whichever combo (or shard layout) needs it first.
        """
        self._group = list(originals)

    def _load_originals(self, originals: list[str]) -> None:
        import numpy as np

        if all(t in self._originals for t in originals):
            return
        wanted = list(dict.fromkeys(self._group + list(originals)))
        if len(self._originals) + len(wanted) > self.MEMORY:
            self._originals.clear()  # then everything this call needs is loaded again below
        todo = [t for t in wanted if t not in self._originals]
        keys = {t: "original|" + score_key(self.identity, t, "") for t in todo}
        stored = self.cache.get_vectors(list(keys.values())) if self.cache is not None else {}
        missing = []
        for t in todo:
            blob = stored.get(keys[t])
            if blob is None:
                missing.append(t)
            else:
                self._originals[t] = np.frombuffer(blob, dtype=np.float32)
        self.originals_from_cache += len(todo) - len(missing)
        if not missing:
            return
        t0 = time.perf_counter()
        vectors = self._encode(missing).astype(np.float32, copy=False)
        self.originals_encode_s += time.perf_counter() - t0
        self.originals_encoded += len(missing)
        for t, vec in zip(missing, vectors, strict=True):
            self._originals[t] = vec
        if self.cache is not None:
            self.cache.put_vectors((keys[t], vec.tobytes()) for t, vec in zip(missing, vectors, strict=True))

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        if not candidates:
            return []
        unique = list(dict.fromkeys(candidates))
        if self._watcher is not None:  # at most: the originals not in memory (some may come from the cache)
            loaded = self._originals
            self._work = (0, sum(1 for t in dict.fromkeys(self._group + originals) if t not in loaded) + len(unique))
        try:
            self._load_originals(originals)
            vectors = dict(zip(unique, self._encode(unique), strict=True))
        finally:
            self._work = (0, 0)
        self.candidates_encoded += len(unique)
        self.last = vectors
        return [_cosine(self._originals[o], vectors[c]) for o, c in zip(originals, candidates, strict=True)]

    def candidate_vectors(self, candidates: list[str]) -> Any:
        """The vectors `score` makes of these candidates, encoded now (for variants whose score came from the cache;
        --keep-vectors). Counted apart from `candidates_encoded`, which measures the filter itself."""
        self.candidates_reencoded += len(candidates)
        return self._encode(candidates)

    def score_pairs(self, sources: list[str], outputs: list[str]) -> list[float | None]:
        """Any two texts, both encoded as candidates are (neither is kept as an original)."""
        if not outputs:
            return []
        unique = list(dict.fromkeys(sources + outputs))
        vectors = dict(zip(unique, self._encode(unique), strict=True))
        self.candidates_encoded += len(unique)
        return [_cosine(vectors[a], vectors[b]) for a, b in zip(sources, outputs, strict=True)]

    def original_vectors(self, originals: list[str]) -> Any:
        """The originals' vectors (from the cache, or encoded and cached), a window at a time."""
        import numpy as np

        out = []
        for start in range(0, len(originals), self.MEMORY // 2):
            part = originals[start : start + self.MEMORY // 2]
            self._group = []
            self._load_originals(part)
            out += [self._originals[t] for t in part]
        return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)


def _cosine(a: Any, b: Any) -> float:
    """Of two normalised vectors, clipped to [0, 1] and rounded: float noise in the last bits flips no decision."""
    return round(min(1.0, max(0.0, float(a @ b))), DECIMALS)


def score_key(identity: str, original: str, candidate: str) -> str:
    blob = "\x1f".join((identity, original, candidate))
    return hashlib.sha1(blob.encode("utf-8", "surrogatepass")).hexdigest()


class CachedScorer:
    """A scorer behind the shard's SQLite cache: a pair (original, candidate) is scored once per shard, across
    combos and across reruns; the stored score is the one first computed, so a rerun reproduces it exactly."""

    def __init__(self, inner: Scorer, cache: Cache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.identity = inner.identity
        self.hits = 0
        self.misses = 0
        self.seconds = 0.0  # wall time inside score(), cache included: the filter's whole cost

    def prime(self, originals: list[str]) -> None:
        self.inner.prime(originals)

    def watch(self, watcher: Callable[[float], None] | None) -> None:
        """The inner scorer's progress (an embedding scorer's encoding; other scorers have none to tell)."""
        inner_watch = getattr(self.inner, "watch", None)
        if inner_watch is not None:
            inner_watch(watcher)

    @property
    def watchable(self) -> bool:
        return bool(getattr(self.inner, "watchable", False))

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        return self._cached(originals, candidates, self.inner.score)

    def score_pairs(self, sources: list[str], outputs: list[str]) -> list[float | None]:
        return self._cached(sources, outputs, self.inner.score_pairs)

    @property
    def last(self) -> dict[str, Any]:
        """Vectors of the candidates the last call had to score (an embedding scorer's; empty otherwise)."""
        return getattr(self.inner, "last", {})

    def candidate_vectors(self, candidates: list[str]) -> Any:
        """Vectors of candidates as the filter encodes them (the embedding scorer's; --keep-vectors)."""
        encode = getattr(self.inner, "candidate_vectors", None)
        if encode is None:
            raise TypeError(f"the {self.name} filter makes no vectors; --keep-vectors needs the embedding filter")
        return encode(candidates)

    def _cached(self, originals: list[str], candidates: list[str], compute: Any) -> list[float | None]:
        if hasattr(self.inner, "last"):
            self.inner.last = {}
        if not self.identity or not candidates:
            return compute(originals, candidates)
        t0 = time.perf_counter()
        keys = [score_key(self.identity, o, c) for o, c in zip(originals, candidates, strict=True)]
        found = self.cache.get_scores(list(dict.fromkeys(keys)))
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            fresh = compute([originals[i] for i in todo], [candidates[i] for i in todo])
            computed = {keys[i]: s for i, s in zip(todo, fresh, strict=True) if s is not None}
            self.cache.put_scores(computed.items())
            found.update(computed)
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        self.seconds += time.perf_counter() - t0
        return [found.get(k) for k in keys]

    def counters(self) -> dict[str, float]:
        """What the filter did in this shard (logged, and reported by `bench/run.py` B2)."""
        out: dict[str, float] = {
            "score_hits": self.hits,
            "score_misses": self.misses,
            "filter_s": round(self.seconds, 3),
        }
        for name in (
            "originals_encoded",
            "originals_from_cache",
            "candidates_encoded",
            "candidates_reencoded",
            "encode_calls",
        ):
            if hasattr(self.inner, name):
                out[name] = getattr(self.inner, name)
        if hasattr(self.inner, "encode_seconds"):
            out["encode_s"] = round(self.inner.encode_seconds, 3)
            out["originals_encode_s"] = round(self.inner.originals_encode_s, 3)
        return out


def make_scorer(
    metric: str,
    model_path: str | None = None,
    batch_size: int = 64,
    cache: Cache | None = None,
    backend: str = "torch",
    encoder: Encoder | None = None,
    device: str = "cpu",
) -> Scorer:
    if metric == "embedding":
        return EmbeddingScorer(model_path, batch_size, cache, backend, encoder, device)
    if metric == "char_ratio":
        return CharRatioScorer()
    if metric == "none":
        return NoScorer()
    raise ConfigError(f"unknown quality metric '{metric}'")
