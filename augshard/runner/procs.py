"""Facts and limits of processes: is a pid alive, this process's peak memory, thread caps, dying with the parent."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def peak_rss_mb() -> int:
    """This process's peak resident memory so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10))


def cap_threads(n: int) -> None:
    """N shards on C cores get C/N threads each. torch and the BLAS libraries read these variables when they
    start their pools, so nothing heavy is imported here; a torch that is already loaded is told directly."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def die_with_parent(parent: int | None = None, ancestor: int | None = None) -> None:
    """Linux: the kernel sends SIGKILL to this process when its parent dies, so no shard is ever orphaned.

    A parent that died before this process could ask (while it was starting up) is not the parent any more:
    given its pid, the process then ends at once instead of running on as an orphan. `ancestor` is the same check
    for a process started by a server of that ancestor (a forkserver's child): its parent must be the ancestor or
    a child of it."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)
    if ancestor is not None:
        grandparent = parent_of(os.getppid())
        if os.getppid() != ancestor and grandparent not in (ancestor, None):
            os._exit(1)


def parent_of(pid: int) -> int | None:
    """The parent of a process of this host, from /proc (None where there is no /proc or no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and parentheses: fields follow the last


@contextmanager
def environ_kept(names: Iterable[str]) -> Iterator[None]:
    """The environment variables `names` as they were before the block, again when it ends."""
    before = {k: os.environ.get(k) for k in names}
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
