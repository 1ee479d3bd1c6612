"""methods/imports.py: a method is built without importing what only other methods use, and NLTK is patched when
it is first imported (each check in a fresh interpreter, as a shard is)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import REPO
from rich.console import Console

from augshard.core.config import load_config
from augshard.runner.preflight import preflight
from augshard.runner.supervisor import shard_imports

CATALOGUE = REPO / "conf" / "augment_methods.yaml"
SENTENCE = "the quick brown fox jumps over the lazy dog"


def _fresh(code: str) -> dict:
    """Run `code` in a new interpreter; it prints one JSON document."""
    script = "import json, sys\n" + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_word_method_is_built_without_transformers_or_nltk_and_works() -> None:
    found = _fresh(
        f"""
        from augshard.methods import build_method, load_catalogue
        method = build_method(load_catalogue({str(CATALOGUE)!r})["nlp_randword_delete"])
        out = method.augment([{SENTENCE!r}], [7])
        print(json.dumps({{"out": out, "loaded": [m for m in ("transformers", "nltk", "scipy.stats")
                                                  if m in sys.modules]}}))
        """
    )
    assert found["loaded"] == [], found
    words = found["out"][0].split()
    assert 0 < len(words) < 9 and set(words) <= set(SENTENCE.split())  # noqa: SIM905


def test_a_deferred_package_is_imported_when_a_method_reads_it_and_nltk_never_downloads() -> None:
    found = _fresh(
        f"""
        from augshard.methods import build_method, load_catalogue
        specs = load_catalogue({str(CATALOGUE)!r})
        build_method(specs["nlp_randword_delete"])
        import nlpaug.model.word_dict as placeholder  # what nlpaug's synonym module bound
        before = "nltk" in sys.modules
        method = build_method(specs["nlp_wordnet_syn"])  # reads nlpaug.model.word_dict: imported now, with NLTK
        out = method.augment([{SENTENCE!r}], [7])
        import nltk
        print(json.dumps({{"before": before, "after": "nltk" in sys.modules, "wordnet": hasattr(placeholder, "WordNet"),
                          "download": nltk.download("wordnet"), "changed": out[0] != {SENTENCE!r}}}))
        """
    )
    # NLTK came in only with the WordNet method, was patched on import (download answers False, offline, at once),
    # and the placeholder modules bound earlier now hold the real package's names.
    assert found == {"before": False, "after": True, "wordnet": True, "download": False, "changed": True}, found


def test_the_spelling_method_reads_its_two_classes_without_the_wordnet_package_then_wordnet_still_loads() -> None:
    """nlp_spelling reads `Spelling` (and its base `WordDictionary`) from their submodules: no NLTK, no scipy. A
    WordNet method later in the same process imports the package in full, and the classes stay the same objects."""
    found = _fresh(
        f"""
        from augshard.methods import build_method, load_catalogue
        from augshard.methods.imports import import_module
        specs = load_catalogue({str(CATALOGUE)!r})
        import_module("nlpaug.model.word_dict.spelling")  # what the forkserver preloads for it
        spelling = build_method(specs["nlp_spelling"])
        out = spelling.augment([{SENTENCE!r}], [7])
        without = [m for m in ("nltk", "scipy.stats", "nlpaug.model.word_dict.wordnet") if m in sys.modules]
        import nlpaug.model.word_dict as placeholder
        cls = placeholder.Spelling
        build_method(specs["nlp_wordnet_syn"]).augment([{SENTENCE!r}], [7])
        import nlpaug.model.word_dict as package
        print(json.dumps({{"without": without, "changed": out[0] != {SENTENCE!r}, "same": package.Spelling is cls,
                          "wordnet": "nltk" in sys.modules and hasattr(placeholder, "WordNet")}}))
        """
    )
    assert found == {"without": [], "changed": True, "same": True, "wordnet": True}, found


def test_the_forkserver_preloads_a_cold_runs_libraries_and_only_the_common_modules_on_a_rerun(tmp_path: Path) -> None:
    """A cold run's shards will compute: their libraries (and what their builds read) are imported once, in the
    forkserver. With a method cache there, a shard may import nothing: no shard waits for the libraries."""
    rows = "id,text,evidence\nr1,It boils a litre in three minutes. Great.,It boils a litre in three minutes.\n"
    (tmp_path / "in.csv").write_text(rows, encoding="utf-8")
    cfg = load_config(None, {"input": str(tmp_path / "in.csv"), "text_col": "text", "evidence_col": "evidence",
                             "methods": "nlp_keyboard,nlp_wordnet_syn", "quality_metric": "char_ratio",
                             "cache_dir": str(tmp_path / "cache"), "output_root": str(tmp_path / "out"),
                             "log_dir": str(tmp_path / "logs")})  # fmt: skip
    prep = preflight(cfg, Console(quiet=True))
    common = ["numpy", "pyarrow.parquet", "pandas", "augshard.shard.loop", "augshard.shard.pipeline"]
    cold = shard_imports(prep)
    assert cold[: len(common)] == common
    assert {"nlpaug.augmenter.char", "nlpaug.augmenter.word", "nlpaug.model.word_dict"} <= set(cold)
    assert "nlpaug.model.word_dict.spelling" not in cold  # nlp_spelling's part, not in this run
    assert "nlpaug.model.lang_models" not in cold  # no contextual method in this run
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "augment_shard0.db").write_bytes(b"")
    assert shard_imports(prep) == common
