"""The log on disk (storage.segments) and the data directory (storage.node_store).

Most tests run twice: on the real disk (tmp_path) and on the in-memory
LossyFileSystem. Damage is made by editing a segment's bytes directly.
"""

from __future__ import annotations

import random
import struct
import tempfile
import zlib
from pathlib import Path

import orjson
import pytest

from replog.core.entry import Entry
from replog.storage.files import OsFileSystem
from replog.storage.node_store import IDENTITY, StoreError, open_store
from replog.storage.segments import HEADER, CorruptLog, SegmentLog, encode, segment_name
from support.lossy_fs import LossyFileSystem

ODD_MESSAGES = [
    "plain",
    "ünïcödé ✓ 日本語 🚀",
    "[brackets] ] [ [[",
    "commas, and, more,,",
    "new\nlines\r\n and \t tabs",
    '"quotes" and \\ backslashes',
    "",
    '], [1, 2, null, "x"], [',
]


class Disk:
    """A file system for the log plus direct access to its bytes (to damage them)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        if kind == "os":
            self.fs = OsFileSystem()
            self.root = tmp_path
        else:
            self.fs = LossyFileSystem()
            self.root = Path("/node")
        self.log_dir = self.root / "data" / "log"

    def log(self, segment_bytes: int = 1 << 20) -> SegmentLog:
        return SegmentLog(self.fs, self.log_dir, segment_bytes)

    def segments(self) -> list[str]:
        return [n for n in self.fs.list_dir(self.log_dir) if n.endswith(".seg")]

    def path(self, name: str) -> Path:
        return self.log_dir / name

    def read(self, name: str) -> bytes:
        return self.fs.read(self.path(name))

    def write(self, name: str, data: bytes) -> None:
        if isinstance(self.fs, LossyFileSystem):
            self.fs.put(self.path(name), data)
        else:
            self.path(name).write_bytes(data)


@pytest.fixture(params=["os", "lossy"])
def disk(request, tmp_path) -> Disk:
    return Disk(request.param, tmp_path)


def entry(seq: int, epoch: int = 1, id=None, message: str | None = None) -> Entry:
    return Entry(seq, epoch, id, f"m{seq}" if message is None else message)


def batches(first: int, sizes: list[int], epoch: int = 1) -> list[list[Entry]]:
    out, seq = [], first
    for size in sizes:
        out.append([entry(s, epoch) for s in range(seq, seq + size)])
        seq += size
    return out


def write_log(disk: Disk, groups: list[list[Entry]], segment_bytes: int = 1 << 20) -> SegmentLog:
    log = disk.log(segment_bytes)
    assert log.replay().records == []
    for group in groups:
        log.append(group)
    log.sync_now()
    log.close()
    return log


def replayed(disk: Disk, segment_bytes: int = 1 << 20, repair: bool = False):
    log = disk.log(segment_bytes)
    result = log.replay(repair=repair)
    return log, result


def wire(groups: list[list[Entry]]) -> list[list]:
    return [e.to_wire() for group in groups for e in group]


def record_offsets(data: bytes) -> list[int]:
    """Start of each record of a well-formed segment (the format: u32 length, u32 crc)."""
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 8 + length
    assert offset == len(data)
    return offsets


def segment_entries(data: bytes) -> list[list]:
    payloads = [
        data[o + 8 : o + 8 + struct.unpack_from("<I", data, o)[0]] for o in record_offsets(data)
    ]
    return orjson.loads(b"[" + b",".join(payloads) + b"]")


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


# -- format and round trip ------------------------------------------------


def test_record_format_is_length_crc_and_json_entries():
    record = encode([Entry(1, 2, "a", "x"), Entry(2, 2, 7, "y")])
    length, crc = struct.unpack_from("<II", record)
    payload = record[8:]
    assert length == len(payload) and crc == zlib.crc32(payload)
    assert orjson.loads(b"[" + payload + b"]") == [[1, 2, "a", "x"], [2, 2, 7, "y"]]
    assert segment_name(1) == "00000000000000000001.seg"


def test_round_trip_of_odd_entries(disk):
    ids = ["client-1", 42, None, "", 0, "ключ", -5]
    entries = [
        Entry(seq, 3, ids[seq % len(ids)], ODD_MESSAGES[seq % len(ODD_MESSAGES)])
        for seq in range(1, 41)
    ]
    groups = [entries[0:1], entries[1:7], entries[7:8], entries[8:30], entries[30:]]
    write_log(disk, groups)
    log, result = replayed(disk)
    assert result.torn is None and result.repaired is None
    assert result.records == [e.to_wire() for e in entries]
    assert [Entry.from_wire(r) for r in result.records] == entries
    # Types survive: 1 and "1" are different ids.
    assert [type(r[2]) for r in result.records] == [type(e.id) for e in entries]
    assert log.last_seq == 40


def test_empty_log_replays_empty(disk):
    log, result = replayed(disk)
    assert result.records == [] and result.torn is None and log.last_seq == 0
    assert disk.segments() == []


def test_segments_roll_at_their_size_and_replay_across_them(disk):
    groups = batches(1, [1, 3, 2, 5, 1, 1, 4, 2, 3, 1, 6, 1])
    write_log(disk, groups, segment_bytes=120)
    names = disk.segments()
    assert len(names) >= 4
    biggest_record = max(len(encode(group)) for group in groups)
    seq = 1
    for index, name in enumerate(names):
        data = disk.read(name)
        entries = segment_entries(data)
        # Named by its first seq; seqs run on from the segment before.
        assert name == segment_name(seq) and entries[0][0] == seq
        seq += len(entries)
        # A segment is closed at the first append once it has reached the size.
        last = record_offsets(data)[-1]
        assert last < 120 and len(data) <= 120 + biggest_record
        if index < len(names) - 1:
            assert len(data) >= 120
    assert seq == 31
    log, result = replayed(disk, segment_bytes=120)
    assert result.records == wire(groups)
    # Appends continue after a reopen, rolling on as before.
    more = batches(31, [2, 2, 2, 2, 2, 2])
    for group in more:
        log.append(group)
    log.sync_now()
    log.close()
    assert len(disk.segments()) > len(names)
    _, result = replayed(disk, segment_bytes=120)
    assert result.records == wire(groups + more)


def test_append_must_continue_the_log(disk):
    log = disk.log()
    log.replay()
    log.append([entry(1)])
    with pytest.raises(ValueError):
        log.append([entry(3)])
    with pytest.raises(ValueError):
        log.append([entry(1)])
    log.append([])
    assert log.last_seq == 1
    log.close()


# -- torn tails -----------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [b"\x00" * 37, b'garbage, not a record [1,1,null,"x"]', bytes(range(256)) * 3, b"\x07"],
)
def test_garbage_after_the_last_record_is_a_torn_tail(disk, garbage):
    groups = batches(1, [2, 3, 1])
    write_log(disk, groups, segment_bytes=60)
    newest = disk.segments()[-1]
    good = disk.read(newest)
    disk.write(newest, good + garbage)
    log, result = replayed(disk, segment_bytes=60)
    assert result.records == wire(groups)
    assert result.repaired is None
    torn = result.torn
    assert torn is not None
    assert torn.path == disk.path(newest)
    assert torn.offset == len(good)
    assert torn.dropped_bytes == len(garbage)
    assert torn.reason
    assert disk.read(newest) == good
    # The log goes on from there, and the next replay finds nothing to cut.
    log.append([entry(7)])
    log.sync_now()
    log.close()
    _, again = replayed(disk, segment_bytes=60)
    assert again.torn is None and again.records == wire([*groups, [entry(7)]])


@pytest.mark.parametrize("short", [1, 3, 9, "header"])
def test_half_written_last_record_is_cut(disk, short):
    groups = batches(1, [2, 3, 4])
    write_log(disk, groups)
    [name] = disk.segments()
    data = disk.read(name)
    last = record_offsets(data)[-1]
    cut = last + 5 if short == "header" else len(data) - short
    disk.write(name, data[:cut])
    _, result = replayed(disk)
    assert result.records == wire(groups[:2])
    assert result.torn is not None
    assert (result.torn.path, result.torn.offset) == (disk.path(name), last)
    assert result.torn.dropped_bytes == cut - last
    assert disk.read(name) == data[:last]


def test_torn_first_record_of_the_newest_segment_leaves_no_empty_segment(disk):
    groups = batches(1, [3, 3, 3])
    write_log(disk, groups, segment_bytes=50)
    names = disk.segments()
    assert len(names) == 3
    disk.write(names[-1], disk.read(names[-1])[:-2])
    log, result = replayed(disk, segment_bytes=50)
    assert result.records == wire(groups[:2])
    assert result.torn is not None and result.torn.offset == 0
    assert disk.segments() == names[:2]
    log.append([entry(7, epoch=2)])
    log.sync_now()
    log.close()
    _, again = replayed(disk, segment_bytes=50)
    assert again.records == [*wire(groups[:2]), entry(7, epoch=2).to_wire()]


# -- damage ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["payload", "length", "crc"])
def test_bad_record_in_the_middle_of_the_newest_segment_is_refused(disk, where):
    groups = batches(1, [2, 3, 1, 4, 2])
    write_log(disk, groups)
    [name] = disk.segments()
    data = disk.read(name)
    offsets = record_offsets(data)
    bad = offsets[2]
    at = {"payload": bad + 10, "length": bad + 1, "crc": bad + 5}[where]
    disk.write(name, flip(data, at))
    with pytest.raises(CorruptLog) as caught:
        replayed(disk)
    assert caught.value.path == disk.path(name)
    assert caught.value.offset == bad
    assert str(disk.path(name)) in str(caught.value) and f"offset {bad}" in str(caught.value)
    # Refusing changed nothing on disk.
    assert disk.read(name) == flip(data, at)

    log, result = replayed(disk, repair=True)
    assert result.records == wire(groups[:2])
    assert result.torn is None
    repaired = result.repaired
    assert repaired is not None
    assert (repaired.path, repaired.offset) == (disk.path(name), bad)
    assert repaired.dropped_bytes == len(data) - bad
    assert disk.read(name) == data[:bad]
    assert log.last_seq == 5
    log.append([entry(6, epoch=2)])
    log.sync_now()
    log.close()
    _, again = replayed(disk)
    assert again.records == [*wire(groups[:2]), entry(6, epoch=2).to_wire()]


def test_bad_last_record_of_an_older_segment_is_refused(disk):
    groups = batches(1, [2, 2, 2, 2, 2, 2, 2, 2])
    write_log(disk, groups, segment_bytes=70)
    names = disk.segments()
    assert len(names) >= 3
    victim = names[1]
    data = disk.read(victim)
    bad = record_offsets(data)[-1]
    disk.write(victim, flip(data, len(data) - 2))
    with pytest.raises(CorruptLog) as caught:
        replayed(disk, segment_bytes=70)
    assert (caught.value.path, caught.value.offset) == (disk.path(victim), bad)

    _, result = replayed(disk, segment_bytes=70, repair=True)
    first_of_victim = int(victim[:-4])
    kept = first_of_victim - 1 + len(record_offsets(data)) * 2 - 2
    assert result.records == wire(groups)[:kept]
    assert result.repaired is not None
    assert (result.repaired.path, result.repaired.offset) == (disk.path(victim), bad)
    assert result.repaired.removed == tuple(names[2:])
    assert disk.segments() == names[:2]
    assert disk.read(victim) == data[:bad]


def test_bad_first_record_of_an_older_segment_is_refused_and_repaired(disk):
    groups = batches(1, [1] * 12)
    write_log(disk, groups, segment_bytes=70)
    names = disk.segments()
    assert len(names) >= 3
    data = disk.read(names[0])
    disk.write(names[0], flip(data, 12))
    with pytest.raises(CorruptLog) as caught:
        replayed(disk, segment_bytes=70)
    assert (caught.value.path, caught.value.offset) == (disk.path(names[0]), 0)
    log, result = replayed(disk, segment_bytes=70, repair=True)
    assert result.records == [] and log.last_seq == 0
    assert result.repaired is not None and result.repaired.removed == tuple(names[1:])
    log.append([entry(1, epoch=9)])
    log.sync_now()
    log.close()
    _, again = replayed(disk, segment_bytes=70)
    assert again.records == [entry(1, epoch=9).to_wire()]


def test_missing_middle_segment_is_refused(disk):
    groups = batches(1, [2] * 10)
    write_log(disk, groups, segment_bytes=70)
    names = disk.segments()
    assert len(names) >= 4
    disk.fs.remove(disk.path(names[1]))
    with pytest.raises(CorruptLog) as caught:
        replayed(disk, segment_bytes=70)
    assert (caught.value.path, caught.value.offset) == (disk.path(names[2]), 0)
    assert "expected" in caught.value.reason

    _, result = replayed(disk, segment_bytes=70, repair=True)
    assert result.records == wire(groups)[: int(names[1][:-4]) - 1]
    assert result.repaired is not None
    assert result.repaired.removed == tuple(names[2:])
    assert disk.segments() == names[:1]


def test_misplaced_record_with_a_good_checksum_is_damage(disk):
    # A valid record whose seqs do not follow on (e.g. a block written to the wrong place).
    write_log(disk, batches(1, [2, 2]))
    [name] = disk.segments()
    data = disk.read(name)
    disk.write(name, data + encode([entry(9)]) + encode([entry(10)]))
    with pytest.raises(CorruptLog) as caught:
        replayed(disk)
    assert caught.value.offset == len(data)


# -- truncate and reset ---------------------------------------------------

# Records of 3 entries: 1-3 4-6 7-9 | 10-12 13-15 16-18 | 19-21 (segments of ~3 records).
TRUNCATE_SEGMENT = 150


def three_by_three(disk: Disk) -> list[list[Entry]]:
    groups = batches(1, [3] * 7)
    write_log(disk, groups, segment_bytes=TRUNCATE_SEGMENT)
    assert disk.segments() == [segment_name(1), segment_name(10), segment_name(19)]
    return groups


# keep 9 and 18 end a segment, 3 and 12 a record; the others fall inside a record.
@pytest.mark.parametrize("keep", [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 18, 19, 20])
def test_truncate_then_append_continues_at_keep_plus_one(disk, keep):
    groups = three_by_three(disk)
    log, _ = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    log.truncate(keep)
    assert log.last_seq == keep
    # Segments that start after keep are gone already.
    assert all(int(n[:-4]) <= max(keep, 1) for n in disk.segments())
    _, now = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    assert now.records == wire(groups)[:keep]
    assert now.torn is None
    new = [entry(s, epoch=2, message=f"new{s}") for s in range(keep + 1, keep + 5)]
    log.append(new[:1])
    log.append(new[1:])
    log.sync_now()
    log.close()
    log, result = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    assert result.torn is None and result.repaired is None
    assert result.records == wire(groups)[:keep] + [e.to_wire() for e in new]
    assert log.last_seq == keep + 4
    log.close()


def test_truncate_at_or_past_the_end_changes_nothing(disk):
    groups = three_by_three(disk)
    log, _ = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    log.truncate(21)
    log.truncate(50)
    log.close()
    _, result = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    assert result.records == wire(groups)


def test_truncate_twice_and_across_unsynced_appends(disk):
    groups = three_by_three(disk)
    log, _ = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    log.append([entry(22), entry(23)])  # not synced: truncate makes it so
    log.truncate(17)
    log.append([entry(18, epoch=2), entry(19, epoch=2)])
    log.truncate(12)
    log.append([entry(13, epoch=3)])
    log.sync_now()
    log.close()
    _, result = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    assert result.records == [*wire(groups)[:12], entry(13, epoch=3).to_wire()]


@pytest.mark.parametrize("keep", [0, 4, 7, 9, 10, 14])
def test_a_power_cut_during_truncate_keeps_the_kept_prefix(keep):
    """Crash at every step of truncate(keep): what is replayed is never taken for
    damage, holds 1..keep, and is a prefix of the log before the truncation."""
    disk = Disk("lossy", Path("/unused"))
    groups = three_by_three(disk)
    old = wire(groups)
    fs = disk.fs
    assert isinstance(fs, LossyFileSystem)
    steps = 0

    def count(operation, path):
        nonlocal steps
        steps += 1

    log, _ = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    fs.before = count
    log.truncate(keep)
    fs.before = None
    assert steps > 0
    for step in range(1, steps + 2):
        for seed in range(8):
            disk = Disk("lossy", Path("/unused"))
            three_by_three(disk)
            fs = disk.fs
            log, _ = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
            rng = random.Random(seed)
            images = []
            seen = 0

            def crash_at(operation, path, fs=fs, rng=rng, images=images, step=step):
                nonlocal seen
                seen += 1
                if seen == step:
                    images.append(fs.crash(rng))

            fs.before = crash_at
            log.truncate(keep)
            fs.before = None
            image = images[0] if images else fs.crash(rng)
            after = SegmentLog(image, disk.log_dir, TRUNCATE_SEGMENT).replay()
            assert after.repaired is None
            assert len(after.records) >= keep, (step, seed)
            assert after.records == old[: len(after.records)], (step, seed)
            if not images:  # the crash came after truncate returned
                assert after.records == old[:keep]


def test_reset_replaces_the_whole_log(disk):
    three_by_three(disk)
    log, _ = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    adopted = [entry(s, epoch=5, id=s, message=f"a{s}") for s in range(1, 31)]
    log.reset(adopted)
    assert log.last_seq == 30
    _, result = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    assert result.records == [e.to_wire() for e in adopted]
    log.reset([])
    assert log.last_seq == 0
    _, result = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    assert result.records == []
    log.append([entry(1, epoch=6)])
    log.sync_now()
    log.close()
    _, result = replayed(disk, segment_bytes=TRUNCATE_SEGMENT)
    assert result.records == [entry(1, epoch=6).to_wire()]


# -- the data directory ---------------------------------------------------


def store_at(disk: Disk, node: str = "s1", role: str = "secondary", **kw):
    return open_store(data_dir=disk.root / "data", node=node, role=role, fs=disk.fs, **kw)


def test_new_directory_gets_an_identity_and_a_reopen_keeps_it(disk):
    store = store_at(disk)
    assert store.fresh is True
    incarnation = store.identity.incarnation
    assert incarnation and (store.identity.node, store.identity.role) == ("s1", "secondary")
    assert store.replay.records == []
    store.close()
    doc = orjson.loads(disk.fs.read(disk.root / "data" / IDENTITY))
    assert doc == {"node": "s1", "role": "secondary", "incarnation": incarnation}
    again = store_at(disk)
    assert again.fresh is False
    assert again.identity.incarnation == incarnation
    again.close()


def test_a_wiped_directory_gets_a_new_incarnation(tmp_path):
    disk = Disk("os", tmp_path)
    first = store_at(disk)
    first.close()
    other = Disk("os", tmp_path / "wiped")
    second = store_at(other)
    assert second.fresh and second.identity.incarnation != first.identity.incarnation
    second.close()


@pytest.mark.parametrize(("node", "role"), [("s2", "secondary"), ("s1", "master")])
def test_another_nodes_directory_is_refused(disk, node, role):
    store_at(disk).close()
    with pytest.raises(StoreError, match="belongs to"):
        store_at(disk, node=node, role=role)


def test_log_segments_without_identity_are_refused(disk):
    store = store_at(disk, fsync="never")
    store.append([entry(1)])
    store.close()
    disk.fs.remove(disk.root / "data" / IDENTITY)
    with pytest.raises(StoreError, match=r"no identity\.json"):
        store_at(disk)


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"node": "s1"}'])
def test_damaged_identity_is_refused(disk, content):
    store_at(disk).close()
    path = disk.root / "data" / IDENTITY
    if isinstance(disk.fs, LossyFileSystem):
        disk.fs.put(path, content)
    else:
        path.write_bytes(content)
    with pytest.raises(StoreError, match="damaged"):
        store_at(disk)


def test_state_documents_are_saved_atomically_and_loaded(disk):
    store = store_at(disk)
    assert store.load("doc.json") is None
    store.save("doc.json", {"cluster": "c1", "epoch": 3})
    store.save("doc.json", {"cluster": "c1", "epoch": 4})
    assert store.load("doc.json") == {"cluster": "c1", "epoch": 4}
    names = disk.fs.list_dir(disk.root / "data")
    assert not [n for n in names if n.endswith(".tmp")]
    if isinstance(disk.fs, LossyFileSystem):
        # Durable on return: a power cut right after keeps it.
        image = disk.fs.crash(random.Random(1))
        assert orjson.loads(image.read(disk.root / "data" / "doc.json"))["epoch"] == 4
    store.close()


def test_store_replays_the_log_on_open(disk):
    store = store_at(disk, fsync="never", segment_bytes=80)
    entries = [entry(s, id=s) for s in range(1, 21)]
    for start in range(0, 20, 4):
        store.append(entries[start : start + 4])
    store.close()
    again = store_at(disk, fsync="never", segment_bytes=80)
    assert again.replay.records == [e.to_wire() for e in entries]
    assert again.durable_seq == 20
    again.close()


def test_what_a_killed_process_wrote_but_never_synced_is_synced_at_the_next_start():
    """Counted as held after a restart, it must survive a power cut right after."""
    fs = LossyFileSystem()
    root = Path("/node")
    store = open_store(data_dir=root, node="s1", role="secondary", fs=fs, fsync="never")
    store.append([entry(1), entry(2)])  # written, never synced
    assert fs.unsynced()
    again = open_store(data_dir=root, node="s1", role="secondary", fs=fs.kill(), fsync="always")
    assert again.durable_seq == 2
    after_power_cut = again.fs.crash(random.Random(3))
    last = open_store(data_dir=root, node="s1", role="secondary", fs=after_power_cut)
    assert [r[0] for r in last.replay.records] == [1, 2]


def test_a_repair_notes_the_lost_log_before_cutting_it(disk):
    store = store_at(disk, fsync="never")
    for batch in batches(1, [2, 2, 2]):
        store.append(batch)
    store.close()
    name = segment_name(1)
    data = bytearray(disk.read(name))
    data[HEADER.size + 2] ^= 0xFF  # inside the first record: everything after is damage
    disk.write(name, bytes(data))
    with pytest.raises(CorruptLog):
        store_at(disk)
    repaired = store_at(disk, repair=True)
    assert repaired.replay.repaired is not None and repaired.replay.records == []
    assert repaired.state["log_lost"] is True  # until the node has made its log whole
    repaired.close()
    assert store_at(disk).state["log_lost"] is True


def test_a_log_shorter_than_at_the_last_clean_stop_is_refused(disk):
    store = store_at(disk, fsync="never")
    store.append(batches(1, [3])[0])
    store.close()  # notes opened_seq = 3
    for name in disk.fs.list_dir(disk.root / "data" / "log"):
        disk.fs.remove(disk.root / "data" / "log" / name)
    with pytest.raises(StoreError, match="log files are missing"):
        store_at(disk)
    assert store_at(disk, repair=True).state["log_lost"] is True


def test_segments_rolled_with_fsync_never_are_closed():
    import os

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(
            data_dir=Path(tmp), node="s1", role="secondary", fsync="never", segment_bytes=64
        )
        before = len(os.listdir("/proc/self/fd"))
        for seq in range(1, 101):
            store.append([entry(seq, message="x" * 80)])  # a segment each
        assert len(os.listdir("/proc/self/fd")) - before <= 2
        store.close()
