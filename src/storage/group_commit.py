"""Group commit: one fdatasync at a time, covering everything appended before it began.

Appends go to the OS at once, on the event loop (a write system call, a few
microseconds). Syncs run on one background thread: when one finishes, the
next starts at once if anything was appended meanwhile, so under load each
sync covers many entries and the event loop never waits for the disk.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from storage.segments import SegmentLog, SyncJob


class SyncStats:
    """Counts and recent latencies of syncs, for /health and the benchmark."""

    def __init__(self, keep: int = 4096) -> None:
        self.syncs = 0
        self.entries = 0
        self.latencies_ms: deque[float] = deque(maxlen=keep)

    def record(self, entries: int, seconds: float) -> None:
        self.syncs += 1
        self.entries += entries
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


class GroupCommit:
    def __init__(
        self,
        log: SegmentLog,
        on_durable: Callable[[int], None],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.log = log
        self.durable_seq = log.last_seq
        self.stats = SyncStats()
        self._on_durable = on_durable
        self._on_failure = on_failure
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replog-sync")
        self._inflight = False
        self._closed = False

    def request(self) -> None:
        """Something was appended: make it durable as soon as possible."""
        if not (self._inflight or self._closed) and self.log.last_seq > self.durable_seq:
            self._start()

    def truncated(self, keep: int) -> None:
        self.durable_seq = min(self.durable_seq, keep)

    def _start(self) -> None:
        self._inflight = True
        job = self.log.begin_sync()
        started = time.perf_counter()
        future = asyncio.get_running_loop().run_in_executor(self._executor, job.run)
        future.add_done_callback(partial(self._done, job, started))

    def _done(self, job: SyncJob, started: float, future: asyncio.Future[None]) -> None:
        self._inflight = False
        self.log.finish_sync(job)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            # The kernel may have dropped the unsynced pages: nothing after the
            # last good sync can be trusted, and retrying would lie (fsyncgate).
            self._on_failure(exc)
            return
        fresh = job.generation == self.log.generation and job.target_seq > self.durable_seq
        if fresh:
            self.stats.record(job.target_seq - self.durable_seq, time.perf_counter() - started)
            self.durable_seq = job.target_seq
            self._on_durable(self.durable_seq)
        self.request()

    def close(self) -> None:
        """Stop syncing (a sync under way finishes; nothing new starts)."""
        self._closed = True
        self._executor.shutdown(wait=True)
