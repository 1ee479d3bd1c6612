"""The registry of method families: one entry is all a new method of a supported library needs."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import run_cli, sample_rows, write_csv

from augshard.core.errors import ConfigError
from augshard.methods import load_catalogue
from augshard.methods.registry import FAMILIES_ENV, family, read_families

ROOT = Path(__file__).resolve().parents[1]
# One registry entry (a TextAttack class augshard's registry does not have) and one catalogue entry naming it.
FAMILIES = "families:\n  - {lib: textattack, cls: textattack.transformations.WordInnerSwapRandom}\n"
CATALOGUE = """
methods:
  - {id: ta_inner_swap, lib: textattack, kind: WordInnerSwapRandom, args: {pct_words_to_swap: 0.2}}
"""


def test_every_kind_of_the_shipped_catalogue_is_registered() -> None:
    specs = load_catalogue(ROOT / "augshard/conf/augment_methods.yaml")
    assert [s.id for s in specs.values() if family(s.lib, s.kind) is None] == []
    assert family("textattack", "WordInnerSwapRandom") is None  # the class the test below registers


def test_a_method_registered_in_one_entry_runs_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "families.yaml").write_text(FAMILIES, encoding="utf-8")
    (tmp_path / "methods.yaml").write_text(CATALOGUE, encoding="utf-8")
    rows = sample_rows(6)
    write_csv(tmp_path / "in.csv", [{"id": r["id"], "text": r["text"]} for r in rows])
    args = ("run", "--input", "in.csv", "--text-col", "text", "--id-col", "id", "--methods-config", "methods.yaml",
            "--methods", "ta_inner_swap", "--quality-metric", "none", "--num-shards", "1", "--no-live")  # fmt: skip

    unregistered = run_cli(*args, cwd=tmp_path)
    assert unregistered.returncode == 2, unregistered.stdout + unregistered.stderr
    assert "textattack class 'WordInnerSwapRandom' is not in augshard's method registry" in unregistered.stderr

    proc = run_cli(*args, cwd=tmp_path, env={FAMILIES_ENV: str(tmp_path / "families.yaml")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = pq.read_table(tmp_path / "data/processed/augsets/combo_1_ta_inner_swap/dataset.parquet").to_pylist()
    originals = {r["id"]: r["text"] for r in rows}
    assert len(table) == 2 * len(rows)  # two variants per row, none filtered (--quality-metric none)
    for out in table:
        original = originals[out["id"]]
        assert out["text"] != original and out["methods"] == "ta_inner_swap"
        # Two words swapped places: the same words, in another order.
        assert sorted(re.findall(r"\w+", out["text"])) == sorted(re.findall(r"\w+", original))


def test_a_bad_registry_file_is_one_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "families.yaml"
    path.write_text("families:\n  - {lib: textattack, cls: textattack.transformations.X, colour: red}\n", "utf-8")
    with pytest.raises(ConfigError, match=r"families.yaml: family 1: unknown key\(s\) colour"):
        read_families(path)
    path.write_text("families:\n  - {lib: nlpaug, cls: textattack.transformations.X}\n", "utf-8")
    with pytest.raises(ConfigError, match="is not a nlpaug class"):
        read_families(path)


def test_a_resource_is_declared_once_and_every_room_reads_the_declaration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry entry that names a resource (`data`) is all it takes: the adapter refuses the build without it,
    with the declaration's reason and fix; its files enter the probe key; `diagnose` reads a library's error by
    the declaration's markers; an unknown resource name is one ConfigError naming the file."""
    from augshard.methods import build_method, diagnose
    from augshard.methods.models import MethodUnavailable
    from augshard.methods.probes import resources
    from augshard.methods.resources import RESOURCES
    from augshard.methods.spec import MethodSpec

    path = tmp_path / "families.yaml"
    path.write_text(
        "families:\n  - {lib: textattack, cls: textattack.transformations.WordInnerSwapRandom, data: [paragramcf]}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(FAMILIES_ENV, str(path))
    monkeypatch.setenv("TA_CACHE_DIR", str(tmp_path / "ta-cache"))
    local = tmp_path / "my-paragramcf"
    spec = MethodSpec("ta_inner", "textattack", "WordInnerSwapRandom", embedding_path=str(local))
    declared = RESOURCES["paragramcf"]
    with pytest.raises(MethodUnavailable) as refused:
        build_method(spec)
    assert str(refused.value) == declared.reason(spec) and refused.value.fix == declared.fix
    assert resources(spec, family("textattack", "WordInnerSwapRandom"))["paragramcf"] == "missing"
    local.mkdir()
    (local / "paragram.npy").write_bytes(b"not really")
    assert isinstance(resources(spec, family("textattack", "WordInnerSwapRandom"))["paragramcf"], dict)

    flair = RESOURCES["flair_upos"]
    said = diagnose(OSError("no model at /root/.flair/models/upos-english-fast/model.pt"))
    assert said == (flair.missing, flair.fix)

    path.write_text("families:\n  - {lib: textattack, cls: textattack.transformations.X, data: [glove]}\n", "utf-8")
    with pytest.raises(ConfigError, match=r"families.yaml: family 1: unknown data glove \(known: flair_upos, "):
        read_families(path)
