"""Every available method gives the same outputs whatever PYTHONHASHSEED the user's shell has."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import REPO, run_cli, sample_rows, write_csv

from augshard.methods import check_method, load_catalogue

pytestmark = pytest.mark.slow


def available_methods() -> list[str]:
    specs = load_catalogue(REPO / "conf/augment_methods.yaml")
    return sorted(m for m, spec in specs.items() if check_method(spec).ok)


def test_each_method_is_deterministic_across_parent_hash_seeds(tmp_path: Path) -> None:
    methods = available_methods()
    assert {"nlp_spelling", "ta_wordswap_wordnet", "nlp_wordnet_syn", "ta_wordswap_qwerty"} <= set(methods)
    write_csv(tmp_path / "in.csv", sample_rows(6))
    outputs = {}
    for hash_seed in ("1", "2"):
        cwd = tmp_path / f"h{hash_seed}"
        cwd.mkdir()
        proc = run_cli("run", "--input", str(tmp_path / "in.csv"), "--text-col", "text", "--evidence-col", "evidence",
                       "--id-col", "id", "--methods", ",".join(methods), "--combo-mode", "single",
                       "--quality-metric", "none", "--num-shards", "2", cwd=cwd,
                       env={"PYTHONHASHSEED": hash_seed})  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        root = cwd / "data/processed/augsets"
        outputs[hash_seed] = {p.parent.name: p.read_bytes() for p in sorted(root.glob("combo_*/dataset.parquet"))}
    assert sorted(outputs["1"]) == [f"combo_1_{m}" for m in methods]
    for name, data in outputs["1"].items():
        assert data == outputs["2"][name], f"{name} differs between parent PYTHONHASHSEED 1 and 2"
        if name != "combo_1_ta_contraction":  # these evidences have nothing to contract
            assert pq.read_table(tmp_path / "h1/data/processed/augsets" / name / "dataset.parquet").num_rows > 0, name
