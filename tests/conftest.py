"""Shared fixtures (helpers live in tests/helpers.py; a `tests` package elsewhere on sys.path shadows ours)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import sample_rows, write_csv


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    """20 real rows of the shipped sample (id, label, text, evidence)."""
    return write_csv(tmp_path / "in.csv", sample_rows(20))
