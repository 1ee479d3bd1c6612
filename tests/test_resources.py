"""Tests for augshard.methods.resources: NLTK data discovery, offline environment, and prepare()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from augshard.methods import resources
from augshard.methods.resources import (
    REQUIRED_NLTK,
    apply_offline_env,
    default_nltk_dir,
    find_nltk_data,
    missing_nltk,
    nltk_status,
    offline_env,
    prepare,
    textattack_cache_dir,
)

OFFLINE_KEYS = (
    "NLTK_DATA",
    "TA_CACHE_DIR",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TOKENIZERS_PARALLELISM",
    "PYTHONHASHSEED",
    "HF_HUB_CACHE",
)


def _fake_complete(root: Path) -> Path:
    """Every file missing_nltk() looks for, with placeholder content (not loadable by nltk)."""
    for name, files in resources._REQUIRED_FILES.items():
        for f in files:
            path = root / name / f
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x\n")
    return root


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """AUGSHARD_HOME in tmp, no NLTK overrides, offline keys restored after the test."""
    monkeypatch.setenv("AUGSHARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AUGSHARD_NLTK_DATA", raising=False)
    for key in OFFLINE_KEYS:
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def test_missing_nltk_on_empty_dir_lists_all_four(tmp_path: Path) -> None:
    assert missing_nltk(tmp_path) == [
        "corpora/wordnet",
        "taggers/averaged_perceptron_tagger_eng",
        "corpora/stopwords",
        "taggers/universal_tagset",
    ]
    assert set(missing_nltk(tmp_path / "does-not-exist")) == set(REQUIRED_NLTK)


def test_missing_nltk_checks_real_files(tmp_path: Path) -> None:
    root = _fake_complete(tmp_path / "data")
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
    assert resources.augshard_home() == home
    assert default_nltk_dir() == home / "nltk_data"
    assert textattack_cache_dir() == home / "textattack"


def test_augshard_home_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUGSHARD_HOME", raising=False)
    assert resources.augshard_home() == Path.home() / ".cache" / "augshard"


def test_find_nltk_data_honours_override_even_if_incomplete(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = isolated / "override"
    override.mkdir()
    monkeypatch.setenv("AUGSHARD_NLTK_DATA", str(override))
    assert find_nltk_data() == override
    where, missing = nltk_status()
    assert where == override
    assert missing == list(REQUIRED_NLTK)
    assert offline_env()["NLTK_DATA"].split(os.pathsep)[0] == str(override)


def test_find_nltk_data_takes_first_complete_nltk_data_entry(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = isolated / "empty"
    empty.mkdir()
    complete = _fake_complete(isolated / "complete")
    monkeypatch.setenv("NLTK_DATA", os.pathsep.join([str(empty), str(complete)]))
    assert find_nltk_data() == complete
    assert nltk_status() == (complete, [])


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
    monkeypatch.setattr(resources, "_standard_nltk_dirs", lambda: [])
    assert find_nltk_data() is None
    assert offline_env()["NLTK_DATA"] == str(isolated / "home" / "nltk_data")
    assert nltk_status() == (isolated / "home" / "nltk_data", list(REQUIRED_NLTK))


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


def test_prepare_with_complete_target_touches_nothing_but_the_marker(isolated: Path) -> None:
    target = _fake_complete(isolated / "target")
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    lines: list[str] = []
    assert prepare(target, log=lines.append) == target
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert (isolated / "home" / "textattack" / "post_install_check_3").is_file()
    assert any("complete" in line for line in lines)


_CHECK_SCRIPT = r"""
import json, socket
attempts = []

def refuse(self, address, *args, **kwargs):
    attempts.append(str(address))
    raise OSError("network blocked by the test")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
import nltk
downloads = []
nltk.download = lambda *a, **k: downloads.append(a) or False
from nltk.corpus import stopwords, wordnet
happy = wordnet.synsets("happy")
tags = nltk.pos_tag(["The", "dog", "runs"])
universal = nltk.pos_tag(["The", "dog", "runs"], tagset="universal")
words = stopwords.words("english")
import textattack
print(json.dumps({
    "synsets": [s.name() for s in happy],
    "definition": happy[0].definition() if happy else "",
    "tags": tags,
    "universal": universal,
    "the": "the" in words,
    "textattack": textattack.__name__,
    "downloads": [list(a) for a in downloads],
    "connects": attempts,
}))
"""


@pytest.mark.slow
def test_prepare_default_location_then_offline_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUGSHARD_NLTK_DATA", raising=False)
    lines: list[str] = []
    root = prepare(log=lines.append)
    assert missing_nltk(root) == []
    assert (textattack_cache_dir() / "post_install_check_3").is_file()
    assert find_nltk_data() == root
    # Idempotent: a second run finds everything and builds nothing.
    again: list[str] = []
    assert prepare(log=again.append) == root
    assert not any("building" in line or "installed" in line for line in again)

    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"}
    env.update(offline_env())
    assert env["NLTK_DATA"].split(os.pathsep)[0] == str(root)
    proc = subprocess.run([sys.executable, "-c", _CHECK_SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "happy.a.01" in out["synsets"]
    assert "joy" in out["definition"]
    assert out["tags"][1] == ["dog", "NN"]
    assert out["universal"][1] == ["dog", "NOUN"]
    assert out["the"] is True
    assert out["textattack"] == "textattack"
    assert out["downloads"] == []
    assert out["connects"] == []
