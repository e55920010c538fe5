"""The secondary's HTTP and WebSocket handlers."""

from __future__ import annotations

import asyncio
import contextlib
from asyncio import Future
from collections.abc import Sequence

import orjson
import structlog
import tornado.websocket

from replog.common import wire
from replog.common.security import unauthorized_reason
from replog.common.web import JSON_TYPE, JsonHandler, parse_paging, render_messages
from replog.common.ws import POLICY_VIOLATION, PROTOCOL_ERROR, FrameLimit
from replog.core import Entry
from replog.core.errors import NotMaster
from replog.core.limits import MAX_INFLIGHT_BATCHES
from replog.core.stream import (
    ApplyEntries,
    ApplySync,
    Close,
    CloseKind,
    Heard,
    Message,
    RefusalCause,
    RefusalKind,
    SecondaryStream,
    Send,
)
from replog.secondary.node import SecondaryNode

log = structlog.get_logger("replog.secondary")


class LogHandler(JsonHandler):
    """`GET /`: the contiguous prefix this secondary holds. Clients write to the master."""

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node

    def get(self) -> None:
        start, limit = parse_paging(self)
        self.send_json(render_messages(self.node.follower.public_page(start, limit)))

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
# How it closes a dropped stream (core.stream.CloseKind): code and reason.
CLOSE_CODE = {
    CloseKind.PROTOCOL: (PROTOCOL_ERROR, "bad message"),
    CloseKind.BOUND: (POLICY_VIOLATION, "beyond a bound"),
}


class ReplicationHandler(tornado.websocket.WebSocketHandler):
    """The master's replication stream: sync and batches in, contiguous-prefix ACKs out.

    The protocol is the core's `SecondaryStream`; this handler decodes frames
    (common.wire), feeds them to it and does what it returns. Every frame is
    checked before the node sees it; a frame that breaks the protocol or a
    bound drops the stream, logged as `bad_replication_message` with its
    `reason`, and changes nothing. Frames over the node's frame limit
    (`max_message_size`, from --max-entry-bytes) are refused by Tornado as
    their header arrives (1009), logged the same way.
    """

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node
        # This connection's side of the stream protocol (the rules live there).
        self.replication = SecondaryStream(node.config.secondary_id, node.follower)
        # This connection's frame limit (it notes a frame it refused).
        self._limit = FrameLimit(node.config.max_frame_bytes)
        self._delayed: set[asyncio.Task[None]] = set()

    async def get(self, *args: str, **kwargs: str) -> None:
        # Cluster members only, checked before anything else about the upgrade.
        refusal = unauthorized_reason(self, self.settings.get("cluster_token"))
        if refusal is not None:
            await self._refuse(401, refusal)
            return
        refused = self.replication.accept(
            epoch=self.get_query_argument("epoch", ""),
            secondary=self.get_query_argument("secondary", None),
            cluster=self.get_query_argument("cluster", ""),
            max_frame=self.get_query_argument("max_frame", None),
            own_cluster=self.node.cluster_id,
            websocket=self.request.headers.get("Upgrade", "").lower() == "websocket",
        )
        if refused is None:
            await super().get(*args, **kwargs)
            return
        if refused.cause is RefusalCause.CLUSTER_MISMATCH:
            log.error(
                "cluster_mismatch", cluster=self.replication.cluster_id, own=self.node.cluster_id
            )
        elif refused.cause is RefusalCause.STALE_MASTER:
            log.warning(
                "stale_master_refused",
                epoch=self.replication.epoch,
                sync_epoch=self.node.follower.sync_epoch,
            )
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
        limit = self.node.config.max_frame_bytes
        announced = self.replication.master_frame_limit
        if announced is not None and announced > limit:
            log.warning(
                "frame_limit_below_master",
                master_frame_bytes=announced,
                limit=limit,
                reason="the master may send frames this secondary refuses: set "
                "--max-entry-bytes to the master's --max-body-bytes",
            )
        if self.replication.cluster_id:
            self.node.join(self.replication.cluster_id)
        self.node.attach_stream(self)
        self._send(self.replication.hello(self.node.store.identity.incarnation))

    def on_message(self, message: str | bytes) -> None:
        if self.node.stream is not self or self.replication.dropped:
            return  # replaced by a newer stream, or being dropped
        try:
            decoded = wire.decode_message(message, "append", "heartbeat", "sync")
        except wire.WireError as exc:
            self._close(self.replication.drop(str(exc), exc.frame))
            return
        for effect in self.replication.receive(decoded):
            if isinstance(effect, Heard):
                self.node.heard_from_master()
            elif isinstance(effect, ApplySync):
                sync = effect.sync
                self.send_ack(self.node.sync(sync.epoch, sync.keep, sync.epoch_start))
            elif isinstance(effect, ApplyEntries):
                self._receive(effect.entries)
            elif isinstance(effect, Send):
                self._send(effect.message)
            elif isinstance(effect, Close):
                self._close(effect)

    def drop(
        self, reason: str, frame: str | None = None, kind: CloseKind = CloseKind.PROTOCOL
    ) -> None:
        """End this stream over a frame no correct master sends; the master dials again
        and resumes from our next hello."""
        self._close(self.replication.drop(reason, frame, kind))

    def _close(self, close: Close | None) -> None:
        if close is None:
            return  # dropped already
        for task in self._delayed:
            task.cancel()  # a dropped stream applies nothing more
        log.warning(
            "bad_replication_message",
            reason=close.reason,
            frame=close.frame,
            epoch=self.replication.epoch,
            contiguous_seq=self.node.follower.contiguous_seq,
        )
        self.close(*CLOSE_CODE[close.kind])

    def _receive(self, entries: Sequence[Entry]) -> None:
        if entries and self.node.config.delay > 0:
            # Only worth an event when applying waits; otherwise `applied` says it.
            log.info(
                "replication_received",
                seq_from=entries[0].seq,
                seq_to=entries[-1].seq,
                count=len(entries),
                delay_s=self.node.config.delay,
            )
        if self.node.config.delay > 0:
            if len(self._delayed) >= MAX_INFLIGHT_BATCHES:
                # The master never has more unacknowledged batches in flight.
                self.drop(
                    f"more than {MAX_INFLIGHT_BATCHES} batches held by --delay at once",
                    frame="append",
                    kind=CloseKind.BOUND,
                )
                return
            task = asyncio.get_running_loop().create_task(self._apply_later(entries))
            self._delayed.add(task)
            task.add_done_callback(self._delayed.discard)
        else:
            self._apply(entries)

    async def _apply_later(self, entries: Sequence[Entry]) -> None:
        # The artificial delay: hold the batch before applying and acknowledging it.
        await asyncio.sleep(self.node.config.delay)
        # No longer held (before its ACK can let the master send another batch).
        task = asyncio.current_task()
        if task is not None:
            self._delayed.discard(task)
        self._apply(entries)

    def _apply(self, entries: Sequence[Entry]) -> None:
        # The node acknowledges once what this adds is on disk.
        result = self.node.apply(entries, self.replication.epoch)
        if result is not None and result.refused is not None:
            # Beyond the buffer's bounds: the core discarded the buffer, nothing was applied.
            self.drop(result.refused, frame="append", kind=CloseKind.BOUND)

    def send_ack(self, durable_seq: int) -> None:
        ack = self.replication.ack(durable_seq)
        if ack is not None:
            self._send(ack)

    def _send(self, message: Message) -> None:
        # On a closed stream, drop it: the next stream's hello reports our progress.
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self.write_message(wire.encode(message)).add_done_callback(_ignore_closed)

    def on_close(self) -> None:
        if self._limit.exceeded is not None and not self.replication.dropped:
            self.replication.dropped = True
            limit = int(self._limit)
            log.warning(
                "bad_replication_message",
                reason=f"frame of {self._limit.exceeded} bytes, over {limit}, the most this "
                f"secondary accepts (--max-entry-bytes {self.node.config.max_entry_bytes}): "
                "refused unread",
                frame=None,
                limit=limit,
                epoch=self.replication.epoch,
                contiguous_seq=self.node.follower.contiguous_seq,
            )
        # Batches still held by the delay die with their stream: the next
        # stream's hello reports what we hold and the master resends the rest.
        for task in self._delayed:
            task.cancel()
        self.node.detach_stream(self)
