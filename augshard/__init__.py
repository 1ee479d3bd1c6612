"""augshard: many augmented variants of a labelled text dataset, sharded, resumable and deterministic."""

import sys
import types

__version__ = "0.1.0"

# `augshard.plan`, `augshard.export` and `augshard.evaluate` are API functions that share their names with modules.
# Importing such a module sets it as an attribute of this package, over the function; refused here, so the function
# stays (the module is still `sys.modules["augshard.export"]`: `from augshard.export import ...` works as ever).
_SHADOWED = frozenset({"plan", "export", "evaluate"})


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

from augshard.api import (  # noqa: E402 - after the guard above
    RunPlan,
    RunProgress,
    RunResult,
    evaluate,
    export,
    load,
    plan,
    run,
)
from augshard.config import RunConfig  # noqa: E402
from augshard.errors import AugshardError, ConfigError  # noqa: E402
from augshard.outcome import ComboOutcome  # noqa: E402

__all__ = [
    "AugshardError",
    "ComboOutcome",
    "ConfigError",
    "RunConfig",
    "RunPlan",
    "RunProgress",
    "RunResult",
    "__version__",
    "evaluate",
    "export",
    "load",
    "plan",
    "run",
]
