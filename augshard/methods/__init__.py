"""The method catalogue and its adapters: build an `Augmenter` from a `MethodSpec`, or say why it can't run."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from augshard.errors import MethodError
from augshard.fingerprint import sha
from augshard.methods.base import Augmenter, library_version, method_version, seed_everything
from augshard.methods.catalogue import (
    Catalogue,
    MethodSpec,
    Selection,
    load_catalogue,
    read_catalogue,
    resolve_selection,
    select,
)
from augshard.methods.compat import unsupported
from augshard.store import write_atomic

__all__ = [
    "Augmenter",
    "Catalogue",
    "MethodSpec",
    "MethodStatus",
    "LazyMethod",
    "build_method",
    "check_method",
    "check_methods",
    "method_check_record",
    "load_catalogue",
    "read_catalogue",
    "resolve_selection",
    "seed_everything",
    "select",
    "Selection",
]

PROBE = "The quick brown fox jumps over the lazy dog while the children watch happily from the porch."


@dataclass(frozen=True)
class MethodStatus:
    """Whether a method can run here; if not, the reason and what to do about it."""

    id: str
    lib: str
    kind: str
    ok: bool
    reason: str = ""
    fix: str = ""
    probe_output: str = ""


def build_method(spec: MethodSpec, device: str = "auto") -> Augmenter:
    """Build the library object for one catalogue entry (heavy imports happen here, inside the worker).

    `device` is the run's (`--device`); a model method whose entry says `device: auto` runs there."""
    from augshard.methods.models import MethodUnavailable
    from augshard.methods.offline import apply_offline_env, forbid_nltk_downloads

    problem = unsupported(spec.lib, spec.kind, spec.args)
    if problem:
        raise MethodUnavailable(*problem)

    apply_offline_env()
    # nlpaug's WordNet methods (and TextAttack's) call nltk.download when data is missing: offline that prints
    # errors or hangs; refused at once here, the missing resource is then reported with its fix.
    forbid_nltk_downloads()
    if spec.lib == "nlpaug":
        from augshard.methods.nlpaug_adapter import make

        return make(spec, device)
    if spec.lib == "textattack":
        from augshard.methods.textattack_adapter import TextAttackAugmenter, TextAttackMaskedLM

        if spec.kind == "WordSwapMaskedLM" and spec.args.get("method", "bae") == "bae":
            return TextAttackMaskedLM(spec, device)
        return TextAttackAugmenter(spec, device)
    raise MethodError(f"method '{spec.id}': unknown library '{spec.lib}'")


# Model methods draw for a whole batch, so their batching must be known before the first call (see pipeline).
_BATCHED = {
    ("nlpaug", "ContextualWordEmbsAug"): ("batch_size", 32),
    ("textattack", "WordSwapMaskedLM"): ("texts_per_batch", 8),
}


class LazyMethod:
    """A method that is built on its first call: a chunk answered wholly from the cache imports no library.

    It carries what the pipeline needs before any call (spec, version, batching), taken from the spec itself.
    """

    def __init__(self, spec: MethodSpec, device: str = "auto") -> None:
        self.spec = spec
        self.device = device
        # A model method on a GPU makes other outputs than on the CPU: its cache entries are its own.
        self.version = method_version(spec) + ("+cuda" if spec.requires_gpu and device.startswith("cuda") else "")
        batched = _BATCHED.get((spec.lib, spec.kind))
        if batched and spec.kind == "WordSwapMaskedLM" and spec.args.get("method", "bae") != "bae":
            batched = None
        self.batch_dependent = batched is not None
        self.batch_size = int(spec.args.get(batched[0], batched[1])) if batched else 0
        self._built: Augmenter | None = None
        self.build_seconds = 0.0  # spent building it (imports, models): a cost every shard using it pays once

    @property
    def built(self) -> bool:
        return self._built is not None

    def build(self) -> Augmenter:
        if self._built is None:
            started = time.perf_counter()
            method = build_method(self.spec, self.device)
            self.build_seconds = time.perf_counter() - started
            if self.batch_dependent and getattr(method, "batch_size", None) != self.batch_size:
                raise MethodError(f"method '{self.spec.id}': built with another batch size than its spec gives")
            self._built = method
        return self._built

    def augment(self, texts: list[str], seeds: list[int]) -> list[str | Exception]:
        return self.build().augment(texts, seeds)


def check_method(spec: MethodSpec, probe: bool = True) -> MethodStatus:
    """Build the method and augment a probe sentence; any failure becomes a reason and a fix."""
    base = {"id": spec.id, "lib": spec.lib, "kind": spec.kind}
    try:
        method = build_method(spec)
        output = ""
        if probe:
            result = method.augment([PROBE], [0])[0]
            if isinstance(result, Exception):
                raise result
            output = result
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none crashes a listing
        reason, fix = diagnose(exc)
        return MethodStatus(**base, ok=False, reason=reason, fix=fix)
    return MethodStatus(**base, ok=True, probe_output=output)


def diagnose(exc: BaseException) -> tuple[str, str]:
    """Turn a build/probe failure into one line of reason and one line of fix."""
    message = " ".join(str(exc).split())
    fix = getattr(exc, "fix", None)
    if fix:
        return message, fix
    if isinstance(exc, MethodError):
        return message, "fix the entry's 'kind' or 'args' in the method catalogue"
    if isinstance(exc, LookupError) and "nltk" in message.lower():
        resource = next((w.strip("'\"") for w in message.split() if "/" in w and "nltk" not in w), "")
        what = f"NLTK resource {resource} not found" if resource else "NLTK data not found"
        return what, "run `augshard prepare` (or `make install`), or set AUGSHARD_NLTK_DATA to a complete NLTK data dir"
    if "upos-english" in message or ".flair/models" in message:
        return (
            "TextAttack tags parts of speech with flair's upos-english-fast model, which is not available offline",
            'on a connected machine run python -c "from flair.models import SequenceTagger; '
            "SequenceTagger.load('flair/upos-english-fast')\" so it lands in ~/.flair/models",
        )
    if isinstance(exc, ModuleNotFoundError):
        return f"Python package '{exc.name}' is not installed", f"pip install {exc.name} (or `make install`)"
    if isinstance(exc, TypeError) and "argument" in message:
        return f"bad arguments: {message}", "fix the entry's 'args' in the method catalogue"
    if isinstance(exc, (OSError, ValueError)) and ("offline" in message.lower() or "hub" in message.lower()):
        return (
            f"model or data not available offline: {message[:200]}",
            "set model_path/embedding_path to a local copy, or populate the Hugging Face cache",
        )
    return f"{type(exc).__name__}: {message[:300]}", "see the shard log for the traceback; check the entry's args"


def _check_context() -> list:
    """What every method's check depends on besides its entry: libraries, interpreter, offline resources."""
    from augshard.methods.offline import offline_env

    env = {k: os.environ.get(k, "") for k in ("AUGSHARD_NLTK_DATA", "NLTK_DATA", "HF_HOME", "TA_CACHE_DIR")}
    libs = {lib: library_version(lib) for lib in ("nlpaug", "textattack", "transformers", "torch", "nltk")}
    return [libs, sys.executable, offline_env(), env]


def _check_key(spec: MethodSpec, context: list) -> str:
    return sha([spec.canonical(), method_version(spec), *context], length=24)


def method_check_record() -> Path:
    """Where `run` remembers the methods that passed their check on this machine."""
    from augshard.methods.offline import augshard_home

    return augshard_home() / "method-checks.json"


def check_methods(
    specs: list[MethodSpec], record: Path | None = None, trust_record: bool = True
) -> dict[str, MethodStatus]:
    """`check_method` for each spec; with a `record` file, a method that passed before under the very same
    libraries, interpreter and resources is not built again (building one imports torch and friends: seconds).

    Only successes are remembered, so a fix is seen at once; a success that went stale (a model deleted since)
    fails its combos in the shard with the same diagnosis, and `augshard methods` (trust_record=False) re-probes
    every method and rewrites the record.
    """
    known: dict[str, dict] = {}
    if record is not None:
        try:
            known = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
    statuses: dict[str, MethodStatus] = {}
    updated = dict(known)
    context = _check_context()
    for spec in specs:
        key = _check_key(spec, context)
        if trust_record and isinstance(known.get(key), dict):
            statuses[spec.id] = MethodStatus(spec.id, spec.lib, spec.kind, ok=True, reason="passed before (recorded)")
            continue
        statuses[spec.id] = status = check_method(spec)
        if status.ok:
            updated[key] = {"id": spec.id, "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        else:
            updated.pop(key, None)
    if record is not None and updated != known:
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(record, json.dumps(updated, indent=1, sort_keys=True))
        except OSError:
            pass  # a record that cannot be written only costs the next run its checks
    return statuses
