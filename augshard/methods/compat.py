"""The original tool's catalogue format: fully qualified `kind`s read as augshard's kinds, with a note per change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from augshard.core.errors import ConfigError
from augshard.methods.registry import unsupported

# Fully qualified names whose class is not the one augshard builds: the original tool mapped them in its own
# registry (TextAttack 0.3.11 has no such classes, or only an abstract one). Keyed by (lib, class name).
RENAMED = {
    ("textattack", "WordSwapHomoglyph"): "WordSwapHomoglyphSwap",
    ("textattack", "WordSwapMorph"): "WordSwapInflections",
    ("textattack", "WordSwapContraction"): "WordSwapContract",
    ("textattack", "WordInsertion"): "WordInsertionRandomSynonym",
}
# Classes chosen by flags in args; the flags are consumed. Absent flags read as false, except the first (required).
BY_FLAGS = {
    ("textattack", "CharacterSwap"): (
        ("random", "delete", "insert"),
        {
            (False, False, False): "WordSwapNeighboringCharacterSwap",
            (True, True, False): "WordSwapRandomCharacterDeletion",
            (True, False, True): "WordSwapRandomCharacterInsertion",
            (True, False, False): "WordSwapRandomCharacterSubstitution",
        },
    ),
}
# The original passed these to TextAttack's Augmenter; augshard takes the ones that still mean something as args.
AUGMENTER_KWARGS = "augmenter_kwargs"
AUGMENTER_ARGS = ("pct_words_to_swap", "high_yield", "fast_augment")
IGNORED_AUGMENTER_ARGS = {"transformations_per_example": "augshard draws one candidate per seeded call"}
# Where an entry kept as written behaves unlike augshard's own entry: (lib, kind) -> (arg whose absence, why).
CAVEATS = {
    ("textattack", "WordSwapContract"): (
        "constraints",
        "augshard's own catalogue entry uses constraints: [RepeatModification] because with TextAttack's default "
        "constraints (RepeatModification, StopwordModification) nothing is contracted",
    ),
}


@dataclass(frozen=True)
class Translation:
    """An entry of the original format read as augshard's: its kind, its args, and what changed (for a note)."""

    kind: str
    args: dict[str, Any]
    changes: tuple[str, ...] = ()


def is_qualified(kind: str) -> bool:
    """Whether a catalogue `kind` is a fully qualified class name, as the original tool wrote them."""
    return "." in kind


def translate(lib: str, qualified: str, args: dict[str, Any], where: str) -> Translation:
    """Read one fully qualified `kind` and its args as augshard's; a malformed entry is a ConfigError at `where`."""
    parts = qualified.split(".")
    if parts[0] != lib or not all(p.isidentifier() for p in parts):
        raise ConfigError(f"{where}: kind '{qualified}' is not a {lib} class name (expected {lib}.<module>.<Class>)")
    name, args = parts[-1], dict(args)
    changes: list[str] = []
    if (lib, name) in BY_FLAGS:
        kind, flags = _by_flags(lib, name, args, where)
        changes.append(f"kind {qualified} ({flags}) read as {kind}")
    elif (lib, name) in RENAMED:
        kind = RENAMED[(lib, name)]
        changes.append(f"kind {qualified} read as {kind}")
    else:
        kind = name
    if lib == "textattack" and AUGMENTER_KWARGS in args:
        changes += _lift_augmenter_kwargs(args, where)
    if (lib, kind) in CAVEATS and CAVEATS[(lib, kind)][0] not in args:
        changes.append(f"kept as written, but {CAVEATS[(lib, kind)][1]}")
    problem = unsupported(lib, kind, args)
    if problem:
        changes.append(f"will be unavailable: {problem[0]}")
    # Only what is changed or ignored is said: a class read under its own name (the module path dropped) is not.
    return Translation(kind, args, tuple(changes))


def _by_flags(lib: str, name: str, args: dict[str, Any], where: str) -> tuple[str, str]:
    """The class a flag-chosen kind stands for, and the flags as the note shows them; the flags leave `args`."""
    keys, table = BY_FLAGS[(lib, name)]
    if keys[0] not in args:
        raise ConfigError(f"{where}: {name} needs '{keys[0]}: true' or '{keys[0]}: false' in args")
    values = []
    for key in keys:
        value = args.pop(key, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {name} arg '{key}' must be true or false, got {value!r}")
        values.append(value)
    kind = table.get(tuple(values))
    if kind is None:
        known = "; ".join(", ".join(k for k, v in zip(keys, combo, strict=True) if v) or "none" for combo in table)
        raise ConfigError(f"{where}: no TextAttack class for {name} with these flags (true flags may be: {known})")
    shown = [k for k, v in zip(keys, values, strict=True) if v] or [f"{keys[0]}: false"]
    return kind, ", ".join(shown)


def _lift_augmenter_kwargs(args: dict[str, Any], where: str) -> list[str]:
    """Move the Augmenter arguments augshard takes into args; say which ones are dropped and why."""
    kwargs = args.pop(AUGMENTER_KWARGS)
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}: '{AUGMENTER_KWARGS}' must be a mapping")
    for key in AUGMENTER_ARGS:
        if key in kwargs:
            if key in args and args[key] != kwargs[key]:
                raise ConfigError(f"{where}: '{key}' is given twice, in args and in {AUGMENTER_KWARGS}")
            args[key] = kwargs[key]
    dropped = sorted(set(kwargs) - set(AUGMENTER_ARGS))
    if len(kwargs) == len(dropped) == 1 and dropped[0] in IGNORED_AUGMENTER_ARGS:
        return [f"ignored arg {AUGMENTER_KWARGS} ({IGNORED_AUGMENTER_ARGS[dropped[0]]})"]
    why = "augshard does not pass it to TextAttack's Augmenter"
    return [f"ignored {AUGMENTER_KWARGS}.{k} ({IGNORED_AUGMENTER_ARGS.get(k, why)})" for k in dropped]
