"""What the live cluster page (`GET /ui`, master.ui) needs from the write path, kept cheap.

`WriteStats`: the write rate and latency percentiles over the last `window_s`
seconds, in bounded memory (a ring of one-second counters and a ring of the
latest latencies), fed by `MasterNode.write` with times read from the node's
clock. `Changes`: a version number the node bumps whenever what the page shows
may have changed, and the futures of the feeds waiting for the next bump; with
no page open, a bump is one integer increment.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

# Rate and percentiles are over this many seconds.
WINDOW_S = 10
# Latencies kept for the percentiles (the most recent ones within the window).
LATENCY_SAMPLES = 1024


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank percentile `q` (0..100) of a non-empty sorted list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class WriteStats:
    """Writes answered (200 or 201) per second and their latency, over a rolling window."""

    def __init__(self, window_s: int = WINDOW_S, samples: int = LATENCY_SAMPLES) -> None:
        self.window_s = window_s
        # counts[i] is the number of writes in whole second seconds[i] (i = second % window).
        self._seconds = [-1] * window_s
        self._counts = [0] * window_s
        self._latencies: deque[tuple[float, float]] = deque(maxlen=samples)

    def record(self, now: float, latency_s: float) -> None:
        second = int(now)
        slot = second % self.window_s
        if self._seconds[slot] != second:
            self._seconds[slot] = second
            self._counts[slot] = 0
        self._counts[slot] += 1
        self._latencies.append((now, latency_s))

    def summary(self, now: float) -> dict:
        """{"rate_per_s", "latency_ms": {"p50", "p99"}, "window_s"}; percentiles are None
        without a write in the window."""
        current = int(now)
        oldest = current - self.window_s + 1
        count = sum(
            c for s, c in zip(self._seconds, self._counts, strict=True) if oldest <= s <= current
        )
        since = now - self.window_s
        latencies = sorted(lat for t, lat in self._latencies if t > since)
        p50 = p99 = None
        if latencies:
            p50 = round(percentile(latencies, 50) * 1000, 3)
            p99 = round(percentile(latencies, 99) * 1000, 3)
        return {
            "rate_per_s": round(count / self.window_s, 2),
            "latency_ms": {"p50": p50, "p99": p99},
            "window_s": self.window_s,
        }


class Changes:
    """A version bumped on every change worth showing, and the feeds waiting for one."""

    def __init__(self) -> None:
        self.version = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def __len__(self) -> int:
        return len(self._waiters)

    def notify(self) -> None:
        self.version += 1
        if self._waiters:
            waiters, self._waiters = self._waiters, set()
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    def wait(self, seen: int) -> asyncio.Future[None] | None:
        """A Future resolved at the next change after version `seen`; None if there was
        one already. Cancelling it (the feed went away) frees its place."""
        if self.version != seen:
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        future.add_done_callback(self._waiters.discard)
        return future
