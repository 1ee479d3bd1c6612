"""Measured method costs: time each available method on real texts, and read/write the costs file the plan uses."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augshard.core.errors import ConfigError, InputError
from augshard.methods import MethodProgress, build_method, check_method
from augshard.methods.spec import MethodSpec
from augshard.storage.data import read_table
from augshard.storage.temporaries import atomic_file

SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "reviews.csv"
SAMPLE_TEXT_COL = "evidence"


@dataclass(frozen=True)
class MethodTiming:
    """One method's time over the sample; `errors` counts texts the library raised on (still timed)."""

    id: str
    rows: int
    seconds: float
    errors: int = 0

    @property
    def seconds_per_row(self) -> float:
        # A clock tick of zero would make the method infinitely cheap; floor it at a nanosecond.
        return max(self.seconds, 1e-9) / self.rows

    @property
    def rows_per_second(self) -> float:
        return 1.0 / self.seconds_per_row


@dataclass(frozen=True)
class BenchResult:
    timings: tuple[MethodTiming, ...]
    skipped: tuple[tuple[str, str], ...]  # (method id, why it cannot run here)
    source: str
    rows: int

    def relative_costs(self) -> dict[str, float]:
        """Seconds per row over the fastest method's, so the fastest is 1.0 (the catalogue's `cost` scale)."""
        if not self.timings:
            return {}
        fastest = min(t.seconds_per_row for t in self.timings)
        return {t.id: round(t.seconds_per_row / fastest, 3) for t in self.timings}


def sample_texts(input_path: str | None, text_col: str | None, rows: int) -> tuple[list[str], str]:
    """The first `rows` non-blank texts of the input (the shipped sample's evidence by default), repeated to
    fill `rows` when the file is shorter; returns them with a description of where they came from."""
    if rows < 1:
        raise ConfigError(f"--rows must be at least 1, got {rows}")
    path = Path(input_path) if input_path else SAMPLE
    column = text_col or ("text" if input_path else SAMPLE_TEXT_COL)
    table = read_table(path)
    if column not in table.column_names:
        raise InputError(
            f"{path}: column '{column}' (--text-col) not found; columns are: {', '.join(table.column_names)}"
        )
    texts = [str(v) for v in table.column(column).to_pylist() if v is not None and str(v).strip()]
    if not texts:
        raise InputError(f"{path}: column '{column}' has no non-empty text")
    texts = [texts[i % len(texts)] for i in range(rows)]
    return texts, f"{path} column {column}"


def time_method(method: Any, texts: list[str]) -> MethodTiming:
    """Wall time of one `augment` call over the texts with seeds 0..N-1 (building is not timed)."""
    seeds = list(range(len(texts)))
    t0 = time.perf_counter()
    out = method.augment(texts, seeds)
    seconds = time.perf_counter() - t0
    return MethodTiming(method.spec.id, len(texts), seconds, sum(isinstance(o, Exception) for o in out))


def bench(
    specs: list[MethodSpec],
    texts: list[str],
    source: str,
    log: Callable[[str], None] | None = None,
    progress: MethodProgress | None = None,
) -> BenchResult:
    """Check each method; time the ones that can run here, list the others with their reason. `progress` hears of
    each method as it begins and ends (checking and timing one takes seconds)."""
    timings, skipped = [], []
    for n, spec in enumerate(specs):
        if progress:
            progress(spec.id, n, len(specs), None)
        status = check_method(spec)
        if not status.ok:
            skipped.append((spec.id, status.reason))
            if progress:
                progress(spec.id, n + 1, len(specs), f"skipped: {status.reason}")
            continue
        if log:
            log(f"timing {spec.id} on {len(texts)} texts")
        timings.append(timing := time_method(build_method(spec), texts))
        if progress:
            progress(spec.id, n + 1, len(specs), f"{timing.rows_per_second:,.1f} rows/s")
    return BenchResult(tuple(timings), tuple(skipped), source, len(texts))


def machine() -> dict[str, Any]:
    """What the costs were measured on: they are relative, but a GPU or many cores can reorder them."""
    import platform
    import sys

    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    return info


def costs_document(result: BenchResult) -> dict[str, Any]:
    from datetime import datetime, timezone

    return {
        "method_costs": result.relative_costs(),
        "rows_per_second": {t.id: round(t.rows_per_second, 3) for t in result.timings},
        "seconds_per_row": {t.id: t.seconds_per_row for t in result.timings},
        "errors": {t.id: t.errors for t in result.timings if t.errors},
        "skipped": dict(result.skipped),
        "rows": result.rows,
        "source": result.source,
        "machine": machine(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_costs(path: str | Path, document: dict[str, Any]) -> Path:
    """Write to a temp file next to the target and rename it, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "w", encoding="utf-8") as fh:
        json.dump(document, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return path


def load_costs(path: str | Path) -> dict[str, float]:
    """The measured relative costs from a file written by `augshard methods --bench`; any problem is one line."""
    path = Path(path)
    hint = "write one with `augshard methods --bench`"
    if not path.is_file():
        raise ConfigError(f"method costs file not found: {path} ({hint})")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable method costs file ({' '.join(str(exc).split())}; {hint})") from None
    costs = document.get("method_costs") if isinstance(document, dict) else None
    if not isinstance(costs, dict):
        raise ConfigError(f"{path}: malformed method costs file: expected an object with 'method_costs' ({hint})")
    for method, cost in costs.items():
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost <= 0:
            raise ConfigError(f"{path}: malformed method costs file: cost of '{method}' must be a positive number")
    return {str(m): float(c) for m, c in costs.items()}
