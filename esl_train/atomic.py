"""Atomic file output: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path in the target's folder; on success it replaces `path` in one rename.

    A crash or an exception leaves the old file (or none), never a half-written one. A failed write comes out as an
    OSError naming `path` (not the temp file), also where the writer raised something else: torch.save reports a
    full disk as RuntimeError("PytorchStreamWriter failed writing file ...")."""
    path = Path(path)
    tmp = failed = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        failed = OSError(e.errno, e.strerror or str(e), str(path))
    except RuntimeError as e:
        if not _failed_write(e):  # someone else's error
            raise
        failed = OSError(errno.EIO, "the file could not be written (disk full or a write error)", str(path))
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
    if failed:
        raise failed  # outside the handler: the writer's frames (and open files) are not kept alive as its context


# what torch.save (PyTorch's stream writer) and HDF5 say when a write fails
WRITE_FAILED = ("PytorchStreamWriter failed writing", "file write failed", "unexpected pos")


def _failed_write(e: BaseException) -> bool:
    """A RuntimeError that comes from a failed write, in it or in the exceptions it was raised during."""
    while e is not None:
        if any(w in str(e) for w in WRITE_FAILED):
            return True
        e = e.__context__
    return False


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
