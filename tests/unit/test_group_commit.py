"""Sync ordering: a DiskStore with group commit on a file system that loses power.

Every seq reported by `on_durable` is acknowledged; after a power cut at any
moment (mid-sync, right after a segment roll, between appends) the reopened
log must hold every acknowledged entry, be exactly a prefix of what was
appended, and never be taken for damage.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from replog.core.entry import Entry
from replog.storage.node_store import DiskStore, open_store
from support.lossy_fs import LossyFileSystem

DATA = Path("/node/data")
MESSAGES = ["m", "ünï ✓", "[x], [", "a,b\nc", '"q"', ""]


async def until(condition: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Let the event loop run until `condition` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.0005)


def open_disk(fs: LossyFileSystem, segment_bytes: int, fsync: str = "always") -> DiskStore:
    store = open_store(
        data_dir=DATA, node="s1", role="secondary", fsync=fsync, segment_bytes=segment_bytes, fs=fs
    )
    assert isinstance(store, DiskStore)
    return store


async def settle_and_close(store: DiskStore) -> None:
    """Wait until nothing is left to sync (no sync in flight), then close."""
    await until(lambda: store.durable_seq == store.log.last_seq, what="the last sync")
    store.close()


class Crash:
    """Takes one power-cut image at a chosen moment, with what was acknowledged by then."""

    def __init__(self, fs: LossyFileSystem, rng: random.Random, acked: list[int]) -> None:
        self.fs = fs
        self.rng = rng
        self.acked = acked
        self.image: LossyFileSystem | None = None
        self.acked_then = 0
        self.where = ""
        self.seen = 0
        self.rolls = 0
        self.syncs = 0
        mode = rng.choice(["any", "sync", "roll"])
        self.mode = mode
        self.at = rng.randint(1, {"any": 100, "sync": 30, "roll": 4}[mode])
        self.armed = False
        self.lock = threading.Lock()

    def __call__(self, operation: str, path: Path) -> None:
        with self.lock:
            if self.image is not None:
                return
            self.seen += 1
            if operation == "open_append" and path.suffix == ".seg" and path not in self.fs.files:
                self.rolls += 1
                if self.mode == "roll" and self.rolls == self.at:
                    self.armed = True  # at the next operation, right after the roll
                    return
            if operation in ("sync", "sync_dir"):
                self.syncs += 1
            due = {
                "any": self.seen == self.at,
                "sync": operation in ("sync", "sync_dir") and self.syncs == self.at,
                "roll": self.armed,
            }[self.mode]
            if due:
                self.now(f"{self.mode}#{self.at} before {operation} {path.name}")

    def now(self, where: str) -> None:
        # What was acknowledged first, then the image: every ack counted was
        # reported after its sync ended, so before this image.
        self.acked_then = max(self.acked, default=0)
        self.image = self.fs.crash(self.rng)
        self.where = where


async def run_until_crash(
    store: DiskStore, fs: LossyFileSystem, rng: random.Random, appended: list[Entry], epoch: int
) -> tuple[LossyFileSystem, int, str]:
    """Append batches, letting syncs run now and then, until the crash moment."""
    acked: list[int] = []

    def on_durable(seq: int) -> None:
        assert not acked or seq > acked[-1], "durable seqs only grow"
        assert seq <= store.log.last_seq
        acked.append(seq)

    store.on_durable = on_durable
    crash = Crash(fs, rng, acked)
    fs.before = crash
    try:
        for _ in range(rng.randint(5, 40)):
            if crash.image is not None:
                break
            seq = len(appended) + 1
            batch = [
                Entry(
                    s,
                    epoch,
                    rng.choice([None, s, f"c{s}"]),
                    rng.choice(MESSAGES) * rng.randint(0, 3),
                )
                for s in range(seq, seq + rng.randint(1, 6))
            ]
            store.append(batch)
            appended.extend(batch)
            pause = rng.random()
            if pause < 0.3:
                await until(
                    lambda: crash.image is not None or store.durable_seq == store.log.last_seq,
                    what="a sync",
                )
            elif pause < 0.6:
                await asyncio.sleep(0)
        if crash.image is None:
            if rng.random() < 0.5:
                await until(lambda: store.durable_seq == store.log.last_seq, what="a sync")
            with crash.lock:
                if crash.image is None:
                    crash.now("at the end")
    finally:
        fs.before = None
    await settle_and_close(store)
    assert crash.image is not None
    return crash.image, crash.acked_then, crash.where


async def crash_and_recover(seed: int) -> None:
    rng = random.Random(seed)
    segment_bytes = rng.choice([40, 100, 300, 1 << 20])
    fs = LossyFileSystem()
    store = open_disk(fs, segment_bytes)
    incarnation = store.identity.incarnation
    appended: list[Entry] = []
    for round_ in range(2):
        image, acked, where = await run_until_crash(store, fs, rng, appended, epoch=round_ + 1)
        context = f"seed {seed}, round {round_}, crash {where}, segment_bytes {segment_bytes}"
        # A crash-only image: open_store must never take it for damage (CorruptLog).
        store = open_disk(image, segment_bytes)
        fs = image
        replay = store.replay
        records = replay.records
        assert replay.repaired is None, context
        assert len(records) >= acked, f"acknowledged seq {acked} lost: {context}"
        assert records == [e.to_wire() for e in appended[: len(records)]], context
        assert store.fresh is False and store.identity.incarnation == incarnation, context
        assert store.durable_seq == store.log.last_seq == len(records), context
        # What was lost was never acknowledged; the log goes on from the replayed end.
        del appended[len(records) :]
    store.close()


@pytest.mark.parametrize("seed", range(200))
def test_nothing_acknowledged_is_lost_at_a_power_cut(seed):
    asyncio.run(crash_and_recover(seed))


def test_group_commit_batches_appends_made_while_a_sync_is_in_flight():
    async def main():
        fs = LossyFileSystem()
        store = open_disk(fs, 1 << 20)
        acked: list[int] = []
        store.on_durable = acked.append
        release = threading.Event()
        held = threading.Event()

        def hold_first_sync(operation, path):
            if operation == "sync" and not held.is_set():
                held.set()
                assert release.wait(10), "the test never released the sync"

        fs.before = hold_first_sync
        store.append([Entry(1, 1, None, "first")])
        await until(held.is_set, what="the first sync to start")
        for seq in range(2, 102):
            store.append([Entry(seq, 1, seq, f"m{seq}")])
        assert acked == [] and store.durable_seq == 0  # nothing is durable yet
        release.set()
        await until(lambda: store.durable_seq == 101, what="all appends durable")
        fs.before = None
        stats = store.sync_stats()
        assert stats is not None
        # One sync for the first append, one for the 100 made while it ran.
        assert stats["syncs"] == 2 < 101
        assert stats["synced_entries"] == 101
        # Reported in order; both syncs may complete before the loop hears of the
        # first, and then one report covers both.
        assert acked in ([1, 101], [101])
        assert fs.syncs == 2
        await settle_and_close(store)
        # And all of it is on disk for sure.
        again = open_disk(fs.crash(random.Random(0)), 1 << 20)
        assert len(again.replay.records) == 101
        again.close()

    asyncio.run(main())


def test_truncate_while_a_sync_is_in_flight_reports_only_the_new_log():
    async def main():
        fs = LossyFileSystem()
        store = open_disk(fs, 200)
        acked: list[int] = []
        store.on_durable = acked.append
        release = threading.Event()
        held = threading.Event()

        def hold_first_sync(operation, path):
            in_sync_thread = threading.current_thread().name.startswith("replog-sync")
            if operation == "sync" and in_sync_thread and not held.is_set():
                held.set()
                assert release.wait(10), "the test never released the sync"

        fs.before = hold_first_sync
        store.append([Entry(s, 1, None, f"old{s}") for s in range(1, 4)])
        await until(held.is_set, what="the first sync to start")
        store.append([Entry(s, 1, None, f"old{s}") for s in range(4, 9)])
        store.truncate(2)  # durable on return (synced here, not by the group commit)
        new = [Entry(s, 2, s, f"new{s}") for s in range(3, 7)]
        store.append(new)
        release.set()
        await until(lambda: store.durable_seq == 6, what="the new entries durable")
        fs.before = None
        # The sync begun before the truncation reports nothing (its seqs are gone).
        assert acked and max(acked) == 6 and all(seq <= 6 for seq in acked)
        await settle_and_close(store)
        again = open_disk(fs.crash(random.Random(3)), 200)
        expected = [[1, 1, None, "old1"], [2, 1, None, "old2"]] + [e.to_wire() for e in new]
        assert again.replay.records == expected
        again.close()

    asyncio.run(main())


def test_fsync_never_reports_durable_at_once():
    async def main():
        fs = LossyFileSystem()
        store = open_disk(fs, 100, fsync="never")
        acked: list[int] = []
        store.on_durable = acked.append
        entries = [Entry(s, 1, s, f"m{s}") for s in range(1, 31)]
        for start in range(0, 30, 3):
            store.append(entries[start : start + 3])
            # Reported in append itself, before any sync could have run.
            assert acked[-1] == store.durable_seq == start + 3
        assert store.sync_stats() is None
        assert fs.unsynced()
        # Images of a crash now (a clean stop would sync everything).
        killed = fs.kill()
        power_cuts = [fs.crash(random.Random(seed)) for seed in range(20)]
        store.close()
        return killed, power_cuts, entries

    killed, power_cuts, entries = asyncio.run(main())
    wire = [e.to_wire() for e in entries]

    # A process crash: the OS kept every write.
    store = open_disk(killed, 100, fsync="never")
    assert store.replay.records == wire and store.replay.torn is None
    store.close()

    # A power cut: what was never synced may be gone, but what is left is a prefix.
    lost = 0
    for seed, image in enumerate(power_cuts):
        store = open_disk(image, 100, fsync="never")
        records = store.replay.records
        assert records == wire[: len(records)], seed
        lost += len(records) < len(wire)
        store.close()
    assert lost > 0
