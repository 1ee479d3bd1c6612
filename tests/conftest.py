"""Shared fixtures (helpers live in tests/helpers.py; a `tests` package elsewhere on sys.path shadows ours)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import OFFLINE_KEYS, sample_rows, write_csv
from tiny_mlm import write_tiny_catalogue


@pytest.fixture(scope="session", autouse=True)
def probe_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Method probes are cached in a file of this session, never in the user's ~/.cache (CLI runs inherit it)."""
    path = tmp_path_factory.mktemp("probes") / "probes.json"
    os.environ["AUGSHARD_PROBE_CACHE"] = str(path)
    return path


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    """20 real rows of the shipped sample (id, label, text, evidence)."""
    return write_csv(tmp_path / "in.csv", sample_rows(20))


@pytest.fixture(scope="session")
def tiny_catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalogue of the model methods on a tiny local BERT (see tests/tiny_mlm.py), built once per session."""
    return write_tiny_catalogue(tmp_path_factory.mktemp("mlm"))


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """AUGSHARD_HOME in tmp, no NLTK overrides, offline keys restored after the test."""
    monkeypatch.setenv("AUGSHARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AUGSHARD_NLTK_DATA", raising=False)
    for key in OFFLINE_KEYS:
        monkeypatch.delenv(key, raising=False)
    return tmp_path
