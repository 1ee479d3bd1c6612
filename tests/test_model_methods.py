"""Model methods (nlp_cwe_*, ta_mlm_*) through the real loading code, with a tiny masked LM built locally."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import run_cli, sample_rows, write_csv

from augshard.methods import check_method, load_catalogue
from augshard.methods.spec import MethodSpec

pytestmark = pytest.mark.slow


# tiny_catalogue (tests/conftest.py): nlp_cwe_sub_tiny and ta_mlm_sub_tiny on a tiny local BERT.
def test_model_methods_run_in_a_real_run_identically_on_1_and_2_shards(tiny_catalogue: Path, tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", sample_rows(8))
    outputs = {}
    for n in (2, 1):
        cwd = tmp_path / f"n{n}"
        cwd.mkdir()
        proc = run_cli("run", "--input", str(tmp_path / "in.csv"), "--text-col", "text", "--evidence-col", "evidence",
                       "--id-col", "id", "--methods-config", str(tiny_catalogue), "--methods",
                       "nlp_cwe_sub_tiny,ta_mlm_sub_tiny", "--quality-metric", "none", "--num-shards", str(n),
                       cwd=cwd)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        root = cwd / "data/processed/augsets"
        outputs[n] = {p.parent.name: p.read_bytes() for p in sorted(root.glob("combo_*/dataset.parquet"))}
        for name in ("combo_1_nlp_cwe_sub_tiny", "combo_1_ta_mlm_sub_tiny"):
            records = pq.read_table(root / name / "dataset.parquet").to_pylist()
            assert len(records) >= 8, name
            assert all(r["evidence"] != r["evidence_original"] for r in records)
    assert len(outputs[1]) == 3
    assert outputs[1] == outputs[2]


def test_missing_models_are_diagnosed_with_a_fix(tmp_path: Path) -> None:
    specs = load_catalogue(Path(__file__).resolve().parents[1] / "conf/augment_methods.yaml")
    missing = MethodSpec(**{**specs["ta_mlm_sub_bert"].__dict__, "model_path": str(tmp_path / "no-such-model")})
    status = check_method(missing)
    assert not status.ok
    assert "no-such-model not found" in status.reason and "model_path" in status.fix
    hub = MethodSpec(**{**specs["nlp_cwe_sub_roberta"].__dict__, "args_json": specs["nlp_cwe_sub_roberta"].args_json
                        .replace("roberta-base", "augshard-test/not-a-cached-model")})  # fmt: skip
    status = check_method(hub)
    assert not status.ok
    assert "'augshard-test/not-a-cached-model' not found locally" in status.reason
    assert "Hugging Face cache" in status.fix
