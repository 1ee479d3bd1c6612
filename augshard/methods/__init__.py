"""The method catalogue and its adapters: build an `Augmenter` from a `MethodSpec`, or say why it can't run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from augshard.core.errors import MethodError
from augshard.events.output import in_notebook, stderr_console
from augshard.methods import registry
from augshard.methods.base import Augmenter, seed_everything
from augshard.methods.catalogue import (
    Catalogue,
    MethodSpec,
    Selection,
    load_catalogue,
    read_catalogue,
    resolve_selection,
    select,
)
from augshard.methods.models import MethodUnavailable
from augshard.methods.offline import apply_offline_env, forbid_nltk_downloads
from augshard.methods.probes import machine_context, now, probe_cache_path, probe_key, read_cache, write_cache
from augshard.methods.registry import family, method_version, unsupported
from augshard.methods.resources import named_by

__all__ = [
    "Augmenter",
    "Catalogue",
    "MethodSpec",
    "MethodStatus",
    "LazyMethod",
    "MethodProgress",
    "StepsShown",
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

    _rule_out(spec)
    apply_offline_env()
    # nlpaug's WordNet methods (and TextAttack's) call nltk.download when data is missing: offline that prints
    # errors or hangs; refused at once here, the missing resource is then reported with its fix.
    forbid_nltk_downloads()
    return registry.build(spec, device)


class LazyMethod:
    """A method that is built on its first call: a chunk answered wholly from the cache imports no library.

    It carries what the pipeline needs before any call (spec, version, batching), taken from the spec and its
    registry entry: model methods draw for a whole batch, so their batching must be known before the first call.
    """

    def __init__(self, spec: MethodSpec, device: str = "auto") -> None:
        self.spec = spec
        self.device = device
        # A model method on a GPU makes other outputs than on the CPU: its cache entries are its own.
        self.version = method_version(spec) + ("+cuda" if spec.requires_gpu and device.startswith("cuda") else "")
        fam = family(spec.lib, spec.kind)
        batch_size = fam.batching.size(spec.args) if fam is not None and fam.batching is not None else None
        self.batch_dependent = batch_size is not None
        self.batch_size = batch_size or 0
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


def _rule_out(spec: MethodSpec) -> None:
    """Raise what the registry alone decides: a class it does not know, a family it never runs, an action the class
    lacks (nothing is imported)."""
    registry.require_family(spec)
    problem = unsupported(spec.lib, spec.kind, spec.args)
    if problem:
        raise MethodUnavailable(*problem)


def _known_unavailable(spec: MethodSpec) -> MethodStatus | None:
    """The status of a method the registry already rules out, without building it (nothing to probe or cache)."""
    try:
        _rule_out(spec)
    except MethodError as exc:
        reason, fix = diagnose(exc)
        return MethodStatus(spec.id, spec.lib, spec.kind, ok=False, reason=reason, fix=fix)
    return None


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
    named = named_by(message)
    if named is not None:
        return named.missing.format(path=""), named.fix
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


# Told of each method a command works through: (method id, how many are done, how many in all, its line when done,
# or None as it begins). `check_methods` tells of each probe; `methods --bench` of each timing.
MethodProgress = Callable[[str, int, int, str | None], None]


class StepsShown:
    """The default `MethodProgress`: a Rich progress bar on stderr when it is a terminal, one line per method on
    stderr otherwise (stdout, which scripts parse, is never touched). `verb` says what is done to each method on the
    bar ("probing"), `done` on its line ("probed")."""

    def __init__(self, verb: str = "probing", done: str = "probed", stream: Any = None) -> None:
        self.verb, self.done, self.stream = verb, done, stream
        self._bar: Any = None
        self._task: Any = None
        self._started = 0.0

    def __call__(self, method_id: str, done: int, total: int, line: str | None) -> None:
        from rich.console import Console  # rich only once there is something to show

        # stderr's one console unless told otherwise: the API captures what it prints, like every note.
        console = stderr_console()
        if self.stream is not None:
            console = Console(file=self.stream, highlight=False, soft_wrap=True)
        # A notebook's stderr may pass for a terminal, but a redrawn bar there is a pile of escape codes: lines.
        terminal = console.is_terminal and not console.is_dumb_terminal and not in_notebook()
        if line is None:  # a method begins
            self._started = time.perf_counter()
            if terminal and self._bar is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
                self._bar = Progress(*columns, console=console, transient=True)
                self._bar.start()
                self._task = self._bar.add_task(self.verb, total=total)
            if self._bar is not None:
                self._bar.update(self._task, description=f"{self.verb} {method_id}", completed=done)
            return
        took = time.perf_counter() - self._started
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
            if done >= total:
                self._bar.stop()
                self._bar = None
        else:
            console.print(f"{self.done} {done}/{total} {method_id}: {line} ({took:.1f}s)", markup=False)


def method_check_record() -> Path:
    """Where augshard remembers, per machine, what probing each method found (see `probes.probe_cache_path`)."""
    return probe_cache_path()


def check_methods(
    specs: list[MethodSpec],
    record: Path | None = None,
    trust_record: bool = True,
    on_probe: Callable[[list[str]], None] | None = None,
    progress: MethodProgress | None = None,
) -> dict[str, MethodStatus]:
    """`check_method` for each spec; with a `record` (the probe cache), a method probed before under the very same
    entry, libraries, interpreter and local resources is not built again (building one imports torch and friends:
    seconds), whether it was found available or not: its status, reason and fix come from the cache.

    `on_probe` hears the ids about to be probed, once, before any is (none: nothing is probed). With
    trust_record=False every method is probed and the cache rewritten from what was found.

    `progress` hears of each probe as it begins and ends (building a method takes seconds); without one, each is
    shown on stderr (`StepsShown`: a bar on a terminal, a line per method off one)."""
    known = read_cache(record) if record is not None else {}
    context = machine_context() if record is not None else {}
    keys = {spec.id: probe_key(spec, context) for spec in specs} if record is not None else {}
    statuses: dict[str, MethodStatus] = {}
    for spec in specs:
        cached = known.get(keys.get(spec.id, ""))
        if trust_record and cached is not None:
            fields = {k: str(cached.get(k, "")) for k in ("reason", "fix", "probe_output")}
            statuses[spec.id] = MethodStatus(spec.id, spec.lib, spec.kind, ok=cached["ok"], **fields)
    for spec in specs:  # what the registry alone decides (an unknown class, an action it lacks) needs no probe
        if spec.id not in statuses and (static := _known_unavailable(spec)) is not None:
            statuses[spec.id] = static
    todo = [spec for spec in specs if spec.id not in statuses]
    if todo and on_probe is not None:
        on_probe([spec.id for spec in todo])
    found: dict[str, dict] = {}
    tell = progress if progress is not None else StepsShown("probing", "probed")
    for n, spec in enumerate(todo):
        tell(spec.id, n, len(todo), None)
        statuses[spec.id] = status = check_method(spec)
        found[keys.get(spec.id, spec.id)] = {**asdict(status), "probed_at": now()}
        tell(spec.id, n + 1, len(todo), "ok" if status.ok else f"unavailable: {status.reason}")
    if record is not None and found:
        write_cache(record, {**read_cache(record), **found})  # read again: another process may have added some
    return {spec.id: statuses[spec.id] for spec in specs}
