"""Where a running combo stands, told from inside its chunks: rows done (settled rows whole, rows still being worked
on in part), at most every `PROGRESS_MIN_S` of work, and after every chunk."""

from __future__ import annotations

import time
from collections.abc import Callable

from augshard.events.stream import AUGMENTING, LOADING, SCORING

PROGRESS_MIN_S = 1.0  # inside a chunk, progress is told at most this often (and after every chunk)
SCORING_SHARE = 0.5  # of a round's work, when the scorer tells its progress (see ChunkProgress.scoring_share)

# Told where the combo stands: (rows done, rows in all, phase); see `ChunkProgress`.
ProgressFn = Callable[[int, int, str], None]


class ChunkProgress:
    """The rows counter of a combo, moving inside a chunk and never backwards.

    Each row of a chunk may take up to `budget` attempts. The chunk's share done is one minus the attempts its rows
    may still take over all it could take: a row that needs no more attempts counts whole, and the attempts of a
    round count as their calls go through the methods. The counter thus moves with every slice of calls, jumps when
    a round's rows settle, and reaches the chunk's end when it is written. Told to `report` at most every
    `min_interval` s inside a chunk (a new phase, and the building of a method, `loading`, at once); the chunk's end
    goes to `chunk_end` (done, total).
    """

    def __init__(
        self,
        report: ProgressFn | None,
        total: int,
        chunk_end: Callable[[int, int], None] | None = None,
        min_interval: float = PROGRESS_MIN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.report, self.total, self.chunk_end = report, total, chunk_end
        self.min_interval, self.clock = min_interval, clock
        self.start = self.size = 0
        self.potential = self.left = self.round_left = 0
        self.round_attempts = 0
        self.shown = 0
        self.last = clock()
        self.phase = ""
        # The share of a round's work that is scoring, when the scorer tells how its scoring goes (an encoder at
        # hundreds of texts/s is about as slow as cheap methods); 0: a round's calls are all of it.
        self.scoring_share = 0.0

    def chunk(self, start: int, size: int, attempts: int) -> None:
        """A chunk of `size` rows from row `start` begins; its rows may draw `attempts` candidates in all."""
        self.start, self.size = start, size
        self.potential = self.left = self.round_left = attempts

    def round(self, left: int, attempts: int) -> None:
        """A round begins: its rows may take `left` attempts in all (before this round's), it makes `attempts`."""
        self.round_left, self.round_attempts = left, attempts
        self.left = min(self.left, left)

    def calls(self, fraction: float, phase: str = AUGMENTING) -> None:
        """`fraction` of this round's calls went through every method."""
        self._advance((1.0 - self.scoring_share) * min(1.0, fraction), phase)

    def scored(self, fraction: float) -> None:
        """`fraction` of this round's candidates are scored (when the scorer tells its progress)."""
        self._advance(1.0 - self.scoring_share + self.scoring_share * min(1.0, fraction), SCORING)

    def _advance(self, share: float, phase: str) -> None:
        self.left = min(self.left, self.round_left - int(self.round_attempts * share))
        self._tell(phase)

    def settled(self, left: int, phase: str = AUGMENTING) -> None:
        """The round is judged: the rows still pending may take `left` more attempts."""
        self.left = min(self.left, left)
        self._tell(phase)

    def loading(self) -> None:
        self._tell(LOADING, force=True)

    def chunk_done(self) -> None:
        self.shown = self.start + self.size
        self.last, self.phase = self.clock(), ""
        if self.chunk_end is not None:
            self.chunk_end(self.shown, self.total)

    def _tell(self, phase: str, force: bool = False) -> None:
        if self.report is None:
            return
        share = 1.0 - self.left / self.potential if self.potential else 0.0
        rows = self.start + min(max(0, self.size - 1), int(self.size * share))  # the chunk ends when written
        self.shown = max(self.shown, rows)
        since = self.clock() - self.last
        # A new phase is told at once (the heartbeat repeats the last word), unless phases flicker by.
        if force or since >= self.min_interval or (phase != self.phase and since >= self.min_interval / 10):
            self._emit(self.shown, phase)

    def _emit(self, rows: int, phase: str) -> None:
        self.last, self.phase = self.clock(), phase
        if self.report is not None:
            self.report(rows, self.total, phase)
