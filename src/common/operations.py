"""The operator's endpoints, on both roles: `GET /metrics`, `GET /livez`, `GET /readyz`.

Open like `/health` (no cluster token): a Prometheus server or a kubelet scrapes them.
"""

from __future__ import annotations

from typing import Protocol

from replog.common.metrics import CONTENT_TYPE, NodeMetrics
from replog.common.web import JsonHandler


class Operated(Protocol):
    """What the endpoints need from a node (both MasterNode and SecondaryNode)."""

    metrics: NodeMetrics

    def ready_reason(self) -> str | None:
        """Why the node cannot do its job now, or None."""
        ...


class MetricsHandler(JsonHandler):
    """`GET /metrics`: the node's metrics in the Prometheus text format (common.metrics)."""

    def initialize(self, node: Operated) -> None:
        self.node = node

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(self.node.metrics.exposition())

    # HEAD as GET, without the body (Tornado drops it): uptime checkers use it.
    head = get


class LivezHandler(JsonHandler):
    """`GET /livez`: the process serves HTTP (its event loop turns). Always 200."""

    def get(self) -> None:
        self.send_json({"live": True})

    # HEAD as GET, without the body (Tornado drops it): uptime checkers use it.
    head = get


class ReadyzHandler(JsonHandler):
    """`GET /readyz`: 200 when the node can do its job (a master open for writes, a
    secondary with a replication stream), else 503 saying why."""

    def initialize(self, node: Operated) -> None:
        self.node = node

    def get(self) -> None:
        reason = self.node.ready_reason()
        if reason is None:
            self.send_json({"ready": True})
        else:
            # `reason` for probes and dashboards; `error` as in every error answer.
            self.send_json({"ready": False, "reason": reason, "error": reason}, 503)

    # HEAD as GET, without the body (Tornado drops it): uptime checkers use it.
    head = get


def operation_routes(node: Operated) -> list[tuple[str, type, dict]]:
    """The three routes, for a node's Application."""
    return [
        (r"/metrics", MetricsHandler, {"node": node}),
        (r"/livez", LivezHandler, {}),
        (r"/readyz", ReadyzHandler, {"node": node}),
    ]
