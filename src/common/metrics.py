"""Prometheus metrics of one node (`GET /metrics`), with `prometheus_client`.

Each node has a registry of its own (never the library's global one), so that
several nodes can run in one process (the tests, the simulator). What the node
already knows (sequence numbers, each secondary's progress and status, read-only)
is read from its state when a scrape comes (`StateCollector`): the write path
pays nothing for gauges. Only events are counted as they happen: writes by
outcome, write latency by `w`, batch sizes, sync durations, stream reconnects.
The children of labelled metrics are bound once, so an observation on the write
path is a dict lookup and the library's own (locked) increment.

The README's "Operations" section lists every metric; `METRICS` below is that
table's source of truth (tests check each one is exposed and documented).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Literal

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
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

# No `*_created` series (one timestamp per counter and histogram child): nothing of
# replog's reads them, and they double the lines of a scrape. (A process-wide switch of
# the library; the nodes are the only users of it in their process.)
prometheus_client.disable_created_metrics()

# What a node reports at scrape time: its gauges, built from its state.
StateReader = Callable[[], Iterable[GaugeMetricFamily]]


def _help(name: str) -> str:
    return METRICS[name][3]


def gauge(name: str, value: float) -> GaugeMetricFamily:
    """An unlabelled gauge of the table above."""
    return GaugeMetricFamily(name, _help(name), value=value)


def labelled_gauge(name: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, _help(name), labels=list(METRICS[name][1]))


class StateCollector(Collector):
    """Reads the node's state when scraped (nothing is kept between scrapes)."""

    def __init__(self, read: StateReader) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
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


class NodeMetrics:
    """One node's registry and the event metrics its glue feeds."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.registry = CollectorRegistry()
        self.batch_entries = Histogram(
            "replog_replication_batch_entries",
            _help("replog_replication_batch_entries"),
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.fsync_seconds = Histogram(
            "replog_fsync_seconds",
            _help("replog_fsync_seconds"),
            buckets=FSYNC_BUCKETS,
            registry=self.registry,
        )
        self._reconnects = Counter(
            "replog_stream_reconnects_total",
            _help("replog_stream_reconnects_total"),
            ["secondary"],
            registry=self.registry,
        )
        self._streams_seen: set[str] = set()
        self._writes: dict[str, Counter] = {}
        self._latency: Histogram | None = None
        self._latency_by_w: dict[int, Histogram] = {}
        if role == "master":
            name = "replog_writes_total"
            writes = Counter(name, _help(name), ["result"], registry=self.registry)
            # Bound once, and shown at 0 from the start.
            self._writes = {result: writes.labels(result=result) for result in WRITE_RESULTS}
            self._latency = Histogram(
                "replog_write_latency_seconds",
                _help("replog_write_latency_seconds"),
                ["w"],
                buckets=LATENCY_BUCKETS,
                registry=self.registry,
            )

    def watch(self, read: StateReader) -> None:
        """Report the node's state (its gauges) at every scrape."""
        self.registry.register(StateCollector(read))

    def write(self, result: str, latency: float | None = None, w: int | None = None) -> None:
        """A `POST /` ended with `result`; an answered one (ok, duplicate) with its latency."""
        self._writes[result].inc()
        if latency is not None and w is not None and self._latency is not None:
            child = self._latency_by_w.get(w)
            if child is None:
                child = self._latency_by_w[w] = self._latency.labels(w=str(w))
            child.observe(latency)

    def stream_opened(self, secondary_id: str) -> None:
        """A replication stream with `secondary_id` opened: after its first, a reconnect."""
        child = self._reconnects.labels(secondary=secondary_id)  # shown at 0 from the first
        if secondary_id in self._streams_seen:
            child.inc()
        else:
            self._streams_seen.add(secondary_id)

    def forget(self, secondary_id: str) -> None:
        """A removed member: stop reporting it."""
        self._streams_seen.discard(secondary_id)
        with contextlib.suppress(KeyError):
            self._reconnects.remove(secondary_id)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (what `GET /metrics` answers)."""
        return prometheus_client.generate_latest(self.registry)
