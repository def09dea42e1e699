"""A run folder held by one process at a time: an exclusive lock naming its holder, and the clean-up of temp files
that a killed run left behind (atomic writes that never got their rename)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError

LOCK = ".lock"


@contextmanager
def _held(lock_file: Path, refusal, mode: int = 0o644):
    """An exclusive lock on `lock_file` for the block (released when its descriptor closes); `refusal(fd)` is the
    UsageError raised at once when another process holds it."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, mode)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise refusal(fd) from None
        yield fd
    finally:
        os.close(fd)


@contextmanager
def locked(folder: Path):
    """Hold `folder` for this process; a second trainer on the same folder gets a one-line error."""
    folder.mkdir(parents=True, exist_ok=True)

    def refusal(fd):
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        return UsageError(f"{folder} is in use by process {holder}; wait for it to finish, or pick another --out")

    with _held(folder / LOCK, refusal) as fd:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield folder


@contextmanager
def writing(folder: Path, flag: str):
    """Hold the output folder `folder` while a command fills it, so that two commands never mix their files in it;
    the lock lives in the temp folder, keyed by the folder's path, so nothing is created before there is output."""
    key = hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:16]

    def refusal(fd):
        return UsageError(f"{folder} is being written by another command; wait for it to finish, or pass another "
                          f"{flag}")

    with _held(Path(tempfile.gettempdir()) / f"esl-snn-{key}.lock", refusal, 0o666):
        yield folder


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete `.*.tmp` files of atomic writes that a killed process never renamed (we hold the lock)."""
    stale = sorted(folder.glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
