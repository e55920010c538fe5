"""Prometheus metrics of one node (`GET /metrics`), with `prometheus_client`.

Each node has a registry of its own (never the library's global one), so that
several nodes can run in one process (the tests, the simulator). What the node
already knows (sequence numbers, each secondary's progress and status, read-only)
is read from its state when a scrape comes (`StateCollector`): the write path
pays nothing for gauges. Only events are counted as they happen: writes by
outcome, write latency by `w`, batch sizes, sync durations, stream reconnects.
They are counted in plain numbers (`EventHistogram`, ints), without the locks of
the library's Counter and Histogram, and become the library's metric families at
scrape time: an observation on the write path is a bisection and an addition.

The README's "Operations" section lists every metric; `METRICS` below is that
table's source of truth (tests check each one is exposed and documented).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable
from typing import Literal

import prometheus_client
import prometheus_client.utils
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from replog.core.health import Health

Role = Literal["master", "secondary"]

# The outcomes of a `POST /` on the master (`replog_writes_total{result}`).
OK = "ok"
DUPLICATE = "duplicate"
CONFLICT = "conflict"
TIMEOUT = "timeout"
READ_ONLY = "read_only"
BAD_REQUEST = "bad_request"
WRITE_RESULTS = (OK, DUPLICATE, CONFLICT, TIMEOUT, READ_ONLY, BAD_REQUEST)

# Seconds. A w=1 write on a fast disk takes well under a millisecond; a w=N one
# waits for the slowest secondary (seconds with --delay).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
FSYNC_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
# Entries in one replication batch (a batch holds at most core.limits' bound).
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

# name -> (type, labels, roles, meaning): the README's table.
METRICS: dict[str, tuple[str, tuple[str, ...], tuple[Role, ...], str]] = {
    "replog_log_last_seq": (
        "gauge",
        (),
        ("master", "secondary"),
        "the highest seq in the log: the master's last_seq; a secondary's contiguous_seq",
    ),
    "replog_durable_seq": (
        "gauge",
        (),
        ("master", "secondary"),
        "the highest seq of the node's own copy that is on disk (durable_seq in /health)",
    ),
    "replog_commit_seq": (
        "gauge",
        (),
        ("master", "secondary"),
        "the commit point: the seq a majority holds (a secondary: as the master last told it)",
    ),
    "replog_writes_total": (
        "counter",
        ("result",),
        ("master",),
        "POST / requests by outcome: ok (201), duplicate (200), conflict (409), timeout (504), "
        "read_only (503), bad_request (400); a batch counts once",
    ),
    "replog_write_latency_seconds": (
        "histogram",
        ("w",),
        ("master",),
        "from a write's append to its answer, for writes answered 200 or 201, by resolved w",
    ),
    "replog_secondary_acked_seq": (
        "gauge",
        ("secondary",),
        ("master",),
        "the contiguous prefix the secondary acknowledged (holds on disk)",
    ),
    "replog_secondary_lag": (
        "gauge",
        ("secondary",),
        ("master",),
        "entries the secondary has not acknowledged: last_seq - acked_seq",
    ),
    "replog_secondary_status": (
        "gauge",
        ("secondary", "status"),
        ("master",),
        "1 for the secondary's current status (healthy, suspected, unhealthy), 0 for the others",
    ),
    "replog_read_only": (
        "gauge",
        (),
        ("master",),
        "1 while the master refuses writes (no quorum, or recovering), else 0",
    ),
    "replog_stream_connected": (
        "gauge",
        (),
        ("secondary",),
        "1 while the secondary has a replication stream from the master, else 0",
    ),
    "replog_replication_batch_entries": (
        "histogram",
        (),
        ("master", "secondary"),
        "entries per replication batch: sent (master), received (secondary)",
    ),
    "replog_fsync_seconds": (
        "histogram",
        (),
        ("master", "secondary"),
        "duration of each group commit (the fdatasync calls); only with --data-dir and "
        "--fsync always",
    ),
    "replog_stream_reconnects_total": (
        "counter",
        ("secondary",),
        ("master", "secondary"),
        "replication streams opened after the first one of this process, per secondary "
        "(on a secondary: its own id)",
    ),
}

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

MetricFamily = GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily
# What a node reports at scrape time, built from its state or its event counts.
StateReader = Callable[[], Iterable[MetricFamily]]


def _help(name: str) -> str:
    return METRICS[name][3]


def gauge(name: str, value: float) -> GaugeMetricFamily:
    """An unlabelled gauge of the table above."""
    return GaugeMetricFamily(name, _help(name), value=value)


def labelled_gauge(name: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, _help(name), labels=list(METRICS[name][1]))


def counter_family(name: str) -> CounterMetricFamily:
    """A counter of the table above, by its labels (the library adds `_total` back)."""
    return CounterMetricFamily(
        name.removesuffix("_total"), _help(name), labels=list(METRICS[name][1])
    )


def histogram_family(name: str) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, _help(name), labels=list(METRICS[name][1]))


class StateCollector(Collector):
    """Reads the node's state when scraped (nothing is kept between scrapes)."""

    def __init__(self, read: StateReader) -> None:
        self._read = read

    def collect(self) -> Iterable[MetricFamily]:
        return list(self._read())


def master_gauges(
    *,
    last_seq: int,
    durable_seq: int,
    commit_seq: int,
    read_only: bool,
    secondaries: Iterable[tuple[str, int, str]],
) -> list[GaugeMetricFamily]:
    """The master's gauges; `secondaries`: (id, acked_seq, status) per member."""
    acked = labelled_gauge("replog_secondary_acked_seq")
    lag = labelled_gauge("replog_secondary_lag")
    status = labelled_gauge("replog_secondary_status")
    for secondary_id, acked_seq, current in secondaries:
        acked.add_metric([secondary_id], acked_seq)
        lag.add_metric([secondary_id], max(0, last_seq - acked_seq))
        for state in Health:
            status.add_metric([secondary_id, state.value], 1 if state.value == current else 0)
    return [
        gauge("replog_log_last_seq", last_seq),
        gauge("replog_durable_seq", durable_seq),
        gauge("replog_commit_seq", commit_seq),
        gauge("replog_read_only", 1 if read_only else 0),
        acked,
        lag,
        status,
    ]


def secondary_gauges(
    *, last_seq: int, durable_seq: int, commit_seq: int, connected: bool
) -> list[GaugeMetricFamily]:
    return [
        gauge("replog_log_last_seq", last_seq),
        gauge("replog_durable_seq", durable_seq),
        gauge("replog_commit_seq", commit_seq),
        gauge("replog_stream_connected", 1 if connected else 0),
    ]


class EventHistogram:
    """A histogram of events, kept as plain numbers and exported at scrape time.

    `observe` is a bisection and two additions: no lock, unlike the library's
    Histogram (a lock per bucket, sum and count), because each histogram has one
    writer: the event loop, or for `replog_fsync_seconds` the syncing thread. A
    scrape (on the event loop) may read a sync's count a moment before its sum;
    the next scrape agrees.
    """

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        # counts[i]: observations in (buckets[i-1], buckets[i]]; the last: above them all.
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def add_to(self, family: HistogramMetricFamily, labels: list[str]) -> None:
        """This histogram as one labelled sample set of `family` (cumulative buckets)."""
        bounds = [*map(prometheus_client.utils.floatToGoString, self.buckets), "+Inf"]
        family.add_metric(
            labels, list(zip(bounds, itertools.accumulate(self.counts), strict=True)), self.total
        )


class NodeMetrics:
    """One node's registry, and the event metrics its glue feeds.

    Events are counted in plain ints and `EventHistogram`s (a few hundred
    nanoseconds each on the write path) and handed to `prometheus_client` only
    when `GET /metrics` asks, by a collector: the library renders every line.
    """

    def __init__(self, role: Role) -> None:
        self.role = role
        self.registry = CollectorRegistry()
        self.batch_entries = EventHistogram(BATCH_BUCKETS)
        self.fsync_seconds = EventHistogram(FSYNC_BUCKETS)
        # secondary id -> reconnects (shown at 0 from its first stream).
        self._reconnects: dict[str, int] = {}
        # Bound from the start, so that every result is shown at 0.
        self._writes: dict[str, int] = dict.fromkeys(WRITE_RESULTS, 0) if role == "master" else {}
        self._latency_by_w: dict[int, EventHistogram] = {}
        self.registry.register(StateCollector(self._events))

    def watch(self, read: StateReader) -> None:
        """Report the node's state (its gauges) at every scrape."""
        self.registry.register(StateCollector(read))

    def write(self, result: str, latency: float | None = None, w: int | None = None) -> None:
        """A `POST /` ended with `result`; an answered one (ok, duplicate) with its latency."""
        self._writes[result] += 1
        if latency is not None and w is not None:
            histogram = self._latency_by_w.get(w)
            if histogram is None:
                histogram = self._latency_by_w[w] = EventHistogram(LATENCY_BUCKETS)
            histogram.observe(latency)

    def stream_opened(self, secondary_id: str) -> None:
        """A replication stream with `secondary_id` opened: after its first, a reconnect."""
        if secondary_id in self._reconnects:
            self._reconnects[secondary_id] += 1
        else:
            self._reconnects[secondary_id] = 0

    def forget(self, secondary_id: str) -> None:
        """A removed member: stop reporting it."""
        self._reconnects.pop(secondary_id, None)

    def _events(self) -> list[MetricFamily]:
        """The event metrics as the library's families (at scrape time)."""
        families: list[MetricFamily] = []
        if self.role == "master":
            writes = counter_family("replog_writes_total")
            for result, count in self._writes.items():
                writes.add_metric([result], count)
            latency = histogram_family("replog_write_latency_seconds")
            for w, histogram in sorted(self._latency_by_w.items()):
                histogram.add_to(latency, [str(w)])
            families += [writes, latency]
        batches = histogram_family("replog_replication_batch_entries")
        self.batch_entries.add_to(batches, [])
        syncs = histogram_family("replog_fsync_seconds")
        self.fsync_seconds.add_to(syncs, [])
        reconnects = counter_family("replog_stream_reconnects_total")
        for secondary_id, count in sorted(self._reconnects.items()):
            reconnects.add_metric([secondary_id], count)
        return [*families, batches, syncs, reconnects]

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (what `GET /metrics` answers)."""
        return prometheus_client.generate_latest(self.registry)
