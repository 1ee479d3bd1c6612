"""What this machine has that augshard records or keeps: the installed version of a library, and augshard's own
per-machine folder (ONNX exports, NLTK data, the probe cache)."""

from __future__ import annotations

import functools
import os
from importlib import metadata
from pathlib import Path


@functools.cache
def library_version(lib: str) -> str:
    """The installed version of a distribution (looked up once per process: each lookup scans sys.path)."""
    try:
        return metadata.version(lib)
    except metadata.PackageNotFoundError:
        return "not installed"


def augshard_home() -> Path:
    """`$AUGSHARD_HOME` if set, else `~/.cache/augshard`."""
    home = os.environ.get("AUGSHARD_HOME")
    if home:
        return Path(home).expanduser().absolute()
    return Path.home() / ".cache" / "augshard"
