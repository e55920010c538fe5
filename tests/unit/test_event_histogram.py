"""`EventHistogram` (the nodes' lock-free histograms) exports what the library's own
Histogram would for the same observations: same buckets (le, cumulative), count, sum."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from replog.common.metrics import (
    FSYNC_BUCKETS,
    LATENCY_BUCKETS,
    EventHistogram,
    NodeMetrics,
    StateCollector,
    histogram_family,
)


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_exported_as_the_librarys_histogram_would_be():
    rng = random.Random(7)
    # On a bound (le is inclusive), between bounds, below all, above all.
    values = [0.0, *LATENCY_BUCKETS, 0.0007, 0.003, 31.0, 1e9]
    values += [rng.expovariate(100) for _ in range(500)]
    ours = EventHistogram(LATENCY_BUCKETS)
    theirs_registry = CollectorRegistry()
    theirs = Histogram(
        "replog_write_latency_seconds", "x", ["w"], buckets=LATENCY_BUCKETS,
        registry=theirs_registry,
    ).labels(w="2")  # fmt: skip
    for value in values:
        ours.observe(value)
        theirs.observe(value)
    family = histogram_family("replog_write_latency_seconds")
    ours.add_to(family, ["2"])
    ours_registry = CollectorRegistry()
    ours_registry.register(StateCollector(lambda: [family]))
    expected = samples(generate_latest(theirs_registry))
    assert samples(generate_latest(ours_registry)) == expected
    assert expected[("replog_write_latency_seconds_count", (("w", "2"),))] == len(values)


def test_a_nodes_event_metrics_move_with_its_events():
    metrics = NodeMetrics("master")
    metrics.write("ok", 0.002, 2)
    metrics.write("ok", 0.2, 2)
    metrics.write("timeout")
    metrics.fsync_seconds.observe(FSYNC_BUCKETS[0])
    metrics.stream_opened("s1")
    metrics.stream_opened("s1")
    metrics.stream_opened("s2")
    metrics.forget("s2")
    got = samples(metrics.exposition())
    assert got[("replog_writes_total", (("result", "ok"),))] == 2
    assert got[("replog_writes_total", (("result", "timeout"),))] == 1
    assert got[("replog_writes_total", (("result", "conflict"),))] == 0
    assert got[("replog_write_latency_seconds_bucket", (("le", "0.0025"), ("w", "2")))] == 1
    assert got[("replog_write_latency_seconds_bucket", (("le", "+Inf"), ("w", "2")))] == 2
    assert got[("replog_write_latency_seconds_sum", (("w", "2"),))] == 0.202
    assert got[("replog_fsync_seconds_bucket", (("le", "0.0001"),))] == 1
    assert got[("replog_stream_reconnects_total", (("secondary", "s1"),))] == 1
    assert ("replog_stream_reconnects_total", (("secondary", "s2"),)) not in got
