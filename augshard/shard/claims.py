"""The work order of a shard and the claim files of work stealing."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from augshard.core.planning import PlannedCombo
from augshard.runner.stopping import StopFlag
from augshard.storage.temporaries import sweep, token


def claims_name(plan_fingerprint: str) -> str:
    """The claims folder of one run, `.claims-<plan>-<pid>-<time>~<host>~<token>`: naming the supervisor that owns
    it, so a rerun can sweep it once it is gone, and drawn at random, so nobody can plant an entry there first."""
    return f".claims-{plan_fingerprint}-{os.getpid()}-{int(time.time())}~{socket.gethostname()}~{token()}"


def sweep_claims(log_dir: str | Path) -> list[Path]:
    """Remove the claims folders of supervisors of this host that are gone (killed with -9: no cleanup ran), in
    every name they have had (`temporaries.LEFTOVERS`); a link there is removed, never followed."""
    return sweep(log_dir, "claims")


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
