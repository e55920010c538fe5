"""The file layer under the log: the only place that touches the disk.

Small on purpose (append, sync, read, truncate, plus a few directory
operations), so a test can put a layer underneath that loses every write not
yet synced and tears the last one, the way a power cut does.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Protocol


class AppendFile(Protocol):
    """One file opened for appending."""

    @property
    def size(self) -> int: ...

    def append(self, data: bytes) -> None: ...

    def sync(self) -> None:
        """Make everything appended so far durable (fdatasync)."""

    def truncate(self, size: int) -> None: ...

    def close(self) -> None: ...


class HeldLock(Protocol):
    """An exclusive lock on a file, released by `close`."""

    def close(self) -> None: ...


class FileSystem(Protocol):
    def read(self, path: Path) -> bytes: ...

    def open_append(self, path: Path) -> AppendFile:
        """Open (creating if missing) for appending at the end."""

    def list_dir(self, directory: Path) -> list[str]: ...

    def make_dir(self, directory: Path) -> None: ...

    def remove(self, path: Path) -> None: ...

    def sync_dir(self, directory: Path) -> None:
        """Make created, renamed and removed names in `directory` durable."""

    def hold_lock(self, path: Path) -> HeldLock | None:
        """Hold an exclusive lock on `path` until the returned object is closed
        (or the process ends); None when the layer has nothing to lock. Raises
        BlockingIOError if another process holds it."""
        ...

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Replace `path` with `data` all at once: write, fsync, rename, fsync the directory."""


class OsAppendFile:
    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._size = os.fstat(self._fd).st_size

    @property
    def size(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self._size = size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OsFileSystem:
    """The real disk."""

    def read(self, path: Path) -> bytes:
        return path.read_bytes()

    def open_append(self, path: Path) -> AppendFile:
        return OsAppendFile(path)

    def list_dir(self, directory: Path) -> list[str]:
        return sorted(os.listdir(directory))

    def make_dir(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def sync_dir(self, directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_atomic(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        self.sync_dir(path.parent)

    def hold_lock(self, path: Path) -> HeldLock:
        handle = open(path, "a+b")  # noqa: SIM115  (held open for the process's life)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise
        return handle
