"""The secondary's HTTP and WebSocket handlers."""

from __future__ import annotations

import asyncio
import contextlib
from asyncio import Future

import orjson
import structlog
import tornado.websocket

from replog.common import wire
from replog.common.reads import LogReadHandler
from replog.common.security import unauthorized_reason
from replog.common.web import JSON_TYPE, JsonHandler, parse_paging
from replog.common.ws import FrameLimit
from replog.core.errors import NotMaster
from replog.core.stream import RefusalKind
from replog.secondary.node import SecondaryNode
from replog.secondary.replication import ReplicationSession

log = structlog.get_logger("replog.secondary")


class LogHandler(LogReadHandler):
    """`GET /`: the durable contiguous prefix this secondary holds (common.reads: read
    concern, long poll). Clients write to the master."""

    node: SecondaryNode

    def post(self) -> None:
        raise NotMaster(self.node.config.master_url)


def _ignore_closed(future: asyncio.Future) -> None:
    """A write fails only when the stream closed; the next stream's hello covers it."""
    if not future.cancelled():
        future.exception()


class HealthHandler(JsonHandler):
    """`GET /health`: how much of the log this secondary holds."""

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node

    def get(self) -> None:
        self.send_json(self.node.health())

    # HEAD as GET, without the body (Tornado drops it): uptime checkers use it.
    head = get


class LogExportHandler(JsonHandler):
    """`GET /replication/log?from=&limit=`: entries with epochs, for a restarting master.

    A page holds at most `limit` entries and stops once it reaches
    wire.LOG_PAGE_BYTES (always holding one); an empty page is the end.
    """

    internal = True

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node

    def get(self) -> None:
        start, limit = parse_paging(self)
        most = wire.LOG_PAGE_MAX_ENTRIES  # even without `limit`
        self.send_json(wire.log_page(self.node.follower.entries(start, min(limit or most, most))))


# How the handler answers a refused dial (core.stream.RefusalKind).
REFUSAL_STATUS = {RefusalKind.BAD_REQUEST: 400, RefusalKind.CONFLICT: 409}


class ReplicationHandler(tornado.websocket.WebSocketHandler):
    """The master's replication stream: sync and batches in, contiguous-prefix ACKs out.

    The protocol is the core's `SecondaryStream`, carried out by a
    `ReplicationSession` (secondary.replication) that this handler is the pipe
    of: it hands the session the dial and each frame, and sends and closes
    what the session says. Every frame is checked before the node sees it; a
    frame that breaks the protocol or a bound drops the stream, logged as
    `bad_replication_message` with its `reason`, and changes nothing. Frames
    over the node's frame limit (`max_message_size`, from --max-entry-bytes)
    are refused by Tornado as their header arrives (1009), logged the same way.
    """

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node
        self.session = ReplicationSession(node, self)
        # This connection's frame limit (it notes a frame it refused).
        self._limit = FrameLimit(node.config.max_frame_bytes)

    async def get(self, *args: str, **kwargs: str) -> None:
        # Cluster members only, checked before anything else about the upgrade.
        refusal = unauthorized_reason(self, self.settings.get("cluster_token"))
        if refusal is not None:
            await self._refuse(401, refusal)
            return
        refused = self.session.accept(
            epoch=self.get_query_argument("epoch", ""),
            secondary=self.get_query_argument("secondary", None),
            cluster=self.get_query_argument("cluster", ""),
            max_frame=self.get_query_argument("max_frame", None),
            websocket=self.request.headers.get("Upgrade", "").lower() == "websocket",
        )
        if refused is None:
            await super().get(*args, **kwargs)
            return
        await self._refuse(REFUSAL_STATUS[refused.kind], refused.reason)

    def _refuse(self, status: int, message: str) -> Future[None]:
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        return self.finish(orjson.dumps({"error": message}))

    def write_error(self, status_code: int, **kwargs: object) -> None:
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(orjson.dumps({"error": self._reason}))

    @property
    def max_message_size(self) -> int:
        """Frames over it are refused unread (1009); see common.wire."""
        return self._limit

    def open(self) -> None:
        self.session.open()

    def on_message(self, message: str | bytes) -> None:
        self.session.receive(message)

    def send(self, frame: bytes) -> None:
        """The session's pipe: on a closed stream, drop the frame (the next stream's
        hello reports our progress)."""
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self.write_message(frame).add_done_callback(_ignore_closed)

    def on_close(self) -> None:
        exceeded = self._limit.exceeded
        self.session.closed(exceeded, int(self._limit) if exceeded is not None else None)
