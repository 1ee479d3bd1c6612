"""What the report knows of one combo: its manifest row, its meta.json, a sample of its similarities and examples
(shared by the page, `report.py`, and its charts, `charts.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from augshard.storage.meta import ComboMeta
from augshard.storage.outcome import ComboOutcome, Status


@dataclass
class ComboReport:
    outcome: ComboOutcome
    meta: ComboMeta | None = None
    problem: str = ""  # why an ok combo's files could not be read (`verify` says more)
    similarities: list[float] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.outcome.methods

    @property
    def k(self) -> int:
        return self.outcome.k

    @property
    def rows(self) -> int:
        return self.outcome.rows

    @property
    def status(self) -> str:
        """What the page shows (and its CSS class): the manifest's status, or `unreadable`."""
        return "unreadable" if self.problem else self.outcome.status.value

    @property
    def ok(self) -> bool:
        return not self.problem and self.outcome.status is Status.OK

    @property
    def unavailable(self) -> bool:
        return self.outcome.status is Status.UNAVAILABLE

    @property
    def failed(self) -> bool:
        return self.outcome.status is Status.FAILED

    @property
    def ran(self) -> bool:
        """It ran to an end of its own (complete or failed), so its duration means something."""
        return self.outcome.status in (Status.OK, Status.FAILED)

    @property
    def error(self) -> str:
        return self.problem or self.outcome.error

    @property
    def acceptance(self) -> float | None:
        """Accepted variants over candidates drawn."""
        candidates = self.meta.candidates if self.meta else 0
        return self.rows / candidates if candidates else None
