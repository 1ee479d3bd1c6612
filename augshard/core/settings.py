"""Settings as data: every setting of a command is one field of its record (`RunConfig`, `ExportOptions`,
`EvaluateOptions`) declared with `setting(...)`: its default, help, constraints, CLI flags and, for a run, how it
enters the fingerprint. `Table` reads the declarations back; the CLI's options, the API's keyword checks, the
validation and `RunConfig.fingerprint` are derived from it, as scikit-learn derives its parameter validation from
declared constraints (tests/test_settings.py holds the CLI and the API's explicit signatures to the tables)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from augshard.core.errors import AugshardError, ConfigError, in_python_words, unknown_name
from augshard.core.json_types import describe, fits

F = TypeVar("F", bound=Callable[..., Any])
_KEY = "augshard.setting"
REQUIRED = dataclasses.MISSING  # the default of a setting every call must give (export's `to`)

# --- how a run setting enters RunConfig.fingerprint(): (setting, config) -> the value hashed, or OMIT -------------
OMIT = object()
Rule = Callable[["Setting", Any], Any]


def always(s: Setting, cfg: Any) -> Any:
    """Hashed as it is (the settings of the first release)."""
    return getattr(cfg, s.name)


def unless_default(s: Setting, cfg: Any) -> Any:
    """Hashed only when not at its default: a setting added later leaves every earlier run's fingerprint as it was."""
    value = getattr(cfg, s.name)
    return OMIT if value == s.default else value


def if_set(s: Setting, cfg: Any) -> Any:
    """Hashed only when set (not None, not empty)."""
    value = getattr(cfg, s.name)
    return value if value else OMIT


def only_with(other: str) -> Rule:
    """Hashed only when the setting `other` is set: a setting that means nothing without it (--augment-split
    without --split-col) leaves every fingerprint as it was."""

    def rule(s: Setting, cfg: Any) -> Any:
        return getattr(cfg, s.name) if getattr(cfg, other) else OMIT

    return rule


# Where a setting's value came from, as a run's run.yaml records it.
DEFAULT, CONFIG_FILE, FLAG, API = "default", "config file", "flag", "API"


@dataclass(frozen=True)
class Origin:
    """Where a record's settings came from: the command line that gave them (empty: the Python API) and, for each
    setting not left to its default, CONFIG_FILE, FLAG or API."""

    command: tuple[str, ...] = ()
    given: tuple[tuple[str, str], ...] = ()

    def source(self, name: str) -> str:
        return dict(self.given).get(name, DEFAULT)

    @classmethod
    def made(cls, command: Iterable[str], values: Mapping[str, Any], overrides: Mapping[str, Any]) -> Origin:
        """The origin of `values`: those in `overrides` came as flags of `command`, or from the API when there is
        none; the others from the config file."""
        command = tuple(command)
        by = FLAG if command else API
        return cls(command, tuple((k, by if k in overrides else CONFIG_FILE) for k in values))

    @classmethod
    def of(cls, value: Any) -> Origin:
        """An Origin, or one as JSON gave it back (a dict of lists)."""
        if isinstance(value, Origin):
            return value
        given = tuple((str(k), str(v)) for k, v in value.get("given", ()))
        return cls(tuple(str(c) for c in value.get("command", ())), given)


@dataclass(frozen=True)
class Check:
    """A constraint bounds and choices cannot say: `test(value)` must hold, else `message` (`{flag}`, `{value}`)."""

    test: Callable[[Any], Any]
    message: str


@dataclass(frozen=True)
class Setting:
    """One declared setting. `flags`: the CLI's spellings, the first the one shown (() for a setting of the config
    file and the API only); `old_flags`: a renamed flag's old spellings, hidden, each taken with a note (and as an
    API keyword, `--shard-size` as `shard_size`, with a FutureWarning). `auto`: the word 'auto' is taken for None.
    `shown`: the default as --help shows it, when the value alone says too little. `parse`: how text or a list
    (a flag, a config file, an API list) becomes the setting's type; `repeatable`: the flag may be given again."""

    name: str
    type: Any  # the field's resolved annotation: int, int | None, tuple[str, ...], Path, ...
    default: Any
    help: str
    flags: tuple[str, ...]
    old_flags: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()  # old value -> value (the original tool's `singletons`)
    checks: tuple[Check, ...] = ()
    auto: bool = False
    shown: str = ""
    repeatable: bool = False  # the flag may be given more than once (the CLI joins the values as a list's commas)
    fingerprint: Rule | None = None
    parse: Callable[[Any], Any] | None = None

    @property
    def flag(self) -> str:
        """How a message names it: its flag, or its name for a setting without one."""
        return self.flags[0] if self.flags else self.name

    @property
    def old_names(self) -> tuple[str, ...]:
        return tuple(f.removeprefix("--").replace("-", "_") for f in self.old_flags)

    @property
    def base(self) -> type:
        """The type of one value as the command line gives it: bool, int, float or str (lists are comma-separated)."""
        kind = self.type
        if isinstance(kind, types.UnionType):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        return kind if kind in (bool, int, float) else str

    @property
    def help_text(self) -> str:
        """The help with the choices and the default the declaration holds (never restated by hand)."""
        text = f"{' | '.join(self.choices)}: {self.help}" if self.choices else self.help
        default = self.shown or _shown(self.default)
        return f"{text} [{default}]" if default and self.base is not bool else text

    def coerce(self, value: Any) -> Any:
        """A value as a flag, a config file or an API call gives it (text, a list), as the setting's type."""
        if self.auto and isinstance(value, str) and value.strip().lower() == "auto":
            return None
        if self.aliases and isinstance(value, str):
            return dict(self.aliases).get(value, value)
        if value is not None and self.parse is None and self.base in (int, float):
            return number(self.flag, value, self.base)
        return self.parsed(value)

    def parsed(self, value: Any) -> Any:
        """A value as an API call gives it: lists and paths as the declaration takes them (`parse`; a str or
        os.PathLike as a Path), anything else as it is, for `check` to judge."""
        if value is None:
            return None
        if self.parse is not None:
            return self.parse(value)
        if Path in (self.type, *typing.get_args(self.type)) and isinstance(value, (str, os.PathLike)):
            return Path(value)
        return value

    def check(self, value: Any, what: str) -> None:
        """The value against the declaration: its type, choices, bounds and checks; one ConfigError naming it."""
        if not fits(value, self.type):
            raise ConfigError(f"{what} '{self.name}' must be {describe(self.type)}, got {value!r}")
        if value is None:
            return
        if self.choices and value not in self.choices:
            aka = "".join(f" (or {old})" for old, _ in self.aliases)
            raise ConfigError(f"{self.flag} must be one of {', '.join(self.choices)}{aka}, got '{value}'")
        if (self.low is not None and not value >= self.low) or (self.high is not None and not value <= self.high):
            raise ConfigError(f"{self.flag} must be {self._bounds()}, got {value}")
        for c in self.checks:
            if not c.test(value):
                raise ConfigError(c.message.format(flag=self.flag, value=_shown(value)))

    def _bounds(self) -> str:
        low, high, auto = self.low, self.high, " (or 'auto')" if self.auto else ""
        if low is not None and high is not None:
            return f"within [{low:g}, {high:g}]" if self.base is float else f"at least {low:,} and at most {high:,}"
        return f"at least {low:,}{auto}" if low is not None else f"at most {high:,}{auto}"


def setting(default: Any, help: str, *, flags: Iterable[str] | None = None, **declared: Any) -> Any:
    """A record's field that is a setting: its default, its help (without the default: that is rendered) and the
    rest of `Setting` by keyword. `flags` None: the field's name as a flag (`--num-shards`)."""
    meta = {_KEY: (help, None if flags is None else tuple(flags), declared)}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Table:
    """The settings of one command, in the order of its record's fields; `what` names one in messages."""

    what: str
    settings: tuple[Setting, ...]

    @classmethod
    def of(cls, record: type, what: str, internal: Iterable[str] = ()) -> Table:
        """The table of a record; every field is declared with `setting(...)` but the `internal` ones."""
        hints, out = typing.get_type_hints(record), []
        for f in dataclasses.fields(record):
            if f.name in internal:
                continue
            if _KEY not in f.metadata:
                raise TypeError(f"{record.__name__}.{f.name} is not declared with setting(...)")
            help, flags, declared = f.metadata[_KEY]
            flags = ("--" + f.name.replace("_", "-"),) if flags is None else flags
            out.append(Setting(f.name, hints[f.name], f.default, help, flags, **declared))
        return cls(what, tuple(out))

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.settings)

    def __getitem__(self, name: str) -> Setting:
        for s in self.settings:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.settings)

    def given(self, values: Mapping[str, Any], parsed: bool = False) -> dict[str, Any]:
        """The settings among `values` (a call's arguments) that were given (not None), `parsed` if asked."""
        chosen = {s.name: values[s.name] for s in self.settings if values.get(s.name) is not None}
        return {k: self[k].parsed(v) for k, v in chosen.items()} if parsed else chosen

    def check(self, record: Any) -> None:
        """Every setting of `record` against its declaration (the rules across settings are the command's own)."""
        for s in self.settings:
            s.check(getattr(record, s.name), self.what)

    def keywords(self, where: str) -> Callable[[F], F]:
        """An API function with this table's settings as explicit keywords: an unknown keyword is a ConfigError
        naming the closest setting (not Python's TypeError), and an old name (a setting's `old_flags`) is taken for
        one release with a FutureWarning."""
        renamed = {old: s.name for s in self.settings for old in s.old_names}

        def decorate(fn: F) -> F:
            params = inspect.signature(fn).parameters

            @functools.wraps(fn)
            def call(*args: Any, **kwargs: Any) -> Any:
                for old in [k for k in kwargs if k in renamed]:
                    if renamed[old] in kwargs:
                        raise ConfigError(f"{where}: give {renamed[old]} only ({old} is its old name)")
                    note = f"{where}({old}=...) is now {renamed[old]}=...; the old name goes in the next release"
                    warnings.warn(note, FutureWarning, 2)
                    kwargs[renamed[old]] = kwargs.pop(old)
                unknown = [k for k in kwargs if k not in params]
                if unknown:
                    raise ConfigError(unknown_name(unknown[0], self.names, self.what))
                try:
                    return fn(*args, **kwargs)
                except AugshardError as exc:  # said to a Python caller: arguments, not flags (the CLI keeps its own)
                    in_python_words(exc, arguments)
                    raise

            arguments = self.arguments(params)
            return typing.cast(F, call)

        return decorate

    def arguments(self, params: Mapping[str, inspect.Parameter]) -> dict[str, tuple[str, bool | None]]:
        """Each flag (old spellings too) as the argument a Python caller gives instead, and the value a switch sets
        (`--force`: True, `--no-steal`: False; None for a flag with a value): the table's settings, and the
        function's other parameters by their names (`--best` is `best`)."""
        out = {"--" + p.replace("_", "-"): (p, None) for p in params}
        for s in self.settings:
            switch = (not s.default) if s.base is bool else None
            out |= {f: (s.name, switch) for f in (*s.flags, *s.old_flags)}
        return out


# --- values as text or lists give them ---------------------------------------------------------------------------


def number(flag: str, value: Any, kind: type) -> Any:
    """`value` as an int or a float; a ConfigError naming the flag otherwise (a bool is not a number)."""
    if isinstance(value, bool):
        raise ConfigError(f"{flag}: expected a number, got {value!r}")
    try:
        result = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag}: expected {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if kind is int and isinstance(value, float) and value != result:
        raise ConfigError(f"{flag}: expected an integer, got {value!r}")
    return result


def items(value: Any) -> tuple[str, ...]:
    """Items as the CLI's comma-separated lists take them: "a,b", ["a", "b"], or one value."""
    if value is None:
        return ()
    listed = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, Iterable) else [value]
    return tuple(str(c).strip() for c in listed if str(c).strip())


def numbers(kind: type, expected: str) -> Callable[[Any], tuple[Any, ...]]:
    """A parser of `items` as numbers; a ConfigError saying what was `expected` (and what was given) otherwise."""

    def parse(value: Any) -> tuple[Any, ...]:
        try:
            return tuple(kind(x) for x in items(value))
        except ValueError:
            shown = value if isinstance(value, str) else ",".join(str(x) for x in value)
            raise ConfigError(f"{expected}, got '{shown}'") from None

    return parse


def _shown(value: Any) -> str:
    """A value as help and messages show it: 500,000; a,b; a path as written."""
    if value is None or value is REQUIRED or isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


class _LabelCounts:
    """`--variants-per-class` as RunConfig holds it: "LABEL=N" items (from "a=3,b=5", a list of them, or the API's
    {label: n}), each N a whole number, each label named once; `read` gives them back as {label: n}."""

    flag = "--variants-per-class"

    def __call__(self, value: Any) -> tuple[str, ...]:
        if isinstance(value, Mapping):
            pairs = [(str(k).strip(), v) for k, v in value.items()]
        else:
            pairs = []
            for item in items(value):
                label, eq, n = item.rpartition("=")
                if not eq or not label.strip():
                    raise ConfigError(f"{self.flag}: expected LABEL=N (variants per row of that class), got {item!r}")
                pairs.append((label.strip(), n.strip()))
        out: dict[str, int] = {}
        for label, n in pairs:
            count = number(f"{self.flag} {label}", n, int)
            if count < 0:
                raise ConfigError(f"{self.flag}: {label}={count}: N must be 0 or more")
            if label in out:
                raise ConfigError(f"{self.flag} names class {label!r} twice")
            out[label] = count
        return tuple(f"{label}={n}" for label, n in out.items())

    @staticmethod
    def read(held: Iterable[str]) -> dict[str, int]:
        return {label: int(n) for label, _, n in (item.rpartition("=") for item in held)}


label_counts = _LabelCounts()
