"""The per-machine probe cache: what probing a method found (available or not, why, the fix), keyed by everything
that decides it, so a rerun probes only the methods whose entry, libraries or offline resources changed."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from augshard.core.environment import augshard_home, library_version
from augshard.core.fingerprint import sha
from augshard.core.version import __version__
from augshard.methods.offline import REQUIRED_FILES, find_nltk_data, offline_env
from augshard.methods.registry import FAMILIES_ENV, LIBRARIES, Family, family, method_version
from augshard.methods.resources import resource
from augshard.methods.spec import MethodSpec
from augshard.storage.temporaries import write_atomic

PROBE_CACHE_ENV = "AUGSHARD_PROBE_CACHE"
CACHE_FORMAT = 1
MAX_ENTRIES = 2000  # old entries (other catalogues, libraries since upgraded) are dropped oldest first
MAX_FILES = 400  # files fingerprinted per resource folder (a model folder holds a few dozen)
# Variables that decide where libraries look for data (offline_env() adds what augshard sets itself).
ENV_KEYS = (
    "AUGSHARD_HOME",
    "AUGSHARD_NLTK_DATA",
    FAMILIES_ENV,
    "NLTK_DATA",
    "HF_HOME",
    "HF_HUB_CACHE",
    "TA_CACHE_DIR",
    "FLAIR_CACHE_ROOT",
)


def probe_cache_path() -> Path:
    """`$AUGSHARD_PROBE_CACHE` if set; else probes.json in `$AUGSHARD_HOME`, `$XDG_CACHE_HOME/augshard` or
    `~/.cache/augshard`, in that order."""
    override = os.environ.get(PROBE_CACHE_ENV)
    if override:
        return Path(override).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and not os.environ.get("AUGSHARD_HOME"):
        return Path(xdg).expanduser().absolute() / "augshard" / "probes.json"
    return augshard_home() / "probes.json"


def machine_context() -> dict[str, Any]:
    """What decides every method's probe besides its entry: augshard's and the libraries' versions, the
    interpreter and its installed packages, the offline environment and the variables behind it."""
    site = sorted({p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)})
    return {
        "augshard": __version__,
        "libraries": {lib: library_version(lib) for lib in LIBRARIES},
        "python": sys.executable,
        # pip install / uninstall touches site-packages: a package installed since (flair, say) is seen.
        "site_packages": {p: _stamp(Path(p)) for p in site},
        "offline_env": offline_env(),
        "env": {k: os.environ.get(k, "") for k in ENV_KEYS},
    }


def probe_key(spec: MethodSpec, context: dict[str, Any]) -> str:
    """The cache key of one method's probe: its entry, its registry entry, the files it reads, the machine."""
    fam = family(spec.lib, spec.kind)
    payload = {
        "spec": spec.canonical(),
        "version": method_version(spec),
        "family": asdict(fam) if fam else None,
        "resources": resources(spec, fam) if fam else {},
        "machine": context,
    }
    return sha(payload, length=32)


def resources(spec: MethodSpec, fam: Family) -> dict[str, Any]:
    """Size and modification time of every local file the method reads (NLTK data, its model, other data), or
    'missing': putting a model in place, or deleting one, changes the method's key."""
    out: dict[str, Any] = {}
    nltk_dir = find_nltk_data()
    for name in fam.nltk:
        if nltk_dir is None:
            out[f"nltk:{name}"] = "missing"
            continue
        folder = nltk_dir / name
        files = {f: _stamp(folder / f) for f in REQUIRED_FILES.get(name, ())}
        out[f"nltk:{name}"] = {"dir": str(folder), "files": files, "zip": _stamp(nltk_dir / f"{name}.zip")}
    model = fam.model(spec)
    if model:
        out["model"] = _tree(_model_dir(model))
    for res in map(resource, fam.data):
        out[res.name] = _tree(res.where(spec)) if res.folder else _stamp(res.where(spec))
    return out


def _model_dir(name_or_path: str) -> Path:
    """Where a model is read from: a local folder as given, else its folder in the Hugging Face hub cache."""
    path = Path(name_or_path).expanduser()
    if path.is_dir() or name_or_path.startswith((".", "/", "~")):
        return path
    hub = os.environ.get("HF_HUB_CACHE") or offline_env()["HF_HUB_CACHE"]
    return Path(hub) / ("models--" + name_or_path.replace("/", "--"))


def _stamp(path: Path) -> list[int] | str:
    try:
        st = path.stat()  # follows links: the hub cache's snapshot files link to its blobs
    except OSError:
        return "missing"
    return [st.st_size, st.st_mtime_ns]


def _tree(folder: Path) -> dict[str, Any] | str:
    if not folder.is_dir():
        return "missing"
    files: dict[str, Any] = {".": _stamp(folder)}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if len(files) > MAX_FILES:
                return files
            path = Path(root) / name
            files[str(path.relative_to(folder))] = _stamp(path)
    return files


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The cached probes by key; an unreadable or foreign file reads as empty (it only costs the probes)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("probes"), dict):
        return {}
    return {k: v for k, v in data["probes"].items() if isinstance(v, dict) and isinstance(v.get("ok"), bool)}


def write_cache(path: Path, probes: dict[str, dict[str, Any]]) -> None:
    """Write the cache atomically, keeping the newest MAX_ENTRIES; a cache that cannot be written costs the next
    run its probes, nothing else."""
    newest = sorted(probes.items(), key=lambda kv: str(kv[1].get("probed_at", "")), reverse=True)[:MAX_ENTRIES]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({"format": CACHE_FORMAT, "probes": dict(newest)}, indent=1, sort_keys=True))
    except OSError:
        pass


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def probe_line(ids: list[str], path: Path) -> str:
    """The one stderr line a run prints when it probes methods."""
    what = f"{len(ids)} method" + ("s" if len(ids) != 1 else "")
    return f"probing {what} not in the probe cache ({path}): {', '.join(ids)}"
