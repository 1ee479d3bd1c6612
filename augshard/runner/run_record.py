"""run.yaml: a run's every setting as resolved, where each came from and the command line, kept in its output root
so that `augshard run --config ROOT/run.yaml` runs it again. It is a config file the loader reads: the settings at
the top level, the provenance under the one key the loader skips (`RUN_RECORD_KEY`)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from augshard.core.config import DEFAULT_METHODS_CONFIG, RUN, RUN_RECORD_KEY, RunConfig, resolve_conf_path
from augshard.core.version import __version__
from augshard.storage.outputs import RUN_RECORD, RUN_RECORD_HEAD
from augshard.storage.temporaries import write_atomic

# Files a run reads: written absolute, since a config file's `input` and `methods_config` are read relative to the
# file (the output root), and `calibrate` relative to the working directory, which a rerun may not share.
READ_PATHS = ("input", "calibrate")  # and the catalogue, as the run found it
PYTHON_API = "python API"
HEADER = RUN_RECORD_HEAD.decode() + (
    "every setting of this run as resolved, and (under `augshard:`) where each came from.\n"
    "# `augshard run --config THIS_FILE` runs the same plan again (add --output-root to write elsewhere).\n"
)


def run_record(cfg: RunConfig, plan_fingerprint: str) -> dict[str, Any]:
    """run.yaml as data: each setting's value (tuples as lists, read paths absolute), then its provenance."""
    settings = {s.name: _plain(s.name, getattr(cfg, s.name)) for s in RUN}
    settings["methods_config"] = os.path.abspath(resolve_conf_path(cfg.methods_config, DEFAULT_METHODS_CONFIG))
    argv = cfg.origin.command
    provenance = {
        "version": __version__,
        "command": shlex.join(["augshard", *argv[1:]]) if argv else PYTHON_API,
        "plan": plan_fingerprint,
        "config_file": cfg.config_path,
        "sources": {s.name: cfg.origin.source(s.name) for s in RUN},
    }
    return {**settings, RUN_RECORD_KEY: provenance}


def _plain(name: str, value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if name in READ_PATHS and isinstance(value, (str, os.PathLike)):
        return os.path.abspath(value)
    return value


def write_run_record(cfg: RunConfig, plan_fingerprint: str) -> Path:
    """ROOT/run.yaml written whole (a temporary renamed into place), replacing the one an earlier run left."""
    import yaml  # PyYAML: the config loader's own reader (core/config.py)

    path = Path(cfg.output_root) / RUN_RECORD
    text = yaml.safe_dump(run_record(cfg, plan_fingerprint), sort_keys=False, allow_unicode=True, width=1_000)
    write_atomic(path, HEADER + text)
    return path
