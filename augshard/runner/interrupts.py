"""Commands that stop on SIGTERM and SIGHUP (SLURM's scancel, `timeout`, a closed terminal) as they stop on Ctrl-C:
the signal raises an exception in the main thread, so every `finally` and `with` runs (locks, temporary files,
worker pools) and the command exits 128 + the signal."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """Raised by SIGTERM or SIGHUP inside `unwinding_on_signals` (a BaseException, as KeyboardInterrupt: no handler
    of ordinary errors eats it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def unwinding_on_signals(raises: type[Interrupted] = Interrupted) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `raises(signum)`, once: a second signal while the first unwinds
    does not cut the clean-up short. The previous handlers are back after the block. Off the main thread (where no
    handler can be installed) the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        if not raised:
            raised.append(signum)
            raise raises(signum)

    previous = {signum: signal.signal(signum, stop) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
