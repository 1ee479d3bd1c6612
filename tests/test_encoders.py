"""Encoders and devices: the ONNX encoder against sentence-transformers, per-text determinism, `auto` resolution of
the device and the backend, where the device enters fingerprints, and which combos take a GPU slot."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli, sample_rows, write_csv

from augshard.core.combos import Combo
from augshard.core.config import RunConfig
from augshard.core.errors import ConfigError
from augshard.core.planning import combo_fingerprint, plan_combos
from augshard.methods.spec import MethodSpec
from augshard.shard import encoders
from augshard.shard.encoders import Encoder, OnnxSentenceModel, ensure_onnx_export, resolve_backend, resolve_device

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'augshard[onnx]')")

ROWS = sample_rows(60)


def _texts() -> tuple[list[str], list[str]]:
    originals = [r["evidence"] for r in ROWS]
    candidates = [o.replace("e", "3", 1) for o in originals[:20]]  # light edits: high similarity
    candidates += [" ".join(o.split()[: max(2, len(o.split()) // 2)]) for o in originals[20:40]]  # heavy edits
    candidates += originals[41:60] + originals[:1]  # other rows' sentences: low similarity
    return originals, candidates


def test_the_onnx_encoder_computes_what_sentence_transformers_computes() -> None:
    from sentence_transformers import SentenceTransformer

    originals, candidates = _texts()
    reference = SentenceTransformer(encoders.default_embedding_model(), device="cpu")
    ref = reference.encode(originals + candidates, normalize_embeddings=True, convert_to_numpy=True)
    model = OnnxSentenceModel(ensure_onnx_export(None))
    ours = model.encode(originals + candidates)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-5
    n = len(originals)
    sims_ref = (ref[:n] * ref[n:]).sum(axis=1)
    sims = (ours[:n] * ours[n:]).sum(axis=1)
    assert np.abs(sims - sims_ref).max() < 1e-5
    assert [0.55 <= s <= 0.95 for s in sims] == [0.55 <= s <= 0.95 for s in sims_ref]
    assert len({0.55 <= s <= 0.95 for s in sims}) == 2  # both decisions occur


def test_a_texts_embedding_does_not_depend_on_what_else_is_encoded() -> None:
    originals, candidates = _texts()
    model = OnnxSentenceModel(ensure_onnx_export(None))
    together = model.encode(candidates + originals)
    alone = np.stack([model.encode([t])[0] for t in candidates + originals])
    shuffled = model.encode(list(reversed(candidates + originals)))[::-1]
    assert np.array_equal(together, alone) and np.array_equal(together, shuffled)  # bit for bit


def test_the_encoder_identity_names_backend_and_device() -> None:
    cpu_onnx, cpu_torch = Encoder(backend="onnx"), Encoder(backend="torch")
    gpu_torch = Encoder(backend="torch", device="cuda")
    assert cpu_onnx.direct and not cpu_torch.direct
    assert len({cpu_onnx.identity, cpu_torch.identity, gpu_torch.identity}) == 3
    assert Encoder(backend="torch", device="cuda:1").identity == gpu_torch.identity  # which GPU does not matter


def _fake_torch(monkeypatch: pytest.MonkeyPatch, gpus: int) -> None:
    cuda = types.SimpleNamespace(is_available=lambda: gpus > 0, device_count=lambda: gpus)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    monkeypatch.setattr(encoders, "_nvidia_driver", lambda: True)


def test_device_auto_is_the_cpu_without_a_driver_and_cuda_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoders, "_nvidia_driver", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="--device cuda: torch sees no GPU"):
        resolve_device("cuda")
    _fake_torch(monkeypatch, gpus=2)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match="--device cuda:2: torch sees 2 GPUs here"):
        resolve_device("cuda:2")
    with pytest.raises(ConfigError, match="--device must be one of auto | cpu | cuda | cuda:N, got 'gpu'"):
        resolve_device("gpu")


def test_gpus_hidden_by_cuda_visible_devices_are_not_looked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert encoders._nvidia_driver() is False
        assert resolve_device("auto") == "cpu"


def test_backend_auto_is_onnx_on_the_cpu_and_torch_on_a_gpu() -> None:
    assert resolve_backend("auto", "cpu") == "onnx"
    assert resolve_backend("auto", "cuda") == "torch" and resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ConfigError, match="--embedding-backend onnx runs on the CPU"):
        resolve_backend("onnx", "cuda:0")


def test_the_device_enters_fingerprints_only_where_it_changes_an_output() -> None:
    base = RunConfig(input="x.csv", embedding_backend="onnx", device="cpu")
    gpu = RunConfig(input="x.csv", embedding_backend="torch", device="cuda")
    assert base.fingerprint() != gpu.fingerprint()
    assert RunConfig(input="x.csv", embedding_backend="torch", device="cuda:1").fingerprint() == gpu.fingerprint()
    # char_ratio does not use the device: its data is the same on any machine.
    chars = {"quality_metric": "char_ratio", "input": "x.csv"}
    assert RunConfig(**chars, device="cpu").fingerprint() == RunConfig(**chars, device="cuda").fingerprint()
    # A model method's combos differ on a GPU; the others' do not.
    specs = {
        "nlp_keyboard": MethodSpec("nlp_keyboard", "nlpaug", "KeyboardAug"),
        "nlp_cwe": MethodSpec("nlp_cwe", "nlpaug", "ContextualWordEmbsAug", requires_gpu=True),
    }
    plain, model = Combo(("nlp_keyboard",)), Combo(("nlp_cwe",))
    assert combo_fingerprint("c", "i", plain, specs, gpu=True) == combo_fingerprint("c", "i", plain, specs)
    assert combo_fingerprint("c", "i", model, specs, gpu=True) != combo_fingerprint("c", "i", model, specs)
    on_gpu = plan_combos(RunConfig(**chars, device="cuda"), list(specs.values()), "sha")
    on_cpu = plan_combos(RunConfig(**chars, device="cpu"), list(specs.values()), "sha")
    changed = {a.combo.name for a, b in zip(on_gpu, on_cpu, strict=True) if a.fingerprint != b.fingerprint}
    assert changed == {"nlp_cwe", "nlp_cwe+nlp_keyboard"}


def test_only_model_method_combos_take_a_gpu_slot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The similarity model needs no slot (MiniLM is ~90 MB: every shard can hold it); a model method's combo takes
    one of --gpu-slots for its shard."""
    from augshard.core.planning import PlannedCombo
    from augshard.runner.job import ShardJob
    from augshard.shard import context
    from augshard.shard.claims import WorkItem

    monkeypatch.setattr(context, "cuda_available", lambda: True)
    specs = (
        MethodSpec("nlp_keyboard", "nlpaug", "KeyboardAug"),
        MethodSpec("nlp_cwe", "nlpaug", "ContextualWordEmbsAug", requires_gpu=True),
    )
    combos = tuple(PlannedCombo(Combo(m), 1.0, "fp") for m in (("nlp_keyboard",), ("nlp_cwe",)))
    cfg = RunConfig(input="x.csv", device="cuda", cache_dir=str(tmp_path), gpu_slots=1)
    ctx = context.ShardContext(ShardJob(cfg, 0, 1, combos, specs, "plan", "sha"), logging.getLogger("test"))
    monkeypatch.setattr(context.ShardContext, "dataset", property(lambda self: None))
    ctx.before_combo(WorkItem(combos[0], 0, 0))
    assert not ctx.gpu.held
    ctx.before_combo(WorkItem(combos[1], 0, 1))
    assert ctx.gpu.held and (tmp_path / "gpu_slot_0.lock").is_file()
    ctx.close()
    assert not ctx.gpu.held


@pytest.mark.slow
def test_outputs_made_with_torch_are_recomputed_by_the_onnx_default(tmp_path: Path) -> None:
    """The backend is part of the fingerprint: ONNX and torch agree on every decision measured, but a similarity
    can differ in its last digit, and a run's datasets are identical for its config or recomputed."""
    write_csv(tmp_path / "in.csv", ROWS[:8])
    args = ("--input", "in.csv", "--text-col", "text", "--evidence-col", "evidence", "--methods", "nlp_keyboard")
    made = run_cli("run", *args, "--embedding-backend", "torch", cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "similarity: all-MiniLM-L6-v2 on cpu (torch)" in made.stdout
    torch_again = run_cli("run", "--dry-run", *args, "--embedding-backend", "torch", cwd=tmp_path)
    assert ": 0 to run, 1 already complete" in torch_again.stdout
    default = run_cli("run", "--dry-run", *args, cwd=tmp_path)
    assert "similarity: all-MiniLM-L6-v2 on cpu (onnx)" in default.stdout
    assert "1 to run, 0 already complete" in default.stdout
