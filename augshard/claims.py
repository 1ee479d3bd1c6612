"""The work order of a shard, the claim files of work stealing, and the stop flag (signals and a stop file)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from augshard.plan import PlannedCombo
from augshard.procs import pid_alive

# `.claims-<plan>-<pid>-<time>~<host>`; folders of older versions lack the host (they were this host's).
CLAIMS = re.compile(r"^\.claims-([0-9a-f]+)-(\d+)-(\d+)(?:~(.+))?$")


def claims_name(plan_fingerprint: str) -> str:
    """The claims folder of one run, naming the supervisor that owns it, so a rerun can sweep it once it is gone."""
    return f".claims-{plan_fingerprint}-{os.getpid()}-{int(time.time())}~{socket.gethostname()}"


def sweep_claims(log_dir: str | Path) -> list[Path]:
    """Remove the claims folders of supervisors of this host that are gone (killed with -9: no cleanup ran)."""
    removed: list[Path] = []
    folder = Path(log_dir)
    if not folder.is_dir():
        return removed
    host = socket.gethostname()
    for path in sorted(folder.iterdir()):
        m = CLAIMS.match(path.name)
        if m is None or not path.is_dir() or (m.group(4) or host) != host or pid_alive(int(m.group(2))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class ShardInterrupted(BaseException):
    """Raised between chunks once the shard was asked to stop (a BaseException, so no combo handler eats it)."""


def stop_file_path(log_dir: str | Path, plan_fingerprint: str) -> Path:
    """A Dask run's supervisor creates this file to stop the shards of its plan, which it cannot signal."""
    return Path(log_dir) / f".augshard-stop-{plan_fingerprint}"


class StopFlag:
    """Set by SIGTERM (the supervisor) or SIGINT (the terminal) in this process, or by the plan's stop file;
    `check()` raises `ShardInterrupted` once it is set, and the shard stops after its current chunk."""

    def __init__(self, stop_file: Path | None = None) -> None:
        self.stop_file = stop_file
        self._event = threading.Event()

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._event.set())

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        if not self._event.is_set() and self.stop_file is not None and self.stop_file.exists():
            self._event.set()
        return self._event.is_set()

    def check(self) -> None:
        if self.is_set():
            raise ShardInterrupted()


def claim(claims_dir: str, combo_id: str, index: int) -> bool:
    """Take a combo for shard `index` (an exclusive create); a claim of this shard's earlier attempt is its own."""
    path = Path(claims_dir) / combo_id
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            return path.read_text(encoding="utf-8").strip() == str(index)
        except OSError:
            return False
    try:
        os.write(fd, str(index).encode())
    finally:
        os.close(fd)
    return True


def claimed_by(claims_dir: str, index: int) -> set[str]:
    """Combo ids that shard `index` claimed in this run."""
    out = set()
    folder = Path(claims_dir)
    if claims_dir and folder.is_dir():
        for path in folder.iterdir():
            try:
                if path.read_text(encoding="utf-8").strip() == str(index):
                    out.add(path.name)
            except OSError:
                continue
    return out


@dataclass(frozen=True)
class WorkItem:
    combo: PlannedCombo
    home: int  # the shard whose plan list holds it (its cache is that shard's)
    position: int  # in this shard's own list, or -1 for a combo taken from another shard


# Told of each combo another shard took from this shard's list ("moved") or this shard took ("stolen").
Notify = Callable[[str, PlannedCombo], None]


def work_order(
    index: int,
    combos: Sequence[PlannedCombo],
    others: Sequence[tuple[int, Sequence[PlannedCombo]]],
    claims_dir: str,
    stop: StopFlag,
    may_steal: Callable[[PlannedCombo], bool],
    notify: Notify,
) -> Iterator[WorkItem]:
    """The shard's own combos, minus those another shard took; then, with work stealing on (`claims_dir`), combos
    from the tails of the others' lists that `may_steal` allows."""
    for n, pc in enumerate(combos):
        if claims_dir and not stop.is_set() and not claim(claims_dir, pc.combo.combo_id, index):
            notify("moved", pc)
            continue
        yield WorkItem(pc, index, n)
    if not claims_dir:
        return
    # Interleave the others' lists from their ends: what is left there is the smallest work of each shard.
    tails = [[(home, pc) for pc in reversed(lst)] for home, lst in others]
    order = [t[i] for i in range(max(map(len, tails), default=0)) for t in tails if i < len(t)]
    mine = claimed_by(claims_dir, index)  # a retried shard first finishes what it had taken
    order.sort(key=lambda hp: hp[1].combo.combo_id not in mine)
    for home, pc in order:
        if stop.is_set():
            return
        if may_steal(pc) and claim(claims_dir, pc.combo.combo_id, index):
            notify("stolen", pc)
            yield WorkItem(pc, home, -1)
