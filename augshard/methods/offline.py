"""The offline environment every worker needs: where NLTK data and TextAttack's cache live, and the variables to set."""

from __future__ import annotations

import os
import sys
import types
import zipfile
from pathlib import Path, PurePosixPath

from augshard.core.environment import augshard_home
from augshard.methods.imports import after_import

# The hash seed of every worker process (workers are spawned after apply_offline_env()).
WORKER_HASH_SEED = "0"

# NLTK resource path -> what in augshard needs it.
REQUIRED_NLTK: dict[str, str] = {
    "corpora/wordnet": "WordNet 3.0 for nlpaug SynonymAug/AntonymAug and TextAttack WordSwapWordNet",
    "taggers/averaged_perceptron_tagger_eng": "nltk.pos_tag, used by nlpaug SynonymAug and TextAttack PartOfSpeech",
    "corpora/stopwords": "`import textattack` (it loads the English stopword list at import)",
    "taggers/universal_tagset": "PTB-to-universal tag map for TextAttack PartOfSpeech and WordSwapWordNet",
}

# Files that must exist (non-empty) for a resource to count as present. WordNet: every file
# nltk's WordNetCorpusReader opens (lexnames and the *.exc files are read when it is built).
REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "corpora/wordnet": (
        "data.noun",
        "index.noun",
        "data.verb",
        "index.verb",
        "data.adj",
        "index.adj",
        "data.adv",
        "index.adv",
        "lexnames",
        "index.sense",
        "cntlist.rev",
        "noun.exc",
        "verb.exc",
        "adj.exc",
        "adv.exc",
    ),
    "taggers/averaged_perceptron_tagger_eng": (
        "averaged_perceptron_tagger_eng.weights.json",
        "averaged_perceptron_tagger_eng.tagdict.json",
        "averaged_perceptron_tagger_eng.classes.json",
    ),
    "corpora/stopwords": ("english",),
    "taggers/universal_tagset": ("en-ptb.map",),
}

# ---------------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------------


def default_nltk_dir() -> Path:
    """Where augshard builds NLTK data when none is found: `augshard_home()/nltk_data`."""
    return augshard_home() / "nltk_data"


def textattack_cache_dir() -> Path:
    """TextAttack's cache directory (`TA_CACHE_DIR`) for augshard workers."""
    return augshard_home() / "textattack"


def _standard_nltk_dirs() -> list[Path]:
    """nltk's own search path on POSIX (nltk/data.py), computed without importing nltk."""
    dirs = [Path(d).expanduser() for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d]
    home = os.path.expanduser("~/")
    if "APPENGINE_RUNTIME" not in os.environ and home != "~/":
        dirs.append(Path(home) / "nltk_data")
    prefix = Path(sys.prefix)
    dirs += [
        prefix / "nltk_data",
        prefix / "share" / "nltk_data",
        prefix / "lib" / "nltk_data",
        Path("/usr/share/nltk_data"),
        Path("/usr/local/share/nltk_data"),
        Path("/usr/lib/nltk_data"),
        Path("/usr/local/lib/nltk_data"),
    ]
    return dirs


# ---------------------------------------------------------------------------------------------
# What is there
# ---------------------------------------------------------------------------------------------


def _is_inside(path: Path, real_root: Path) -> bool:
    """True when `path`'s real location lies under `real_root` (nltk 3.10 refuses anything else)."""
    try:
        return path.resolve().is_relative_to(real_root)
    except (OSError, RuntimeError):
        return False


def _real_file(path: Path, real_root: Path) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return path.is_file() and st.st_size > 0 and _is_inside(path, real_root)


def _has_resource(root: Path, real_root: Path, name: str) -> bool:
    files = REQUIRED_FILES[name]
    res_dir = root / name
    if all(_real_file(res_dir / f, real_root) for f in files):
        return True
    # nltk also reads a resource from `<name>.zip` holding `<basename>/<file>` entries.
    archive = root / f"{name}.zip"
    if not _real_file(archive, real_root):
        return False
    base = PurePosixPath(name).name
    try:
        with zipfile.ZipFile(archive) as zf:
            sizes = {info.filename: info.file_size for info in zf.infolist()}
    except (OSError, zipfile.BadZipFile):
        return False
    return all(sizes.get(f"{base}/{f}", 0) > 0 for f in files)


def missing_nltk(root: Path) -> list[str]:
    """The REQUIRED_NLTK entries whose files are absent (or empty, or linked from outside) under `root`."""
    root = Path(root).expanduser()
    try:
        real_root = root.resolve()
    except (OSError, RuntimeError):
        return list(REQUIRED_NLTK)
    return [name for name in REQUIRED_NLTK if not _has_resource(root, real_root, name)]


def find_nltk_data() -> Path | None:
    """The NLTK data directory to use.

    `$AUGSHARD_NLTK_DATA` when set (even if incomplete: the caller reports what is missing);
    otherwise the first of `$NLTK_DATA`, nltk's standard locations and `default_nltk_dir()`
    that holds every REQUIRED_NLTK resource; otherwise None.
    """
    override = os.environ.get("AUGSHARD_NLTK_DATA")
    if override:
        return Path(override).expanduser().absolute()
    seen: set[Path] = set()
    for candidate in [*_standard_nltk_dirs(), default_nltk_dir()]:
        candidate = candidate.absolute()
        if candidate in seen:
            continue
        seen.add(candidate)
        if candidate.is_dir() and not missing_nltk(candidate):
            return candidate
    return None


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


def offline_env() -> dict[str, str]:
    """Environment a worker needs before importing nltk/textattack/transformers. Computes, sets nothing.

    `NLTK_DATA` puts the chosen directory first and keeps any other entries the user had.
    """
    found = find_nltk_data()
    nltk_dir = str(found if found is not None else default_nltk_dir())
    previous = [d for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d and d != nltk_dir]
    return {
        "NLTK_DATA": os.pathsep.join([nltk_dir, *previous]),
        "TA_CACHE_DIR": str(textattack_cache_dir()),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Fixed, whatever the user's shell has: nlpaug's SpellingAug and TextAttack's WordNet swap iterate over
        # sets, so the hash seed is part of what decides an output.
        "PYTHONHASHSEED": WORKER_HASH_SEED,
        # Importing textattack points HF_HOME at TA_CACHE_DIR; pin the hub cache so models a user already
        # has in the Hugging Face cache are still found.
        "HF_HUB_CACHE": os.environ.get("HF_HUB_CACHE")
        or str(Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"),
    }


def forbid_nltk_downloads() -> None:
    """Some library constructors call nltk.download (TextAttack's WordSwapWordNet asks for omw-1.4) even when
    the data is present; offline that can hang, so in augshard's processes it answers 'not downloaded' at once.
    Missing data still fails loudly where it is used, and `augshard methods` reports it. NLTK is patched when it is
    imported (now, if it is already): a method that never touches it never pays for importing it (2-3 s, with scipy).
    """
    after_import("nltk", _refuse_downloads)


def _no_download(*args: object, **kwargs: object) -> bool:
    return False


def _refuse_downloads(nltk: types.ModuleType) -> None:
    nltk.download = _no_download  # type: ignore[attr-defined]


def apply_offline_env() -> None:
    """Put offline_env() into os.environ; creates no files.

    PYTHONHASHSEED only affects processes started afterwards. If nltk is already imported, its
    search path gets the data directory prepended as well.
    """
    import warnings

    # TA_CACHE_DIR makes textattack set PYTORCH_TRANSFORMERS_CACHE, which transformers then warns about.
    warnings.filterwarnings("ignore", message=".*PYTORCH_TRANSFORMERS_CACHE.*", category=FutureWarning)
    env = offline_env()
    os.environ.update(env)
    nltk_data = sys.modules.get("nltk.data")
    if nltk_data is not None and isinstance(getattr(nltk_data, "path", None), list):
        first = env["NLTK_DATA"].split(os.pathsep)[0]
        if first in nltk_data.path:
            nltk_data.path.remove(first)
        nltk_data.path.insert(0, first)
