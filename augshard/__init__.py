"""augshard: many augmented variants of a labelled text dataset, sharded, resumable and deterministic.

The public names load on first use (PEP 562): `import augshard` imports none of the rooms, so the command line,
`monitor` and every worker process start without the API's imports."""

from __future__ import annotations

import importlib
from typing import Any

from augshard.core.version import __version__

# Each public name and the module that defines it.
_PUBLIC = {
    "AugshardError": "augshard.core.errors",
    "ComboOutcome": "augshard.storage.outcome",
    "ConfigError": "augshard.core.errors",
    "RunConfig": "augshard.core.config",
    "RunPlan": "augshard.api",
    "RunProgress": "augshard.api",
    "RunResult": "augshard.api",
    "evaluate": "augshard.api",
    "export": "augshard.api",
    "load": "augshard.api",
    "plan": "augshard.api",
    "run": "augshard.api",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'augshard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
