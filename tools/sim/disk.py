"""An in-memory file system (storage.files.FileSystem) that can lose power.

What counts as durable, as on a real disk after a power cut:

- a file's bytes: only what `AppendFile.sync()` covered (fdatasync: everything
  written to that file through any handle, and its size);
- a name: a created, removed or replaced file name only after `sync_dir()` of
  its directory (a removed file may come back, with its synced bytes);
- `write_atomic()`: durable when it returns (write, fsync, rename, fsync dir);
- directories made by `make_dir()`: durable at once (not modelled).

`crash(rng)` returns the file system a restart would find after a power cut
now: every unsynced byte is lost, except that the disk may have written back
part of a file's unsynced writes in order, the last one reached torn (a
random prefix of it, possibly followed by zero bytes where the size reached
the disk and the data did not); or, per the issue's simplest model, only the
last unsynced write, torn, right after the synced part. A name whose creation
or removal was never dir-synced may be either way. Writes are never reordered
within a file (no holes). `kill()` is a process crash instead: the OS keeps
everything written.

Everything is behind one lock: a sync may run on another thread. `before`,
if set, is called (outside the lock, so it may block or take a crash image)
before every operation that changes something: a test can crash at any
moment, mid-sync included, or hold a sync back.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path


class _Inode:
    """One file's bytes: what reads see, and what is on the disk for sure."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)
        self.synced = bytes(data)
        # Changes since the last sync, in order: ("append", bytes) or ("truncate", size).
        self.pending: list[tuple[str, bytes | int]] = []

    def image(self, rng: random.Random) -> bytes:
        """The bytes found after a power cut."""
        if not self.pending:
            return self.synced
        mode = rng.choice(("lose", "lose", "prefix", "prefix", "last"))
        if mode == "last" and all(kind == "append" for kind, _ in self.pending):
            ops = [self.pending[-1]]
        elif mode == "lose":
            return self.synced
        else:
            ops = self.pending[: rng.randint(1, len(self.pending))]
        out = bytearray(self.synced)
        for index, (kind, arg) in enumerate(ops):
            last = index == len(ops) - 1
            if kind == "truncate":
                assert isinstance(arg, int)
                if not last or rng.random() < 0.5:
                    _resize(out, arg)
                continue
            assert isinstance(arg, bytes)
            if not last:
                out += arg
                continue
            kept = rng.randint(0, len(arg))
            out += arg[:kept]
            if kept < len(arg) and rng.random() < 0.5:
                out += bytes(len(arg) - kept)
        return bytes(out)


def _resize(data: bytearray, size: int) -> None:
    if size < len(data):
        del data[size:]
    else:
        data += bytes(size - len(data))


class LossyAppendFile:
    def __init__(self, fs: LossyFileSystem, path: Path, inode: _Inode) -> None:
        self._fs = fs
        self._path = path
        self._inode = inode
        self.closed = False

    @property
    def size(self) -> int:
        return len(self._inode.data)

    def _op(self, name: str) -> None:
        if self.closed:
            raise ValueError(f"{name} on a closed file: {self._path}")
        self._fs._before(name, self._path)

    def append(self, data: bytes) -> None:
        self._op("append")
        with self._fs.lock:
            self._inode.data += data
            self._inode.pending.append(("append", bytes(data)))

    def sync(self) -> None:
        self._op("sync")
        with self._fs.lock:
            self._inode.synced = bytes(self._inode.data)
            self._inode.pending.clear()
            self._fs.syncs += 1

    def truncate(self, size: int) -> None:
        self._op("truncate")
        with self._fs.lock:
            _resize(self._inode.data, size)
            self._inode.pending.append(("truncate", size))

    def close(self) -> None:
        self.closed = True


class LossyFileSystem:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.dirs: set[Path] = set()
        self.files: dict[Path, _Inode] = {}  # the names as the OS sees them
        self.synced_names: dict[Path, _Inode] = {}  # the names as the disk has them
        self.syncs = 0  # AppendFile.sync() calls
        self.dir_syncs = 0
        # Called as before(operation, path) before every change (see the module doc).
        self.before: Callable[[str, Path], None] | None = None

    def _before(self, operation: str, path: Path) -> None:
        if self.before is not None:
            self.before(operation, path)

    def _parent_exists(self, path: Path) -> None:
        if path.parent not in self.dirs:
            raise FileNotFoundError(f"no directory {path.parent}")

    # -- the FileSystem protocol ------------------------------------------

    def read(self, path: Path) -> bytes:
        with self.lock:
            if path in self.dirs:
                raise IsADirectoryError(str(path))
            inode = self.files.get(path)
            if inode is None:
                raise FileNotFoundError(str(path))
            return bytes(inode.data)

    def open_append(self, path: Path) -> LossyAppendFile:
        self._before("open_append", path)
        with self.lock:
            self._parent_exists(path)
            if path in self.dirs:
                raise IsADirectoryError(str(path))
            inode = self.files.setdefault(path, _Inode())
            return LossyAppendFile(self, path, inode)

    def list_dir(self, directory: Path) -> list[str]:
        with self.lock:
            if directory not in self.dirs:
                raise FileNotFoundError(str(directory))
            names = [p.name for p in [*self.files, *self.dirs] if p.parent == directory]
            return sorted(n for n in names if n)

    def make_dir(self, directory: Path) -> None:
        with self.lock:
            if directory in self.files:
                raise FileExistsError(str(directory))
            self.dirs.update([directory, *directory.parents])

    def remove(self, path: Path) -> None:
        self._before("remove", path)
        with self.lock:
            self.files.pop(path, None)

    def sync_dir(self, directory: Path) -> None:
        self._before("sync_dir", directory)
        with self.lock:
            if directory not in self.dirs:
                raise FileNotFoundError(str(directory))
            for path in {*self.files, *self.synced_names}:
                if path.parent == directory:
                    if path in self.files:
                        self.synced_names[path] = self.files[path]
                    else:
                        del self.synced_names[path]
            self.dir_syncs += 1

    def hold_lock(self, path: Path) -> None:
        """One simulated process at a time: nothing to lock."""
        return None

    def write_atomic(self, path: Path, data: bytes) -> None:
        self._before("write_atomic", path)
        with self.lock:
            self._parent_exists(path)
            inode = _Inode(data)
            self.files[path] = self.synced_names[path] = inode

    # -- damage and crashes --------------------------------------------------

    def put(self, path: Path, data: bytes) -> None:
        """Replace a file's bytes, durably, behind the log's back (damage, a test's edit)."""
        with self.lock:
            self._parent_exists(path)
            inode = self.files.get(path)
            if inode is None:
                self.files[path] = self.synced_names[path] = _Inode(data)
            else:
                inode.data = bytearray(data)
                inode.synced = bytes(data)
                inode.pending.clear()

    def crash(self, rng: random.Random) -> LossyFileSystem:
        """What a restart finds after a power cut now (this one is left as it was)."""
        with self.lock:
            after = LossyFileSystem()
            after.dirs = set(self.dirs)
            images: dict[int, bytes] = {}
            for path in sorted({*self.files, *self.synced_names}):
                now, synced = self.files.get(path), self.synced_names.get(path)
                # A name never dir-synced since it changed may have reached the disk, or not.
                inode = synced if now is synced or rng.random() < 0.5 else now
                if inode is None:
                    continue
                if id(inode) not in images:
                    images[id(inode)] = inode.image(rng)
                after.files[path] = after.synced_names[path] = _Inode(images[id(inode)])
            return after

    def kill(self) -> LossyFileSystem:
        """What a restart finds after the process died: the OS kept every write,
        but what was never synced is still only in its cache (a power cut later
        can lose it)."""
        with self.lock:
            after = LossyFileSystem()
            after.dirs = set(self.dirs)
            copies: dict[int, _Inode] = {}

            def copy(inode: _Inode) -> _Inode:
                if id(inode) not in copies:
                    twin = _Inode(bytes(inode.data))
                    twin.synced, twin.pending = inode.synced, list(inode.pending)
                    copies[id(inode)] = twin
                return copies[id(inode)]

            for path, inode in self.files.items():
                after.files[path] = copy(inode)
            for path, inode in self.synced_names.items():
                after.synced_names[path] = copy(inode)
            return after

    def unsynced(self) -> bool:
        """Would a power cut now lose anything (bytes or names)?"""
        with self.lock:
            return self.files != self.synced_names or any(i.pending for i in self.files.values())
