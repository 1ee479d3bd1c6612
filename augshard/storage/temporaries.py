"""Temporaries and their leftovers, and the one atomic writer (`atomic_file`, `write_atomic`): every temporary file
is created exclusively (never through a link) under an unpredictable name that names its writer, fsynced and renamed
over its target; every staging folder by an exclusive mkdir; and one sweep removes what a dead writer of this host
left, in every name format augshard has used, never following a link."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from augshard.runner.procs import pid_alive

TMP_SUFFIX = ".tmp"
STAGING_SUFFIX = ".staging"  # a folder being filled, renamed into place when whole
ASIDE_SUFFIX = ".old"  # what a folder being replaced is renamed to until the new one is in place
ATTEMPTS = 16  # names drawn before giving up: only a name someone planted is ever taken, and the draw is random
# An ownerless name (an older version's `tempfile.mkdtemp` staging) is a leftover once this old.
OWNERLESS_STALE_S = 3600.0

_OWNER = r"(?P<pid>\d+)~(?P<host>[^~/]+)"
_TOKEN = r"(?P<token>[0-9a-f]{16})"
# Every name a temporary of augshard has had, by kind, newest first (older versions' leftovers are swept too). A
# name without a host is this host's (older versions left it out); one without a pid is swept by age.
LEFTOVERS: dict[str, tuple[re.Pattern[str], ...]] = {
    name: tuple(re.compile(p) for p in patterns)
    for name, patterns in {
        # atomic_file: `.<name>~<pid>~<host>~<token>.tmp`; before: without the token; before that `.<name>.<pid>.tmp`
        "file": (
            rf"^\.(?P<base>.+)~{_OWNER}~{_TOKEN}\.tmp$",
            rf"^\.(?P<base>.+)~{_OWNER}\.tmp$",
            r"^\.(?P<base>.+)\.(?P<pid>\d+)\.tmp$",
        ),  # fmt: skip
        # staging_folder / aside_path: `.<name>~<pid>~<host>~<token>.staging|.old`
        "folder": (rf"^\.(?P<base>.+)~{_OWNER}~{_TOKEN}\.(?:staging|old)$",),
        # a combo being written in `.augshard-tmp/`: `<pid>~<token>~<host>~<combo dir>` (and `.old`)
        "combo": (r"^(?P<pid>\d+)~[^~]+~(?P<host>[^~/]+)~(?P<base>.+)$",),
        # exports before: `.<to>.augshard-export-<pid>~<host>` (staging) and `.<to>.augshard-old-<pid>~<host>`
        "export": (rf"^\.(?P<base>.+)\.augshard-(?:export|old)-{_OWNER}$",),
        # work stealing's claims: `.claims-<plan>-<pid>-<time>~<host>~<token>`, before without token or host
        "claims": (r"^\.claims-[0-9a-f]+-(?P<pid>\d+)-\d+(?:~(?P<host>[^~/]+)(?:~[0-9a-f]+)?)?$",),
        # the ONNX export's staging before: `.<model>.<pid>.<6 hex>`
        "encoder": (r"^\.(?P<base>.+)\.(?P<pid>\d+)\.[0-9a-f]{6}$",),
        # `prepare`'s NLTK data before: `.augshard-staging-<mkdtemp>` (ownerless) and `.<entry>.old-<pid>-<ns>`
        "nltk": (r"^\.augshard-staging-(?P<base>[A-Za-z0-9_]{8})$", r"^\.(?P<base>.+)\.old-(?P<pid>\d+)-\d+$"),
    }.items()
}


@dataclass(frozen=True)
class Leftover:
    """What a temporary's name says of it: its kind, what it stands for, and its writer (pid None: not said)."""

    kind: str
    base: str
    host: str
    pid: int | None


def token() -> str:
    """The unpredictable part of a temporary's name: nobody can plant a link at a name before it is drawn."""
    return secrets.token_hex(8)


def temp_file_name(name: str, host: str | None = None, pid: int | None = None, suffix: str = TMP_SUFFIX) -> str:
    """`.<name>~<pid>~<host>~<token>.tmp`: hidden, naming its writer (so a sweep removes only a dead writer's) and
    drawn at random."""
    return f".{name}~{os.getpid() if pid is None else pid}~{host or socket.gethostname()}~{token()}{suffix}"


def parse_leftover(name: str, kinds: Iterable[str] = LEFTOVERS) -> Leftover | None:
    """The leftover a name is, in any format of `kinds`; None for a name augshard did not make."""
    for kind in kinds:
        for pattern in LEFTOVERS[kind]:
            m = pattern.match(name)
            if m:
                found = m.groupdict()
                pid = found.get("pid")
                host = found.get("host") or socket.gethostname()
                return Leftover(kind, found.get("base") or "", host, int(pid) if pid else None)
    return None


def is_stale(path: Path, leftover: Leftover) -> bool:
    """A leftover of this host whose writer is gone (or, ownerless, older than OWNERLESS_STALE_S)."""
    if leftover.host != socket.gethostname():
        return False  # another machine's process may still be writing it
    if leftover.pid is not None:
        return not pid_alive(leftover.pid)
    try:
        return time.time() - os.lstat(path).st_mtime > OWNERLESS_STALE_S
    except OSError:
        return False


def remove(path: Path) -> None:
    """Remove `path` itself: a link or a file is unlinked, a real folder removed with what is in it (rmtree never
    follows a link inside); no link is ever followed."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def sweep(folder: str | Path, *kinds: str, base: str | None = None, strays: bool = False) -> list[Path]:
    """Remove what dead writers of this host left directly in `folder`: each entry whose name is a temporary of
    `kinds` (all of them when none are given), of `base` only when given, whose writer is gone. `strays`: also any
    entry whose name augshard did not make (in a folder of augshard's own). Links are removed, never followed."""
    removed: list[Path] = []
    root = Path(folder)
    try:
        entries = sorted(root.iterdir()) if root.is_dir() and not root.is_symlink() else []
    except OSError:
        return removed
    for path in entries:
        leftover = parse_leftover(path.name, kinds or LEFTOVERS)
        mine = leftover is not None and (base is None or leftover.base == base)
        if (leftover is None and strays) or (mine and is_stale(path, leftover)):
            remove(path)
            removed.append(path)
    return removed


def create_file(path: Path) -> tuple[Path, int]:
    """A new temporary file beside `path`, open for writing: created with O_CREAT | O_EXCL | O_NOFOLLOW under a
    fresh random name, so an entry planted at a name (a link to elsewhere) is never followed, and another name is
    drawn instead."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(ATTEMPTS):
        tmp = path.with_name(temp_file_name(path.name))
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary name", str(path))


def staging_folder(path: Path, suffix: str = STAGING_SUFFIX) -> Path:
    """A new empty folder beside `path` (`.<name>~<pid>~<host>~<token>.staging`), made by an exclusive mkdir: a
    planted entry at a name is never followed nor used; another name is drawn."""
    for _ in range(ATTEMPTS):
        folder = path.with_name(temp_file_name(path.name, suffix=suffix))
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free staging name", str(path))


def aside_path(path: Path) -> Path:
    """A fresh unpredictable name beside `path` to rename it to while its replacement moves in."""
    return path.with_name(temp_file_name(path.name, suffix=ASIDE_SUFFIX))


def parse_temp_file_name(name: str) -> tuple[str, int] | None:
    """(host, pid) of a temporary file's writer, in any format it has had (`temporaries.LEFTOVERS`); else None."""
    found = parse_leftover(name, ("file",))
    return None if found is None or found.pid is None else (found.host, found.pid)


def stale_temp_file(path: Path) -> bool:
    """A temporary file of this writer whose process (on this host) is gone: left by a crash or a full disk."""
    found = parse_leftover(path.name, ("file",))
    return found is not None and is_stale(path, found)


def sweep_temp_files(folder: str | Path) -> list[Path]:
    """Remove the stale temporary files (`stale_temp_file`) and staging folders directly in `folder`."""
    return sweep(folder, "file", "folder")


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w", **open_args: Any) -> Iterator[IO[Any]]:
    """Write `path` whole or not at all: the body writes a temporary file in the same folder (created exclusively
    under a random name, never through a link: `temporaries.create_file`), which is fsynced and renamed over
    `path`; on any failure (a full disk, an exception, a signal) the temporary is removed."""
    path = Path(path)
    tmp: Path | None = None
    try:
        tmp, fd = create_file(path)
        try:
            fh = os.fdopen(fd, mode, **open_args)
        except BaseException:
            os.close(fd)
            raise
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None  # a full disk, said of the file it hit
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """`data` into `path` through `atomic_file` (text as UTF-8)."""
    if isinstance(data, bytes):
        with atomic_file(path, "wb") as fh:
            fh.write(data)
    else:
        with atomic_file(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(data)


def move_folder_into_place(staging: Path, target: Path, aside: Path) -> None:
    """`staging` (complete, on the same file system) becomes `target` by one rename; an earlier `target` is first
    renamed to `aside`, put back if the rename fails, and removed once the new one is in place."""
    if not target.exists():
        staging.rename(target)
        return
    target.rename(aside)
    try:
        staging.rename(target)
    except BaseException:
        aside.rename(target)
        raise
    finally:
        remove(aside)
