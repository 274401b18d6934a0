"""Advisory file locks: one process trains a given record at a time, one sweep uses a results folder.

Locks are `flock`s on hidden files beside what they guard; the operating system releases them when
the holder exits, however it exits, so a killed process never leaves a folder locked. Where `fcntl`
does not exist (Windows) nothing is locked.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from stabench.errors import StabenchError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


@contextlib.contextmanager
def exclusive(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed) for the block; if another process holds it,
    raise a StabenchError saying `busy` and that process's pid; a lock that cannot be made at all (a file
    where its folder goes, a folder where it goes, a name too long) is a StabenchError too."""
    if fcntl is None:
        yield
        return
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as error:
        raise StabenchError(_cannot_lock(path, error)) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise StabenchError(f"{busy} (pid {holder})") from None
        except OSError as error:  # a file system without locks
            raise StabenchError(_cannot_lock(path, error)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def _cannot_lock(path: Path, error: OSError) -> str:
    if isinstance(error, FileExistsError):  # making the folder met a file of its name
        return f"cannot lock `{path}`: `{error.filename}` is a file, not a folder"
    return f"cannot lock `{path}`: {error.strerror or error}"
