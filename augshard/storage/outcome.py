"""The typed result of one combo (a manifest row): one constructor per case, and the manifest's columns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any

from augshard.core.combos import Combo
from augshard.storage.meta import ComboMeta
from augshard.storage.store import DATASET

ERROR_CHARS = 300  # a manifest cell holds the one-line summary; the shard log holds the traceback


class Status(str, Enum):
    """A combo's outcome in the manifest."""

    OK = "ok"  # complete: dataset.parquet and meta.json under their final names
    FAILED = "failed"  # an error (its summary in `error`, the traceback in the shard log)
    INTERRUPTED = "interrupted"  # stopped by a signal before it finished; a rerun computes it
    UNAVAILABLE = "unavailable"  # uses a method that cannot be built here; never started

    def __str__(self) -> str:
        return self.value


class ShardState(str, Enum):
    """What a shard is doing or came to; the values are what events readers, `monitor` and the summary print."""

    PENDING = "pending"  # no event yet: its process has not started
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # it ended with some combo failed
    STOPPED = "stopped"  # a signal stopped it; a rerun resumes it
    DEAD = "dead"  # judged: its process on this host is gone without a last event
    STALLED = "stalled"  # judged: no event for longer than the stall limit
    CRASHED = "crashed"  # the run's summary: its process died and no retry was left

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        """Nothing more will come from this shard's current attempt."""
        return self in (ShardState.DONE, ShardState.FAILED, ShardState.STOPPED, ShardState.DEAD, ShardState.STALLED)

    @property
    def ended(self) -> bool:
        """It ended by itself and said so (done, failed or stopped): it has a duration."""
        return self in (ShardState.DONE, ShardState.FAILED, ShardState.STOPPED)


@dataclass(frozen=True)
class ComboOutcome:
    """One row of a manifest; field order is the manifest's column order."""

    combo_id: str
    combo_dir: str
    methods: str
    k: int
    rows: int
    rows_skipped: int
    rows_rejected: int  # candidates rejected; the original tool's manifest column name, kept for its readers
    status: Status
    dataset_path: str
    duration_s: float
    shard: int
    resumed: bool
    plan_fingerprint: str
    error: str
    label_flip_share: float | None = None  # with --label-col: the share of variants whose predicted label flips

    @classmethod
    def complete(cls, combo: Combo, meta: ComboMeta, shard: int, plan_fp: str, resumed: bool = False) -> ComboOutcome:
        """A combo whose dataset and meta.json are in place: its counts come from its meta.json."""
        return cls._of(
            combo,
            Status.OK,
            shard,
            plan_fp,
            rows=meta.rows,
            rows_skipped=meta.rows_skipped,
            rows_rejected=meta.candidates_rejected,
            duration_s=meta.timing.duration_seconds,
            resumed=resumed,
            label_flip_share=meta.label_check.flip_share if meta.label_check else None,
        )

    @classmethod
    def failed(cls, combo: Combo, shard: int, plan_fp: str, error: str, duration_s: float = 0.0) -> ComboOutcome:
        return cls._of(combo, Status.FAILED, shard, plan_fp, error=error, duration_s=duration_s)

    @classmethod
    def interrupted(
        cls, combo: Combo, shard: int, plan_fp: str, error: str = "interrupted", duration_s: float = 0.0
    ) -> ComboOutcome:
        return cls._of(combo, Status.INTERRUPTED, shard, plan_fp, error=error, duration_s=duration_s)

    @classmethod
    def unavailable(cls, combo: Combo, plan_fp: str, reason: str) -> ComboOutcome:
        """Listed by shard 0 of a run: never started, so it has no dataset and no shard."""
        return cls._of(combo, Status.UNAVAILABLE, 0, plan_fp, error=reason, dataset_path="")

    @classmethod
    def _of(cls, combo: Combo, status: Status, shard: int, plan_fp: str, **values: Any) -> ComboOutcome:
        fields: dict[str, Any] = {
            "rows": 0,
            "rows_skipped": 0,
            "rows_rejected": 0,
            "dataset_path": f"{combo.dir_name}/{DATASET}",
            "duration_s": 0.0,
            "resumed": False,
            "error": "",
            **values,
        }
        fields["error"] = fields["error"][:ERROR_CHARS]
        return cls(
            combo_id=combo.combo_id,
            combo_dir=combo.dir_name,
            methods=combo.name,
            k=combo.k,
            status=status,
            shard=shard,
            plan_fingerprint=plan_fp,
            **fields,
        )

    @classmethod
    def from_row(cls, row: dict[str, str]) -> ComboOutcome:
        """A row read back from a manifest CSV (every value a string; columns an older manifest lacks default)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = row.get(f.name) or ""
            if f.name in ("k", "rows", "rows_skipped", "rows_rejected", "shard"):
                values[f.name] = int(raw or 0)
            elif f.name == "duration_s":
                values[f.name] = float(raw or 0.0)
            elif f.name == "label_flip_share":
                values[f.name] = float(raw) if raw else None
            elif f.name == "resumed":
                values[f.name] = raw == "True"
            elif f.name == "status":
                values[f.name] = Status(raw)
            else:
                values[f.name] = raw
        return cls(**values)

    def as_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["status"] = self.status.value
        if self.label_flip_share is None:
            row["label_flip_share"] = ""
        return row

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def unfinished(self) -> bool:
        """Failed or interrupted: what a rerun has left to do."""
        return self.status in (Status.FAILED, Status.INTERRUPTED)


COLUMNS = [f.name for f in dataclasses.fields(ComboOutcome)]
