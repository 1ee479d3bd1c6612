"""augshard: many augmented variants of a labelled text dataset, sharded, resumable and deterministic."""

from augshard.api import (
    RunPlan,
    RunProgress,
    RunResult,
    evaluate,
    export,
    load,
    plan,
    run,
)
from augshard.config import RunConfig
from augshard.errors import AugshardError, ConfigError
from augshard.outcome import ComboOutcome
from augshard.version import __version__

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
