"""A node's storage: its data directory (or memory, with --in-memory).

`<data-dir>/` holds:

- `identity.json`: {"node", "role", "incarnation"}, created with the directory.
  A new directory (or a wiped one) gets a new random incarnation, which is how
  the master tells a node that lost its disk from one that did not.
- `state.json`: small state, replaced atomically (write, fsync, rename, fsync
  the directory): the cluster this node belongs to, the highest epoch it has
  seen, on a secondary its sync epoch; and, kept here, how long the log was
  at the last start (`opened_seq`: a log found shorter lost files),
  whether the log was cut short and not yet made whole again (`log_lost`),
  and on a master whether a recovery is under way (`recovering`).
- `membership.json` (master): each secondary's id, URL and incarnation.
- `log/`: the log's segment files (storage.segments).

Durability: `append()` writes to the OS at once; with `fsync="always"` a
group commit (storage.group_commit) then syncs in the background and reports
the durable prefix to `on_durable`; with `fsync="never"` (and in memory) an
entry counts as durable as soon as it is written.

Opening a store on another disk, or without the sync thread: `open_store`
takes any `storage.files.FileSystem` as `fs` (an in-memory one, say, like
tests/support/lossy_fs.py; `data_dir` is then a path inside it), a
`syncer` factory (storage.group_commit: `GroupCommit` by default, or
`InlineSyncer.factory(schedule)` to sync when the caller's loop says so), and
`tokens`, the source of the random incarnation (default secrets.token_hex).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from replog.core.entry import Entry
from replog.storage.files import FileSystem, HeldLock, OsFileSystem
from replog.storage.group_commit import GroupCommit, Syncer, SyncerFactory
from replog.storage.segments import DEFAULT_SEGMENT_BYTES, Replay, SegmentLog

FSYNC_MODES = ("always", "never")
IDENTITY = "identity.json"
STATE = "state.json"
# The state's fields and their types (None: absent or null).
STATE_FIELDS: dict[str, type] = {
    "cluster_id": str,
    "epoch": int,
    "stream_epoch": int,
    "sync_epoch": int,
    "opened_seq": int,
    "log_lost": bool,
    "recovering": bool,
}
LOG_DIR = "log"
# Held (flock) by the running node: one process per data directory.
LOCK = ".lock"


class StoreError(Exception):
    """The data directory cannot be used; the node must not start."""


@dataclass(frozen=True, slots=True)
class Identity:
    node: str
    role: str
    incarnation: str


# A random token of `nbytes` bytes, as hex (secrets.token_hex by default).
Tokens = Callable[[int], str]


def new_incarnation(tokens: Tokens = secrets.token_hex) -> str:
    return tokens(8)


def _ignore_durable(seq: int) -> None:
    pass


def _raise(exc: BaseException) -> None:
    raise exc


class NodeStore:
    """The memory-only store; `DiskStore` adds the files."""

    kind = "memory"
    data_dir: Path | None = None

    def __init__(self, identity: Identity, fresh: bool = True) -> None:
        self.identity = identity
        # No identity was found: a new (or wiped) data directory.
        self.fresh = fresh
        self.replay = Replay()
        self.durable_seq = 0
        self.on_durable: Callable[[int], None] = _ignore_durable
        self.on_failure: Callable[[BaseException], None] = _raise
        self._docs: dict[str, dict] = {}
        self.state: dict = {}

    def update_state(self, **fields: object) -> None:
        """Change some state fields (None removes one) and persist the whole state."""
        state = {**self.state, **fields}
        state = {key: value for key, value in state.items() if value is not None}
        if state != self.state:
            self.save(STATE, state)
            self.state = state

    def load(self, name: str) -> dict | None:
        return self._docs.get(name)

    def save(self, name: str, doc: dict) -> None:
        self._docs[name] = dict(doc)

    def append(self, entries: Sequence[Entry]) -> None:
        if entries:
            self.durable_seq = entries[-1].seq
            self.on_durable(self.durable_seq)

    def truncate(self, keep: int) -> None:
        self.durable_seq = min(self.durable_seq, keep)

    def reset(self, entries: Sequence[Entry]) -> None:
        self.durable_seq = len(entries)

    def sync_stats(self) -> dict | None:
        return None

    def observe_syncs(self, observer: Callable[[float], None]) -> None:
        """Tell `observer` each sync's duration in seconds (on the syncing thread).
        A store that never syncs never calls it."""

    def close(self) -> None:
        pass


class DiskStore(NodeStore):
    kind = "disk"
    data_dir: Path

    def __init__(
        self,
        identity: Identity,
        fresh: bool,
        fs: FileSystem,
        data_dir: Path,
        log: SegmentLog,
        fsync: str,
        syncer: SyncerFactory = GroupCommit,
    ) -> None:
        super().__init__(identity, fresh)
        self.fs = fs
        self.data_dir = data_dir
        self.log = log
        self.fsync = fsync
        # The data directory's lock (storage.files.FileSystem.hold_lock), held until close.
        self.dir_lock: HeldLock | None = None
        self.durable_seq = log.last_seq
        self._make_syncer = syncer
        self._group: Syncer | None = None
        # Every use of the log holds it: the sync thread shares the log.
        self._lock = threading.Lock()

    def load(self, name: str) -> dict | None:
        path = self.data_dir / name
        try:
            raw = self.fs.read(path)
        except FileNotFoundError:
            return None
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"{path} is damaged: {exc}") from None
        if not isinstance(doc, dict):
            raise StoreError(f"{path} is damaged: not a JSON object")
        return doc

    def save(self, name: str, doc: dict) -> None:
        self.fs.write_atomic(self.data_dir / name, orjson.dumps(doc))

    def opened(self) -> None:
        """The log is replayed: from here on appends are synced (with fsync=always)."""
        self.durable_seq = self.log.last_seq
        if self.fsync == "always":
            self._group = self._make_syncer(self.log, self._durable, self._failed, self._lock)

    def _failed(self, exc: BaseException) -> None:
        self.on_failure(exc)

    def _durable(self, seq: int) -> None:
        self.durable_seq = seq
        self.on_durable(seq)

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        try:
            with self._lock:
                self.log.append(entries)
        except OSError as exc:
            # Disk full or failing: the log in memory is now ahead of the disk.
            # Crash-only: stop, and replay what is on disk at the next start.
            self._failed(exc)
            raise
        if self._group is not None:
            self._group.request()
        else:
            self._durable(self.log.last_seq)

    def truncate(self, keep: int) -> None:
        if keep < self.state.get("opened_seq", 0):
            # First: a shorter log at the next start must not look like lost files.
            self.update_state(opened_seq=keep)
        with self._lock:
            self.log.truncate(keep)
        self.durable_seq = min(self.durable_seq, keep)
        if self._group is not None:
            self._group.truncated(keep)
            self._group.request()

    def reset(self, entries: Sequence[Entry]) -> None:
        self.update_state(opened_seq=0, log_lost=True)
        with self._lock:
            self.log.reset(entries)
        self.durable_seq = len(entries)
        if self._group is not None:
            self._group.truncated(0)
            self._group.durable_seq = len(entries)

    def sync_stats(self) -> dict | None:
        return self._group.stats.to_json() if self._group is not None else None

    def observe_syncs(self, observer: Callable[[float], None]) -> None:
        if self._group is not None:
            self._group.stats.observer = observer

    def close(self) -> None:
        """A clean stop: sync what is left and note how long the log is."""
        try:
            self._close()
        finally:
            if self.dir_lock is not None:
                self.dir_lock.close()
                self.dir_lock = None

    def _close(self) -> None:
        if self._group is not None:
            self._group.close()
            if self._group.failed:
                # Never retry a failed sync, never claim what it did not make durable.
                with self._lock:
                    self.log.close()
                return
        with self._lock:
            self.log.sync_now()
            self.log.close()
        self.update_state(opened_seq=self.log.last_seq)


def open_store(
    *,
    data_dir: Path | None,
    node: str,
    role: str,
    fsync: str = "always",
    segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    repair: bool = False,
    fs: FileSystem | None = None,
    syncer: SyncerFactory = GroupCommit,
    tokens: Tokens = secrets.token_hex,
) -> NodeStore:
    """Open (creating if needed) a node's store and replay its log.

    `fs` is the disk (default the real one), `syncer` makes what syncs the log
    with fsync="always" (default the group-commit thread), `tokens` makes a new
    directory's incarnation (and the memory store's, with no `data_dir`).

    Raises StoreError (and storage.segments.CorruptLog) when the directory
    must not be used: another node's, damaged, or a bad record mid-log.
    """
    if data_dir is None:
        return NodeStore(Identity(node, role, new_incarnation(tokens)))
    fs = fs or OsFileSystem()
    try:
        fs.make_dir(data_dir)
    except OSError as exc:
        raise StoreError(f"cannot create data directory {data_dir}: {exc}") from None
    try:
        # Two processes on one directory would interleave their writes into one log.
        dir_lock = fs.hold_lock(data_dir / LOCK)
    except BlockingIOError:
        raise StoreError(
            f"{data_dir} is in use by another running node (it holds {data_dir / LOCK}); "
            "every node needs its own data directory"
        ) from None
    try:
        store = _open_locked(fs, data_dir, node, role, fsync, segment_bytes, repair, syncer, tokens)
    except BaseException:
        if dir_lock is not None:
            dir_lock.close()
        raise
    store.dir_lock = dir_lock
    return store


def _open_locked(
    fs: FileSystem,
    data_dir: Path,
    node: str,
    role: str,
    fsync: str,
    segment_bytes: int,
    repair: bool,
    syncer: SyncerFactory,
    tokens: Tokens,
) -> DiskStore:
    """open_store, once this process holds the directory."""
    identity, fresh = _identity(fs, data_dir, node, role, tokens)
    if fresh:
        fs.sync_dir(data_dir.parent)  # the new directory's own name
    log = SegmentLog(fs, data_dir / LOG_DIR, segment_bytes)
    store = DiskStore(identity, fresh, fs, data_dir, log, fsync, syncer)
    store.state = _checked_state(store.load(STATE), data_dir / STATE)
    lost = not fresh and not _exists(fs, data_dir / LOG_DIR)
    if lost and not repair:
        raise StoreError(
            f"{data_dir / LOG_DIR} is missing (an unmounted volume, a deleted directory?): "
            "restore it, or start with --repair to go on without it (the log is then "
            "refilled or recovered from the other nodes)"
        )

    def note_log_lost() -> None:
        # One write: the shorter log is expected from now on, and must be made whole.
        store.update_state(log_lost=True, opened_seq=0)

    store.replay = log.replay(repair=repair, before_repair=note_log_lost)
    replayed, held = len(store.replay.records), store.state.get("opened_seq", 0)
    if replayed < held or lost:
        if not repair:
            raise StoreError(
                f"{data_dir / LOG_DIR} holds {replayed} entries, but held {held} when this "
                "node last started: log files are missing (an unmounted volume, a deleted "
                "file?). Restore them, or start with --repair to go on without them (the "
                "rest is refilled from the other nodes)"
            )
        store.update_state(log_lost=True)
    store.update_state(opened_seq=replayed)
    store.opened()
    return store


def _exists(fs: FileSystem, directory: Path) -> bool:
    try:
        fs.list_dir(directory)
    except FileNotFoundError:
        return False
    return True


def _checked_state(doc: dict | None, path: Path) -> dict:
    state = doc or {}
    for key, value in state.items():
        kind = STATE_FIELDS.get(key)
        ok = kind is not None and type(value) is kind
        if ok and kind is int:
            ok = 0 <= value < 2**63
        if not ok:
            raise StoreError(f"{path} is damaged: bad field {key!r}: {value!r}")
    return state


def _identity(
    fs: FileSystem, data_dir: Path, node: str, role: str, tokens: Tokens
) -> tuple[Identity, bool]:
    path = data_dir / IDENTITY
    try:
        doc = orjson.loads(fs.read(path))
    except FileNotFoundError:
        doc = None
    except orjson.JSONDecodeError as exc:
        raise StoreError(f"{path} is damaged: {exc}") from None
    if doc is None:
        try:
            has_log = bool(fs.list_dir(data_dir / LOG_DIR))
        except FileNotFoundError:
            has_log = False
        if has_log:
            raise StoreError(
                f"{data_dir} holds log segments but no {IDENTITY}: not a replog data "
                "directory, or a damaged one; move it away to start this node empty"
            )
        identity = Identity(node, role, new_incarnation(tokens))
        # log/ first: once identity.json exists, a missing log/ means lost files.
        fs.make_dir(data_dir / LOG_DIR)
        fs.write_atomic(path, orjson.dumps(_as_doc(identity)))
        return identity, True
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), str) for k in ("node", "role", "incarnation")
    ):
        raise StoreError(f"{path} is damaged: expected node, role and incarnation")
    if doc["node"] != node or doc["role"] != role:
        raise StoreError(
            f"{data_dir} belongs to {doc['role']} {doc['node']!r}, not to {role} {node!r}; "
            "give each node its own --data-dir"
        )
    return Identity(doc["node"], doc["role"], doc["incarnation"]), False


def _as_doc(identity: Identity) -> dict:
    return {"node": identity.node, "role": identity.role, "incarnation": identity.incarnation}
