"""Where a run's files are, for every command that reads a run: the paths `run` resolves, from the defaults, the
config file and the flags given."""

from __future__ import annotations

import os
from dataclasses import dataclass

from augshard.core.config import (
    DEFAULT_CACHE_DIR,
    DEFAULT_LOG_DIR,
    DEFAULT_OUTPUT_NAME,
    DEFAULT_OUTPUT_ROOT,
    file_settings,
)
from augshard.core.errors import ConfigError


@dataclass(frozen=True)
class RunPaths:
    """Where a run's files are: what `run` writes to and every command that reads a run looks in."""

    output_root: str = DEFAULT_OUTPUT_ROOT
    output_name: str = DEFAULT_OUTPUT_NAME
    cache_dir: str = DEFAULT_CACHE_DIR
    log_dir: str = DEFAULT_LOG_DIR


def run_paths(
    config: str | None = None,
    *,
    output_root: str | None = None,
    output_name: str | None = None,
    cache_dir: str | None = None,
    log_dir: str | None = None,
) -> RunPaths:
    """The run's paths as `run` resolves them: built-in defaults <- the config file (`--config`, else
    conf/augshard.yaml here) <- the flags given (None: not given). The file's other settings are checked as `run`
    checks them (an unknown one is an error) but not used."""
    path, values = file_settings(config, cli_input=False)
    flags = {"output_root": output_root, "output_name": output_name, "cache_dir": cache_dir, "log_dir": log_dir}
    chosen: dict[str, str] = {}
    for key, flag in flags.items():
        value = flag if flag is not None else values.get(key)
        if value is None:
            continue
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{path}: '{key}' must be a path, got {value!r}")
        chosen[key] = os.fspath(value)
    return RunPaths(**chosen)
