"""A replog node with its metrics switched off, for the benchmark's A/B (`--parts metrics`).

    python -m bench.no_metrics_node master ARGS...      # as replog-master ARGS...
    python -m bench.no_metrics_node secondary ARGS...   # as replog-secondary ARGS...

Runs the real entry point after replacing `replog.common.metrics.NodeMetrics` with
`NoMetrics`, a stand-in that takes every observation and does nothing: no counter,
no histogram, no registry. The nodes look the class up in that module when they are
built, so nothing else changes. Switching metrics off is not a product setting (an
operator has no reason to); it exists here only to measure what they cost.
`GET /metrics` of such a node answers an empty body.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

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


def entry_point(role: str) -> Callable[[Sequence[str] | None], None]:
    """The role's real `main`, imported first (it catches the stop signals at import)."""
    if role == "master":
        from replog.master.__main__ import main
    else:
        from replog.secondary.__main__ import main
    return main


def main(argv: Sequence[str]) -> None:
    if not argv or argv[0] not in ROLES:
        sys.exit(f"usage: python -m bench.no_metrics_node {{{'|'.join(ROLES)}}} NODE-ARGS...")
    run = entry_point(argv[0])
    from replog.common import metrics

    metrics.NodeMetrics = NoMetrics  # type: ignore[misc,assignment]
    run(list(argv[1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
