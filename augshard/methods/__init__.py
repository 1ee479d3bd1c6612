"""The method catalogue and its adapters: build an `Augmenter` from a `MethodSpec`, or say why it can't run."""

from __future__ import annotations

from dataclasses import dataclass

from augshard.errors import MethodError
from augshard.methods.base import Augmenter, seed_everything
from augshard.methods.catalogue import MethodSpec, load_catalogue, select

__all__ = [
    "Augmenter",
    "MethodSpec",
    "MethodStatus",
    "build_method",
    "check_method",
    "load_catalogue",
    "seed_everything",
    "select",
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


def build_method(spec: MethodSpec) -> Augmenter:
    """Build the library object for one catalogue entry (heavy imports happen here, inside the worker)."""
    from augshard.methods.resources import apply_offline_env

    apply_offline_env()
    if spec.lib == "nlpaug":
        from augshard.methods.nlpaug_adapter import make

        return make(spec)
    if spec.lib == "textattack":
        from augshard.methods.textattack_adapter import TextAttackAugmenter, TextAttackMaskedLM

        if spec.kind == "WordSwapMaskedLM" and spec.args.get("method", "bae") == "bae":
            return TextAttackMaskedLM(spec)
        return TextAttackAugmenter(spec)
    raise MethodError(f"method '{spec.id}': unknown library '{spec.lib}'")


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
