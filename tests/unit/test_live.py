"""master.live: the live page's rolling write stats and change signal."""

from __future__ import annotations

import asyncio

from replog.master.live import Changes, WriteStats, percentile


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0


def test_rate_counts_the_window_and_forgets_older_seconds():
    stats = WriteStats(window_s=10)
    for i in range(30):
        stats.record(100.0 + i * 0.1, 0.002)  # 30 writes in 100.0 .. 102.9
    summary = stats.summary(103.0)
    assert summary["rate_per_s"] == 3.0 and summary["window_s"] == 10
    assert summary["latency_ms"] == {"p50": 2.0, "p99": 2.0}
    # Seconds 100..102 are within the 10 s ending at 109.5; at 113 (104..113) they are gone.
    assert stats.summary(109.5)["rate_per_s"] == 3.0
    assert stats.summary(113.0)["rate_per_s"] == 0.0
    assert stats.summary(113.0)["latency_ms"] == {"p50": None, "p99": None}


def test_a_reused_slot_starts_from_zero():
    stats = WriteStats(window_s=10)
    stats.record(100.5, 0.001)
    stats.record(110.5, 0.001)  # the same slot, ten seconds later
    assert stats.summary(110.9)["rate_per_s"] == 0.1


def test_percentiles_over_the_latest_samples_only():
    stats = WriteStats(window_s=10, samples=100)
    for i in range(1000):
        stats.record(50.0 + i / 1000, 1.0 if i < 900 else 0.001)
    # Memory is bounded by the ring: only the last 100 latencies (all 1 ms) remain.
    assert stats.summary(51.0)["latency_ms"] == {"p50": 1.0, "p99": 1.0}
    assert stats.summary(51.0)["rate_per_s"] == 100.0  # counts are not bounded by the ring


def test_p99_sees_the_slow_tail():
    stats = WriteStats()
    for i in range(100):
        stats.record(1.0, 0.5 if i == 99 else 0.001)
    for i in range(100, 200):
        stats.record(1.0, 0.5 if i >= 198 else 0.001)
    assert stats.summary(1.0)["latency_ms"] == {"p50": 1.0, "p99": 500.0}


def test_changes_wake_waiters_once():
    asyncio.run(changes_wake_waiters_once())


async def changes_wake_waiters_once():
    changes = Changes()
    seen = changes.version
    waiter = changes.wait(seen)
    assert waiter is not None and len(changes) == 1
    changes.notify()
    assert waiter.done() and len(changes) == 0
    # A change it has not seen yet: no wait at all.
    assert changes.wait(seen) is None
    # A cancelled waiter (the feed went away) leaves no trace.
    other = changes.wait(changes.version)
    assert other is not None
    other.cancel()
    await asyncio.sleep(0)
    assert len(changes) == 0
