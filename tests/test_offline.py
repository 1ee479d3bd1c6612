"""Tests for augshard.methods.offline: NLTK data discovery and the offline environment of every worker."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import OFFLINE_KEYS, fake_complete_nltk

from augshard.methods import offline
from augshard.methods.offline import (
    REQUIRED_NLTK,
    apply_offline_env,
    augshard_home,
    default_nltk_dir,
    find_nltk_data,
    missing_nltk,
    offline_env,
    textattack_cache_dir,
)


def test_missing_nltk_on_empty_dir_lists_all_four(tmp_path: Path) -> None:
    assert missing_nltk(tmp_path) == [
        "corpora/wordnet",
        "taggers/averaged_perceptron_tagger_eng",
        "corpora/stopwords",
        "taggers/universal_tagset",
    ]
    assert set(missing_nltk(tmp_path / "does-not-exist")) == set(REQUIRED_NLTK)


def test_missing_nltk_checks_real_files(tmp_path: Path) -> None:
    root = fake_complete_nltk(tmp_path / "data")
    assert missing_nltk(root) == []
    # An empty file does not count.
    (root / "corpora/stopwords/english").write_text("")
    assert missing_nltk(root) == ["corpora/stopwords"]
    # A zip laid out the way nltk.download leaves it counts.
    (root / "corpora/stopwords/english").unlink()
    (root / "corpora/stopwords").rmdir()
    with zipfile.ZipFile(root / "corpora/stopwords.zip", "w") as zf:
        zf.writestr("stopwords/english", "the\n")
    assert missing_nltk(root) == []
    # nltk 3.10 refuses files linked from outside the root: they count as missing.
    outside = tmp_path / "outside.map"
    outside.write_text("NN\tNOUN\n")
    mapped = root / "taggers/universal_tagset/en-ptb.map"
    mapped.unlink()
    mapped.symlink_to(outside)
    assert missing_nltk(root) == ["taggers/universal_tagset"]


def test_locations_follow_augshard_home(isolated: Path) -> None:
    home = isolated / "home"
    assert augshard_home() == home
    assert default_nltk_dir() == home / "nltk_data"
    assert textattack_cache_dir() == home / "textattack"


def test_augshard_home_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUGSHARD_HOME", raising=False)
    assert augshard_home() == Path.home() / ".cache" / "augshard"


def test_find_nltk_data_honours_override_even_if_incomplete(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = isolated / "override"
    override.mkdir()
    monkeypatch.setenv("AUGSHARD_NLTK_DATA", str(override))
    assert find_nltk_data() == override
    assert missing_nltk(override) == list(REQUIRED_NLTK)
    assert offline_env()["NLTK_DATA"].split(os.pathsep)[0] == str(override)


def test_find_nltk_data_takes_first_complete_nltk_data_entry(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = isolated / "empty"
    empty.mkdir()
    complete = fake_complete_nltk(isolated / "complete")
    monkeypatch.setenv("NLTK_DATA", os.pathsep.join([str(empty), str(complete)]))
    assert find_nltk_data() == complete
    assert missing_nltk(complete) == []


def test_offline_env_contents(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = isolated / "nltk"
    monkeypatch.setenv("AUGSHARD_NLTK_DATA", str(override))
    monkeypatch.setenv("NLTK_DATA", "/somewhere/else")
    env = offline_env()
    assert set(env) == set(OFFLINE_KEYS)
    assert env["NLTK_DATA"] == os.pathsep.join([str(override), "/somewhere/else"])
    assert env["TA_CACHE_DIR"] == str(isolated / "home" / "textattack")
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["HF_DATASETS_OFFLINE"] == "1"
    assert env["TOKENIZERS_PARALLELISM"] == "false"
    assert env["PYTHONHASHSEED"] == "0"
    monkeypatch.setenv("HF_HOME", str(isolated / "hf"))
    assert offline_env()["HF_HUB_CACHE"] == str(isolated / "hf" / "hub")
    monkeypatch.setenv("PYTHONHASHSEED", "1234")
    assert offline_env()["PYTHONHASHSEED"] == "0"  # fixed for workers, whatever the user's shell has
    # Pure: nothing was created and nothing set.
    assert not (isolated / "home").exists()
    assert not override.exists()
    assert "HF_HUB_OFFLINE" not in os.environ


def test_offline_env_uses_default_dir_when_nothing_found(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline, "_standard_nltk_dirs", lambda: [])
    assert find_nltk_data() is None
    assert offline_env()["NLTK_DATA"] == str(isolated / "home" / "nltk_data")
    assert default_nltk_dir() == isolated / "home" / "nltk_data"
    assert missing_nltk(default_nltk_dir()) == list(REQUIRED_NLTK)


def test_apply_offline_env(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nltk = pytest.importorskip("nltk")
    override = isolated / "nltk"
    monkeypatch.setenv("AUGSHARD_NLTK_DATA", str(override))
    monkeypatch.setenv("PYTHONHASHSEED", "77")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(nltk.data, "path", ["/elsewhere", str(override)])
    apply_offline_env()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert os.environ["PYTHONHASHSEED"] == "0"
    assert os.environ["TA_CACHE_DIR"] == str(isolated / "home" / "textattack")
    assert os.environ["NLTK_DATA"].split(os.pathsep)[0] == str(override)
    assert nltk.data.path == [str(override), "/elsewhere"]
    assert not (isolated / "home").exists()
    assert not override.exists()


def test_importing_offline_loads_no_heavy_library() -> None:
    # Every worker imports this module first; what it pulls in is paid by each one.
    heavy = ["nltk", "torch", "textattack", "nlpaug"]
    code = f"import sys, augshard.methods.offline; print(sorted(set({heavy!r}) & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[]"
