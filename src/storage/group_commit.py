"""Group commit: one fdatasync at a time, covering everything appended before it began.

Appends go to the OS at once, on the event loop (a write system call, a few
microseconds). Syncs run on one background thread: when one finishes, the
next starts at once if anything was appended meanwhile, so under load each
sync covers many entries and the event loop never waits for the disk. Each
handoff between the threads costs CPU (a futex, an eventfd wake-up), so the
thread starts the next sync by itself and tells the loop of completed syncs
once per loop turn.

A store takes any `Syncer` (made by a `SyncerFactory`); `GroupCommit` is the
one the servers run. `InlineSyncer` syncs on the caller's thread when the
event loop (or whoever drives it) runs the sync it scheduled: no thread, so a
simulator on a virtual clock decides exactly when a sync completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from replog.storage.segments import SegmentLog


class SyncStats:
    """Counts and recent latencies of syncs, for /health and the benchmark."""

    def __init__(self, keep: int = 4096) -> None:
        self.syncs = 0
        self.entries = 0
        self._synced_to = 0
        self.latencies_ms: deque[float] = deque(maxlen=keep)
        # Told each sync's duration in seconds (the node's metrics); called on the
        # syncing thread, so it must be thread-safe and quick.
        self.observer: Callable[[float], None] | None = None

    def record(self, target_seq: int, seconds: float) -> None:
        """A sync that made 1..target_seq durable took `seconds` (the fdatasync calls)."""
        if self.observer is not None:
            self.observer(seconds)
        self.syncs += 1
        self.entries += max(0, target_seq - self._synced_to)
        self._synced_to = max(self._synced_to, target_seq)
        self.latencies_ms.append(seconds * 1000)

    def to_json(self) -> dict:
        ordered = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

        return {
            "syncs": self.syncs,
            "synced_entries": self.entries,
            "entries_per_sync": round(self.entries / self.syncs, 2) if self.syncs else None,
            "sync_ms_p50": pct(0.50),
            "sync_ms_p99": pct(0.99),
        }


class Syncer(Protocol):
    """What a DiskStore needs to make its appends durable (fsync="always")."""

    # The durable prefix, as reported to `on_durable` (a store's reset sets it).
    durable_seq: int
    stats: SyncStats
    # A sync failed: nothing after the last good one may be claimed durable.
    failed: bool

    def request(self) -> None:
        """Something was appended: make it durable, then report it to `on_durable`."""

    def truncated(self, keep: int) -> None:
        """The log was cut back to 1..keep."""

    def close(self) -> None:
        """Stop syncing (a sync under way finishes; nothing new starts)."""


# Makes a store's syncer: (log, on_durable, on_failure, lock); `lock` guards the log.
SyncerFactory = Callable[
    [SegmentLog, Callable[[int], None], Callable[[BaseException], None], threading.Lock],
    Syncer,
]


class GroupCommit:
    """Syncs the log on a thread of its own; reports the durable prefix on the loop.

    The thread syncs as long as anything was appended since its last sync began,
    without a round trip through the event loop between two syncs; the loop is
    told only of completed syncs, one notification for however many completed
    while it was busy. Every use of the log, on either thread, holds `lock`.
    """

    def __init__(
        self,
        log: SegmentLog,
        on_durable: Callable[[int], None],
        on_failure: Callable[[BaseException], None],
        lock: threading.Lock,
    ) -> None:
        self.log = log
        self.lock = lock
        self.durable_seq = log.last_seq
        self.stats = SyncStats()
        self._on_durable = on_durable
        self._on_failure = on_failure
        self._wake = threading.Condition(lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wanted = False  # appended since the current sync began
        self._scheduled = False  # a request is due at the end of this loop turn
        self._closed = False
        # Filled by the thread, emptied by the loop (under the lock).
        self._completed: list[tuple[int, int]] = []  # (target_seq, generation)
        self._notified = False
        # A sync failed: nothing after the last good one may be claimed durable.
        self.failed = False

    def request(self) -> None:
        """Something was appended: make it durable as soon as possible.

        The sync is asked for once the event loop has run what is ready now, so
        every request that arrived together shares it (no wait: the same turn).
        """
        if self._scheduled or self._closed:
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # before the loop runs (start-up): the next request asks
        self._scheduled = True
        self._loop.call_soon(self._ask)

    def _ask(self) -> None:
        self._scheduled = False
        with self._wake:
            if self._closed or self.log.last_seq <= self.durable_seq:
                return
            self._wanted = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="replog-sync", daemon=True)
                self._thread.start()
            self._wake.notify()

    def truncated(self, keep: int) -> None:
        self.durable_seq = min(self.durable_seq, keep)

    def _run(self) -> None:
        try:
            self._sync_while_wanted()
        except BaseException as exc:
            # A failed sync, or anything else: the node must stop (on_failure).
            with self._wake:
                self.failed = True
            self._call_loop(self._on_failure, exc)

    def _sync_while_wanted(self) -> None:
        while True:
            with self._wake:
                while not (self._wanted or self._closed):
                    self._wake.wait()
                if self._closed:
                    return
                self._wanted = False
                job = self.log.begin_sync()
            started = time.perf_counter()
            try:
                job.run()
            finally:
                with self._wake:
                    self.log.finish_sync(job)
            seconds = time.perf_counter() - started
            with self._wake:
                self.stats.record(job.target_seq, seconds)
                self._completed.append((job.target_seq, job.generation))
                notify = not self._notified
                self._notified = True
            if notify:
                self._call_loop(self._deliver)

    def _call_loop(self, callback: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed: the process is stopping
            self._loop.call_soon_threadsafe(callback, *args)

    def _deliver(self) -> None:
        """On the loop: the syncs that completed since the last delivery."""
        with self._wake:
            completed, self._completed = self._completed, []
            self._notified = False
            generation = self.log.generation
            if self._closed:
                return  # the store closed meanwhile: its owner is stopping
        # A sync begun before a truncate says nothing of what came after it.
        durable = max((target for target, gen in completed if gen == generation), default=0)
        if durable > self.durable_seq:
            self.durable_seq = durable
            self._on_durable(durable)

    def close(self) -> None:
        """Stop syncing (a sync under way finishes; nothing new starts)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()


# Runs a callback later: asyncio's loop.call_soon, or a queue a test or simulator drains.
Schedule = Callable[[Callable[[], None]], object]


class InlineSyncer:
    """A syncer without a thread: each request schedules one sync on the caller's side.

    `request()` hands `sync` to `schedule` (default: the running loop's
    call_soon), once until it has run, so requests made together share one
    sync, as with GroupCommit. `sync()` runs the fdatasyncs on the calling
    thread and reports the durable prefix to `on_durable` straight away; a
    failure sets `failed` and goes to `on_failure`, and nothing syncs after it.
    `clock` times the syncs for the stats only (a simulator passes its own).
    """

    def __init__(
        self,
        log: SegmentLog,
        on_durable: Callable[[int], None],
        on_failure: Callable[[BaseException], None],
        lock: threading.Lock,
        *,
        schedule: Schedule | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.log = log
        self.lock = lock
        self.durable_seq = log.last_seq
        self.stats = SyncStats()
        self.failed = False
        self._on_durable = on_durable
        self._on_failure = on_failure
        self._schedule = schedule
        self._clock = clock
        self._scheduled = False
        self._closed = False

    @classmethod
    def factory(
        cls, schedule: Schedule | None = None, clock: Callable[[], float] = time.perf_counter
    ) -> SyncerFactory:
        """A SyncerFactory for DiskStore / open_store, with this schedule and clock."""

        def make(
            log: SegmentLog,
            on_durable: Callable[[int], None],
            on_failure: Callable[[BaseException], None],
            lock: threading.Lock,
        ) -> Syncer:
            return cls(log, on_durable, on_failure, lock, schedule=schedule, clock=clock)

        return make

    @property
    def pending(self) -> bool:
        """A sync is scheduled and has not run yet."""
        return self._scheduled

    def request(self) -> None:
        if self._scheduled or self._closed or self.failed:
            return
        schedule = self._schedule
        if schedule is None:
            try:
                schedule = asyncio.get_running_loop().call_soon
            except RuntimeError:
                # No loop yet (start-up): sync now. Dropping the request would leave
                # what was appended undeclared durable until some later append.
                self._scheduled = True
                self.sync()
                return
        self._scheduled = True
        schedule(self.sync)

    def truncated(self, keep: int) -> None:
        self.durable_seq = min(self.durable_seq, keep)

    def sync(self) -> None:
        """Sync everything appended so far and report it (what `request` scheduled)."""
        self._scheduled = False
        if self._closed or self.failed:
            return
        with self.lock:
            if self.log.last_seq <= self.durable_seq:
                return
            job = self.log.begin_sync()
        started = self._clock()
        try:
            job.run()
        except BaseException as exc:
            self.failed = True
            self._on_failure(exc)
            return
        finally:
            with self.lock:
                self.log.finish_sync(job)
        self.stats.record(job.target_seq, self._clock() - started)
        if job.target_seq > self.durable_seq:
            self.durable_seq = job.target_seq
            self._on_durable(job.target_seq)

    def close(self) -> None:
        self._closed = True
