"""GPU slots: never more holders than slots, and a dead holder frees its slot."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from augshard.core.gpu import GpuSlot


def test_no_more_holders_than_slots(tmp_path: Path) -> None:
    first, second, third = GpuSlot(tmp_path, 2), GpuSlot(tmp_path, 2), GpuSlot(tmp_path, 2)
    assert first.try_acquire() and first.index == 0
    assert second.try_acquire() and second.index == 1
    assert not third.try_acquire() and not third.held
    first.release()
    assert third.try_acquire() and third.index == 0
    second.release()
    third.release()
    assert not third.held


def test_a_killed_holder_frees_its_slot(tmp_path: Path) -> None:
    code = (
        "import sys, time; from augshard.core.gpu import GpuSlot; s = GpuSlot(sys.argv[1], 1); "
        "assert s.try_acquire(); print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        waiting = GpuSlot(tmp_path, 1)
        assert not waiting.try_acquire()
        child.kill()
        child.wait(timeout=10)
        deadline = time.time() + 5
        while not waiting.try_acquire() and time.time() < deadline:
            time.sleep(0.05)
        assert waiting.held and waiting.index == 0
        waiting.release()
    finally:
        child.kill()
