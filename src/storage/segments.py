"""The log on disk: append-only segment files of length-and-checksum framed records.

Layout of `<data-dir>/log/`: segment files named by the seq of their first
record, 20 digits, e.g. `00000000000000000001.seg`. A new segment is started
once the current one has reached `segment_bytes` (64 MiB by default).

A segment is a sequence of records, each:

    length   u32, little endian: bytes in payload
    crc      u32, little endian: CRC-32 of payload (zlib.crc32, as gzip and PNG)
    payload  UTF-8 JSON: the record's entries, each an array [seq, epoch, id,
             message], separated by commas (so "[" + payload + "]" parses as
             one JSON array)

Seqs run on without a gap from one record to the next and from one segment
to the next. A torn or half-written record fails its length or checksum.

Replay: a bad record at the end of the newest segment (no valid record after
it) is a write cut short by a crash: it is truncated. A bad record anywhere
else, or a missing segment, is damage: `CorruptLog`, unless `repair`, which
truncates the log at the bad record.
"""

from __future__ import annotations

import gc
import itertools
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from replog.core.entry import Entry
from replog.storage.files import AppendFile, FileSystem

HEADER = struct.Struct("<II")
SUFFIX = ".seg"
DEFAULT_SEGMENT_BYTES = 64 << 20
# A record longer than this is damage, not data (a message is at most 64 MiB).
MAX_RECORD_BYTES = 1 << 30


@contextmanager
def gc_paused() -> Iterator[None]:
    """Build millions of objects (a replayed log) without the cyclic GC rescanning
    them over and over; afterwards, freeze them out of its reach for good."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


class CorruptLog(Exception):
    """A bad record that is not a torn tail: the disk is damaged."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}: bad record at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Cut:
    """Bytes dropped from a segment at replay: a torn tail, or a repair."""

    path: Path
    offset: int
    dropped_bytes: int
    reason: str
    # Later segments removed by a repair.
    removed: tuple[str, ...] = ()


@dataclass(slots=True)
class Replay:
    # [seq, epoch, id, message] for seqs 1..n.
    records: list[list] = field(default_factory=list)
    torn: Cut | None = None
    repaired: Cut | None = None


def encode(entries: Sequence[Entry]) -> bytes:
    """One record holding `entries` (one append: a request, or a replicated batch)."""
    payload = orjson.dumps([[e.seq, e.epoch, e.id, e.message] for e in entries])[1:-1]
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SUFFIX}"


# A record's header, overwritten in a copy of the segment so that the whole
# segment reads as one JSON array: "[" before the first payload, "," between.
_OPEN = b"[" + b" " * (HEADER.size - 1)
_COMMA = b"," + b" " * (HEADER.size - 1)


@dataclass(slots=True)
class _Frames:
    starts: list[int]  # offset of each valid record
    end: int  # where the valid records end
    why: str | None  # why they end there (None: at the end of the data)
    json: bytearray  # the valid records as one JSON array


def _frames(data: bytes) -> _Frames:
    """Check every record's length and checksum, in one pass (the hot loop of replay)."""
    size = len(data)
    view = memoryview(data)
    buf = bytearray(data)
    starts: list[int] = []
    add = starts.append
    unpack = HEADER.unpack_from
    crc32 = zlib.crc32
    header = HEADER.size
    offset, why, separator = 0, None, _OPEN
    while offset < size:
        if offset + header > size:
            why = "partial header"
            break
        length, crc = unpack(data, offset)
        end = offset + header + length
        if length == 0 or length > MAX_RECORD_BYTES:
            why = f"bad length {length}"
            break
        if end > size:
            why = "partial record"
            break
        if crc32(view[offset + header : end]) != crc:
            why = "checksum mismatch"
            break
        buf[offset : offset + header] = separator
        separator = _COMMA
        add(offset)
        offset = end
    del buf[offset:]
    buf += b"]" if starts else b"[]"
    return _Frames(starts, offset, why, buf)


def _decode(data: bytes, frames: _Frames, first_seq: int) -> tuple[list[list], int | None]:
    """The entries of the valid records, and the index of the first record that is
    not a run of entries in sequence (None: all are)."""
    try:
        entries = orjson.loads(frames.json)
        if _in_sequence(entries, first_seq):
            return entries, None
    except orjson.JSONDecodeError:
        pass
    # Something is off (never seen but for a bug): find the first bad record.
    entries, expected = [], first_seq
    bounds = [*frames.starts, frames.end]
    for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
        try:
            record = orjson.loads(b"[" + data[start + HEADER.size : stop] + b"]")
        except orjson.JSONDecodeError:
            return entries, index
        if not (record and _in_sequence(record, expected)):
            return entries, index
        entries.extend(record)
        expected += len(record)
    return entries, None


def _in_sequence(entries: list, first_seq: int) -> bool:
    # The checksum vouches for the bytes; this catches a record in the wrong place.
    try:
        seqs = [e[0] for e in entries]
    except (TypeError, IndexError, KeyError):
        return False
    return seqs == list(range(first_seq, first_seq + len(entries)))


def _valid_record_after(data: bytes, offset: int) -> bool:
    """Is there a well-formed record anywhere after `offset`? (Then `offset` is not the tail.)

    Every payload is a JSON array, so only the bytes before a `[` can start a record.
    """
    position = offset + 1 + HEADER.size
    while (bracket := data.find(b"[", position)) >= 0:
        start = bracket - HEADER.size
        length, crc = HEADER.unpack_from(data, start)
        end = bracket + length
        if 0 < length <= MAX_RECORD_BYTES and end <= len(data):
            payload = memoryview(data)[bracket:end]
            if zlib.crc32(payload) == crc:
                return True
        position = bracket + 1
    return False


class SegmentLog:
    """The records of one node's log, in segment files under `directory`."""

    def __init__(
        self, fs: FileSystem, directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES
    ) -> None:
        self.fs = fs
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.last_seq = 0
        # Bumped by truncate(): a sync begun before it says nothing of what came after.
        self.generation = 0
        self._segments: list[int] = []  # first seq of each segment, ascending
        self._current: AppendFile | None = None
        # Files written since the last sync began (rolled-away segments first).
        self._dirty: list[AppendFile] = []
        self._dir_dirty = False
        self._jobs_inflight = 0
        self._retired: list[AppendFile] = []
        self._before_repair: Callable[[], None] | None = None

    def _path(self, first_seq: int) -> Path:
        return self.directory / segment_name(first_seq)

    # -- replay ----------------------------------------------------------

    def replay(
        self, repair: bool = False, before_repair: Callable[[], None] | None = None
    ) -> Replay:
        """Read the whole log; truncate a torn tail; raise CorruptLog for damage.

        With `repair`, `before_repair` runs before anything is cut, so the caller
        can durably note that its log is being shortened (a crash midway must not
        make the shorter log look whole at the next start).
        """
        self._before_repair = before_repair
        with gc_paused():
            return self._replay(repair)

    def _replay(self, repair: bool) -> Replay:
        self.fs.make_dir(self.directory)
        # The log directory's own name must survive a power cut too.
        self.fs.sync_dir(self.directory.parent)
        names = [n for n in self.fs.list_dir(self.directory) if n.endswith(SUFFIX)]
        firsts = sorted(int(n[: -len(SUFFIX)]) for n in names if n[: -len(SUFFIX)].isdigit())
        result = Replay()
        expected = 1
        for index, first in enumerate(firsts):
            path = self._path(first)
            newest = index == len(firsts) - 1
            later = tuple(segment_name(f) for f in firsts[index + 1 :])
            if first != expected:
                reason = f"segment starts at seq {first}, expected {expected}"
                if not repair:
                    raise CorruptLog(path, 0, reason)
                result.repaired = self._repair(path, 0, reason, (segment_name(first), *later))
                break
            data = self.fs.read(path)
            frames = _frames(data)
            items, bad_index = _decode(data, frames, first)
            end, why = frames.end, frames.why
            if bad_index is not None:
                end, why = frames.starts[bad_index], "not a log entry in sequence"
            result.records.extend(items)
            expected = first + len(items)
            self._segments.append(first)
            if why is None:
                continue
            if newest and not _valid_record_after(data, end):
                result.torn = self._cut(path, end, why, (), size=len(data))
            elif repair:
                result.repaired = self._repair(path, end, why, later, size=len(data))
            else:
                raise CorruptLog(path, end, why)
            break
        self.last_seq = len(result.records)
        self._drop_empty_tail()
        if self._segments:
            self._current = self.fs.open_append(self._path(self._segments[-1]))
            # What a killed process wrote but never synced is still only in the
            # page cache: sync it (and its name) before anything counts it as held.
            self._current.sync()
            self.fs.sync_dir(self.directory)
        return result

    def _repair(
        self, path: Path, offset: int, reason: str, removed: tuple[str, ...], size: int = 0
    ) -> Cut:
        if self._before_repair is not None:
            self._before_repair()
        return self._cut(path, offset, reason, removed, size)

    def _cut(
        self, path: Path, offset: int, reason: str, removed: tuple[str, ...], size: int = 0
    ) -> Cut:
        """Truncate `path` at `offset` and remove the segments named in `removed`."""
        for name in removed:
            self.fs.remove(self.directory / name)
        if path.name not in removed:
            handle = self.fs.open_append(path)
            handle.truncate(offset)
            handle.sync()
            handle.close()
        self.fs.sync_dir(self.directory)
        return Cut(path, offset, max(0, size - offset), reason, removed)

    def _drop_empty_tail(self) -> None:
        """An empty newest segment (a crash right after a roll) is removed."""
        while self._segments and self._segments[-1] > self.last_seq:
            self.fs.remove(self._path(self._segments.pop()))
            self.fs.sync_dir(self.directory)

    # -- writing ---------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        """Write entries (seqs last_seq+1, ...) to the OS; durable after a sync."""
        if not entries:
            return
        if entries[0].seq != self.last_seq + 1:
            raise ValueError(f"append at seq {entries[0].seq}, log ends at {self.last_seq}")
        if self._current is None or self._current.size >= self.segment_bytes:
            self._roll(entries[0].seq)
        assert self._current is not None
        self._current.append(encode(entries))
        self.last_seq = entries[-1].seq
        if not self._dirty or self._dirty[-1] is not self._current:
            self._dirty.append(self._current)

    def _roll(self, first_seq: int) -> None:
        if self._current is not None:
            # This segment, whole and named, is on disk before the next one can be:
            # a later segment that outlived a crash which cut this one short (or
            # lost its name) would be taken for damage. One sync per segment.
            self._current.sync()
            self.fs.sync_dir(self.directory)
            # Synced: no later sync job needs it. Closed once none running uses it.
            if self._current in self._dirty:
                self._dirty.remove(self._current)
            self._retire(self._current)
        self._current = self.fs.open_append(self._path(first_seq))
        self._segments.append(first_seq)
        self._dir_dirty = True

    def _retire(self, handle: AppendFile) -> None:
        if self._jobs_inflight or handle in self._dirty:
            self._retired.append(handle)
        else:
            handle.close()

    def begin_sync(self) -> SyncJob:
        """What a sync must cover now: run `job.run()` anywhere, then `finish_sync(job)`."""
        job = SyncJob(
            self.fs,
            self.directory if self._dir_dirty else None,
            self._dirty,
            self.last_seq,
            self.generation,
        )
        self._dirty = []
        self._dir_dirty = False
        self._jobs_inflight += 1
        return job

    def finish_sync(self, job: SyncJob) -> None:
        self._jobs_inflight -= 1
        if not self._jobs_inflight:
            keep = [h for h in self._retired if h in self._dirty]
            for handle in self._retired:
                if handle not in keep:
                    handle.close()
            self._retired = keep

    def sync_now(self) -> None:
        job = self.begin_sync()
        try:
            job.run()
        finally:
            self.finish_sync(job)

    def truncate(self, keep: int) -> None:
        """Drop every record after seq `keep`, durably, before returning."""
        if keep >= self.last_seq:
            return
        keep = max(keep, 0)
        self.generation += 1
        # Segments that start after `keep` go whole, newest first, each removal
        # durable before the next change (a crash must not leave a gap).
        while self._segments and self._segments[-1] > keep:
            first = self._segments.pop()
            if self._current is not None:
                self._retire(self._current)
                self._current = None
            self.fs.remove(self._path(first))
            self.fs.sync_dir(self.directory)
        if self._segments:
            path = self._path(self._segments[-1])
            data = self.fs.read(path)
            offset, kept = self._cut_point(data, keep)
            if self._current is not None:
                self._retire(self._current)
            if kept:
                # `keep` fell inside a record: rewrite the segment with its first
                # entries as one record, atomically (a cut-then-append could lose them).
                self.fs.write_atomic(path, data[:offset] + encode([Entry(*item) for item in kept]))
                self._current = self.fs.open_append(path)
            else:
                self._current = self.fs.open_append(path)
                self._current.truncate(offset)
                self._current.sync()
        self.fs.sync_dir(self.directory)
        self.last_seq = keep

    def _cut_point(self, data: bytes, keep: int) -> tuple[int, list[list]]:
        """Where to cut a segment so that it ends at seq `keep`: the offset of the
        record holding keep+1, and that record's entries up to `keep`."""
        offset = 0
        while offset < len(data):
            length, _crc = HEADER.unpack_from(data, offset)
            end = offset + HEADER.size + length
            record = orjson.loads(b"[" + data[offset + HEADER.size : end] + b"]")
            if record[-1][0] > keep:
                return offset, [item for item in record if item[0] <= keep]
            offset = end
        return offset, []

    def reset(self, entries: Sequence[Entry]) -> None:
        """Replace the whole log with `entries`, durably (a master adopting a log)."""
        self.truncate(0)
        for start in range(0, len(entries), 10_000):
            self.append(entries[start : start + 10_000])
        self.sync_now()

    def close(self) -> None:
        for handle in [*self._retired, self._current]:
            if handle is not None:
                handle.close()
        self._retired, self._current, self._dirty = [], None, []


class SyncJob:
    """One group commit: fdatasync every file written since the last, then the directory."""

    def __init__(
        self,
        fs: FileSystem,
        directory: Path | None,
        files: list[AppendFile],
        target_seq: int,
        generation: int,
    ) -> None:
        self.fs = fs
        self.directory = directory
        self.files = files
        self.target_seq = target_seq
        self.generation = generation

    def run(self) -> None:
        for handle in self.files:
            handle.sync()
        if self.directory is not None:
            self.fs.sync_dir(self.directory)
