"""What crosses between the supervisor and a shard: the shard's job and its result, each also as JSON (data, never
pickle, for a worker on another machine), and what the shards of a run came to."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from augshard.core.combos import Combo
from augshard.core.config import RunConfig
from augshard.core.planning import PlannedCombo
from augshard.methods.spec import MethodSpec
from augshard.storage.outcome import ComboOutcome

JOB_VERSION = 1  # of ShardJob.to_json


@dataclass(frozen=True)
class ShardJob:
    cfg: RunConfig
    index: int
    num_shards: int
    combos: tuple[PlannedCombo, ...]
    specs: tuple[MethodSpec, ...]
    plan_fingerprint: str
    input_sha: str
    torch_threads: int = 1
    # Written into this shard's manifest so a merge lists them; only shard 0 carries them.
    unavailable: tuple[ComboOutcome, ...] = ()
    # Work stealing (a run of every shard at once): the other shards' (index, combo list), and the folder where a
    # shard claims a combo before starting it. A shard that runs out of work takes the tails of the others' lists.
    others: tuple[tuple[int, tuple[PlannedCombo, ...]], ...] = ()
    claims_dir: str = ""

    def to_json(self) -> str:
        """The job as data (JSON), for a worker that turns it back into a call of its own `run_shard`: nothing in
        it can name code to run, unlike a pickle (see executors.DaskExecutor)."""
        return json.dumps(
            {
                "version": JOB_VERSION,
                "config": dataclasses.asdict(self.cfg),
                "index": self.index,
                "num_shards": self.num_shards,
                "combos": [_combo_doc(pc) for pc in self.combos],
                "specs": [dataclasses.asdict(spec) for spec in self.specs],
                "plan_fingerprint": self.plan_fingerprint,
                "input_sha": self.input_sha,
                "torch_threads": self.torch_threads,
                "unavailable": [_outcome_doc(o) for o in self.unavailable],
                "others": [[i, [_combo_doc(pc) for pc in lst]] for i, lst in self.others],
                "claims_dir": self.claims_dir,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ShardJob:
        """A job described by `to_json`; ValueError for anything else (wrong kinds, unknown settings)."""

        def planned(doc: Any) -> PlannedCombo:
            methods, cost, fingerprint = doc
            if not (isinstance(methods, list) and all(isinstance(m, str) for m in methods)):
                raise ValueError("a combo's methods must be a list of method ids")
            return PlannedCombo(Combo(tuple(methods)), float(cost), str(fingerprint))

        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("version") != JOB_VERSION:
                raise ValueError(f"not an augshard shard job of version {JOB_VERSION}")
            config = dict(doc["config"])
            for key, value in config.items():  # JSON lists of RunConfig's tuples (it holds no list)
                if isinstance(value, list):
                    config[key] = tuple(value)
            return cls(
                cfg=RunConfig(**config),
                index=int(doc["index"]),
                num_shards=int(doc["num_shards"]),
                combos=tuple(planned(c) for c in doc["combos"]),
                specs=tuple(MethodSpec(**spec) for spec in doc["specs"]),
                plan_fingerprint=str(doc["plan_fingerprint"]),
                input_sha=str(doc["input_sha"]),
                torch_threads=int(doc["torch_threads"]),
                unavailable=tuple(ComboOutcome.from_row(row) for row in doc["unavailable"]),
                others=tuple((int(i), tuple(planned(c) for c in lst)) for i, lst in doc["others"]),
                claims_dir=str(doc["claims_dir"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an augshard shard job: {type(exc).__name__}: {exc}") from None


@dataclass
class ShardResult:
    index: int
    outcomes: list[ComboOutcome] = field(default_factory=list)
    log_path: str = ""
    manifest_path: str = ""
    duration_s: float = 0.0

    @property
    def failed(self) -> list[ComboOutcome]:
        return [o for o in self.outcomes if o.unfinished]

    def to_json(self) -> str:
        return json.dumps(
            {
                "index": self.index,
                "outcomes": [_outcome_doc(o) for o in self.outcomes],
                "log_path": self.log_path,
                "manifest_path": self.manifest_path,
                "duration_s": self.duration_s,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ShardResult:
        try:
            doc = json.loads(text)
            return cls(
                index=int(doc["index"]),
                outcomes=[ComboOutcome.from_row(row) for row in doc["outcomes"]],
                log_path=str(doc["log_path"]),
                manifest_path=str(doc["manifest_path"]),
                duration_s=float(doc["duration_s"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not an augshard shard result: {type(exc).__name__}: {exc}") from None


def _combo_doc(pc: PlannedCombo) -> list[Any]:
    return [list(pc.combo.methods), pc.cost, pc.fingerprint]


def _outcome_doc(o: ComboOutcome) -> dict[str, str]:
    """A manifest row as strings, the way `ComboOutcome.from_row` reads a manifest."""
    return {k: "" if v is None else str(v) for k, v in o.as_row().items()}


@dataclass
class RunOutcome:
    """What the shards of a run came to."""

    results: dict[int, ShardResult] = field(default_factory=dict)
    crashed: dict[int, str] = field(default_factory=dict)  # shard -> why its worker died (after the last retry)
    signum: int | None = None  # the first signal received, if any

    @property
    def interrupted(self) -> bool:
        return self.signum is not None
