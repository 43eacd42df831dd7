"""Durable small files and exclusive locks: the one way kafkalake writes state and serializes writers.

Every state file (the schema index, a stream's status or stop file, a job's report) is replaced
with :func:`atomic_write`: a reader sees the old or the new content, never half a file, and
after a crash (even of the machine) the new content is there once the call returned. Every
one-writer-at-a-time rule on local state (a stream's driver, the registry's writers) is an
:func:`exclusive_lock`, released by the kernel when its holder dies, even by
``kill -9``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["FileLock", "LockHeld", "atomic_write", "exclusive_lock", "fsync_dir", "write_json_atomic"]


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``: temp file in the same folder, fsync, rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_dir(path.parent)


def write_json_atomic(
    path: Path, doc: Any, *, indent: int | None = 2, default: Callable[[Any], Any] | None = None
) -> None:
    """:func:`atomic_write` of ``doc`` as JSON (sorted keys, a final newline)."""
    atomic_write(path, json.dumps(doc, indent=indent, sort_keys=True, default=default) + "\n")


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is what it wrote into the lock file (its pid)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is locked by {holder or 'another process'}")
        self.path = path
        self.holder = holder


class FileLock:
    """An exclusive ``flock`` held until :meth:`close` (or the holder's death)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def write_holder(self, text: str) -> None:
        """Record who holds the lock (a pid) in the lock file, for the message of the next one."""
        assert self._fd is not None, "lock already released"
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode("utf-8"), 0)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def exclusive_lock(path: Path, *, wait: bool = True) -> FileLock:
    """Lock ``path`` (a lock file, created if missing, or an existing folder: no file left behind).

    ``wait=False`` raises :class:`LockHeld` at once when another process holds it.
    """
    if path.is_dir():
        fd = os.open(path, os.O_RDONLY)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        holder = b""
        with contextlib.suppress(OSError):
            holder = os.pread(fd, 200, 0)
        os.close(fd)
        raise LockHeld(path, holder.decode("utf-8", errors="replace").strip()) from None
    except BaseException:
        os.close(fd)
        raise
    return FileLock(path, fd)
