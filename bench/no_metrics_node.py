"""A replog node with its metrics switched off, for the benchmark's A/B (`--parts metrics`).

    python -m bench.no_metrics_node master ARGS...      # as replog-master ARGS...
    python -m bench.no_metrics_node secondary ARGS...   # as replog-secondary ARGS...
    python -m bench.no_metrics_node --switchable master ARGS...

`--switchable`: the real metrics, which SIGUSR1 switches off and SIGUSR2 on again
(`SwitchableMetrics`): the A/B then runs on one cluster, round by round, instead of
comparing two clusters that differ in more than their metrics. `/metrics` shows
`bench_metrics_enabled` (1 or 0) to confirm a switch.

Runs the real entry point after replacing `replog.common.metrics.NodeMetrics` with
`NoMetrics`, a stand-in that takes every observation and does nothing: no counter,
no histogram, no registry. The nodes look the class up in that module when they are
built, so nothing else changes. Switching metrics off is not a product setting (an
operator has no reason to); it exists here only to measure what they cost.
`GET /metrics` of such a node answers an empty body.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence

from prometheus_client.core import GaugeMetricFamily

from replog.common import metrics
from replog.common.metrics import EventHistogram, NodeMetrics, Role, StateCollector

ROLES = ("master", "secondary")


class _NoHistogram:
    def observe(self, amount: float) -> None:
        pass


class NoMetrics:
    """What the nodes call on `NodeMetrics`, doing nothing."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.batch_entries = _NoHistogram()
        self.fsync_seconds = _NoHistogram()

    def watch(self, read: Callable[[], object]) -> None:
        pass

    def write(self, result: str, latency: float | None = None, w: int | None = None) -> None:
        pass

    def stream_opened(self, secondary_id: str) -> None:
        pass

    def forget(self, secondary_id: str) -> None:
        pass

    def exposition(self) -> bytes:
        return b""


# Whether a switchable node counts its events now (SIGUSR1: no, SIGUSR2: yes).
ENABLED = [True]


class SwitchableHistogram(EventHistogram):
    def observe(self, value: float) -> None:
        if ENABLED[0]:
            EventHistogram.observe(self, value)


class SwitchableMetrics(NodeMetrics):
    """The real metrics, whose events are counted only while ENABLED."""

    def __init__(self, role: Role) -> None:
        super().__init__(role)
        self.batch_entries = SwitchableHistogram(self.batch_entries.buckets)
        self.fsync_seconds = SwitchableHistogram(self.fsync_seconds.buckets)
        self.registry.register(
            StateCollector(
                lambda: [GaugeMetricFamily("bench_metrics_enabled", "switch", value=ENABLED[0])]
            )
        )

    def write(self, result: str, latency: float | None = None, w: int | None = None) -> None:
        if ENABLED[0]:
            super().write(result, latency, w)

    def stream_opened(self, secondary_id: str) -> None:
        if ENABLED[0]:
            super().stream_opened(secondary_id)


def _switch(on: bool) -> Callable[[int, object], None]:
    def handler(_signum: int, _frame: object) -> None:
        ENABLED[0] = on

    return handler


def entry_point(role: str) -> Callable[[Sequence[str] | None], None]:
    """The role's real `main`, imported first (it catches the stop signals at import)."""
    if role == "master":
        from replog.master.__main__ import main
    else:
        from replog.secondary.__main__ import main
    return main


def main(argv: Sequence[str]) -> None:
    switchable = bool(argv) and argv[0] == "--switchable"
    if switchable:
        argv = argv[1:]
    if not argv or argv[0] not in ROLES:
        sys.exit(
            "usage: python -m bench.no_metrics_node [--switchable] "
            f"{{{'|'.join(ROLES)}}} NODE-ARGS..."
        )
    run = entry_point(argv[0])
    if switchable:
        metrics.NodeMetrics = SwitchableMetrics
        signal.signal(signal.SIGUSR1, _switch(False))
        signal.signal(signal.SIGUSR2, _switch(True))
    else:
        metrics.NodeMetrics = NoMetrics  # type: ignore[misc,assignment]
    run(list(argv[1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
