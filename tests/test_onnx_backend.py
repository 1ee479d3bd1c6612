"""--embedding-backend onnx: the same MiniLM through ONNX Runtime, exported once offline, with the same decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli, sample_rows, write_csv

from augshard.core.errors import ConfigError
from augshard.shard.quality import EmbeddingScorer, ensure_onnx_export

pytest.importorskip("optimum.onnxruntime", reason="the onnx extra is not installed (pip install 'augshard[onnx]')")

ROWS = sample_rows(40)


def test_onnx_scores_match_torch_and_keep_every_decision() -> None:
    export = ensure_onnx_export(None)
    assert (export / "onnx" / "model.onnx").is_file()
    assert ensure_onnx_export(None) == export  # made once
    originals = [r["evidence"] for r in ROWS]
    # Candidates spread over the whole range: light edits, heavy edits, another row's sentence.
    candidates = [o.replace("e", "3", 1) for o in originals[:14]]
    candidates += [" ".join(o.split()[: max(2, len(o.split()) // 2)]) for o in originals[14:28]]
    candidates += originals[29:41] + originals[:1]
    torch_scorer, onnx_scorer = EmbeddingScorer(batch_size=16), EmbeddingScorer(batch_size=16, backend="onnx")
    assert torch_scorer.identity != onnx_scorer.identity  # their scores are cached apart
    t = torch_scorer.score(originals, candidates)
    o = onnx_scorer.score(originals, candidates)
    assert max(abs(a - b) for a, b in zip(t, o, strict=True)) < 1e-5
    assert [0.55 <= s <= 0.95 for s in t] == [0.55 <= s <= 0.95 for s in o]
    assert len({0.55 <= s <= 0.95 for s in t}) == 2  # both decisions occur


def test_onnx_run_is_identical_for_any_shard_count(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", ROWS[:15])
    outputs = []
    for shards in ("1", "2"):
        cwd = tmp_path / f"s{shards}"
        cwd.mkdir()
        proc = run_cli("run", "--no-live", "--input", str(tmp_path / "in.csv"), "--text-col", "text", "--evidence-col",
                       "evidence", "--methods", "nlp_keyboard,nlp_randword_delete", "--embedding-backend", "onnx",
                       "--num-shards", shards, cwd=cwd)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = cwd / "data/processed/augsets"
        outputs.append({p.parent.name: p.read_bytes() for p in out.glob("combo_*/dataset.parquet")})
        meta = json.loads(next(out.glob("combo_*/meta.json")).read_text())
        assert meta["quality"]["backend"] == "onnx"
    assert len(outputs[0]) == 3 and outputs[0] == outputs[1]


def test_unknown_backend_is_a_one_line_error(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", ROWS[:3])
    proc = run_cli("run", "--input", "in.csv", "--embedding-backend", "tensorflow", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--embedding-backend must be one of auto, torch, onnx, got 'tensorflow'" in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()


def test_dry_run_writes_no_export(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", ROWS[:3])
    home = tmp_path / "home"
    # An empty AUGSHARD_HOME has no NLTK data: a method that needs none keeps the check on the export alone.
    proc = run_cli("run", "--dry-run", "--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence",
                   "--methods", "nlp_keyboard", "--embedding-backend", "onnx", cwd=tmp_path,
                   env={"AUGSHARD_HOME": str(home)})  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "will be exported to ONNX once" in proc.stdout
    assert not (home / "encoders").exists() and not (tmp_path / "data").exists()


def test_missing_model_directory_is_said_before_any_shard(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="embedding model directory not found"):
        ensure_onnx_export(str(tmp_path / "nowhere"))
