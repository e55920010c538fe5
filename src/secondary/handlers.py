"""The secondary's HTTP and WebSocket handlers."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import structlog
import tornado.websocket

from replog.common import wire
from replog.common.security import unauthorized_reason
from replog.common.web import DIGITS, JSON_TYPE, JsonHandler, parse_paging, render_messages
from replog.common.ws import POLICY_VIOLATION, PROTOCOL_ERROR, FrameLimit
from replog.core.errors import NotMaster
from replog.core.limits import MAX_INFLIGHT_BATCHES
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


class ReplicationHandler(tornado.websocket.WebSocketHandler):
    """The master's replication stream: sync and batches in, contiguous-prefix ACKs out.

    Every frame is checked (common.wire) before the node sees it; a frame that
    breaks the protocol or a bound drops the stream, logged as
    `bad_replication_message` with its `reason`, and changes nothing. Frames
    over the node's frame limit (`max_message_size`, from --max-entry-bytes)
    are refused by Tornado as their header arrives (1009), logged the same way.
    """

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node
        self.epoch = 0
        self.cluster_id = ""
        self.master_frame_limit: int | None = None
        self._synced = False
        self._dropped = False
        # This connection's frame limit (it notes a frame it refused).
        self._limit = FrameLimit(node.config.max_frame_bytes)
        self._delayed: set[asyncio.Task[None]] = set()

    def get(self, *args: str, **kwargs: str) -> object:
        # Cluster members only, checked before anything else about the upgrade.
        refusal = unauthorized_reason(self, self.settings.get("cluster_token"))
        if refusal is not None:
            return self._refuse(401, refusal)
        raw = self.get_query_argument("epoch", "")
        if not DIGITS.fullmatch(raw) or not 1 <= int(raw) <= wire.MAX_INT:
            return self._refuse(
                400, f"?epoch=<master epoch> is required: an integer from 1 to {wire.MAX_INT}"
            )
        announced = self.get_query_argument("max_frame", None)
        if announced is not None:
            if not DIGITS.fullmatch(announced):
                return self._refuse(400, "?max_frame= must be a number of bytes")
            self.master_frame_limit = int(announced)
        wanted = self.get_query_argument("secondary", self.node.config.secondary_id)
        if wanted != self.node.config.secondary_id:
            # The master dialled the wrong node: it must not count us as `wanted`.
            return self._refuse(409, f"this is {self.node.config.secondary_id!r}, not {wanted!r}")
        self.epoch = int(raw)
        self.cluster_id = self.get_query_argument("cluster", "")
        refusal = self.node.cluster_refusal(self.cluster_id) if self.cluster_id else None
        if refusal is not None:
            log.error("cluster_mismatch", cluster=self.cluster_id, own=self.node.cluster_id)
            return self._refuse(409, refusal)
        if not self.node.accepts_master(self.epoch):
            log.warning(
                "stale_master_refused", epoch=self.epoch, sync_epoch=self.node.follower.sync_epoch
            )
            return self._refuse(409, "a newer master epoch is known here")
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            return self._refuse(400, "this is the replication WebSocket endpoint")
        return super().get(*args, **kwargs)

    def _refuse(self, status: int, message: str) -> object:
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
        if self.master_frame_limit is not None and self.master_frame_limit > limit:
            log.warning(
                "frame_limit_below_master",
                master_frame_bytes=self.master_frame_limit,
                limit=limit,
                reason="the master may send frames this secondary refuses: set "
                "--max-entry-bytes to the master's --max-body-bytes",
            )
        if self.cluster_id:
            self.node.join(self.cluster_id)
        self.node.attach_stream(self)
        self._send(wire.encode_hello(self.node.hello()))

    def on_message(self, message: str | bytes) -> None:
        if self.node.stream is not self or self._dropped:
            return  # replaced by a newer stream, or being dropped
        kind = None
        try:
            doc = wire.decode(message, "append", "heartbeat", "sync")
            kind = doc["type"]
            if kind == "sync":
                self._sync(wire.decode_sync(doc))
            elif not self._synced:
                raise wire.WireError(f"{kind} before sync: a stream starts with sync")
            elif kind == "heartbeat":
                self.node.heard_from_master()
                self.send_ack(self.node.follower.durable_seq)
            else:
                self._receive(wire.decode_append(doc))
        except wire.WireError as exc:
            self.drop(str(exc), frame=kind)

    def _sync(self, sync: wire.Sync) -> None:
        if self._synced:
            raise wire.WireError("a second sync on one stream")
        if sync.epoch != self.epoch:
            raise wire.WireError(
                f"sync epoch {sync.epoch} differs from the stream's epoch {self.epoch}"
            )
        held = self.node.follower.contiguous_seq
        if sync.keep > held:
            raise wire.WireError(f"sync keeps {sync.keep} entries, this secondary holds {held}")
        self.node.heard_from_master()
        contiguous = self.node.sync(sync.epoch, sync.keep, sync.epoch_start)
        self._synced = True
        self.send_ack(contiguous)

    def drop(self, reason: str, frame: str | None = None, code: int = PROTOCOL_ERROR) -> None:
        """End this stream over a frame no correct master sends; the master dials again
        and resumes from our next hello."""
        if self._dropped:
            return
        self._dropped = True
        for task in self._delayed:
            task.cancel()  # a dropped stream applies nothing more
        log.warning(
            "bad_replication_message",
            reason=reason,
            frame=frame,
            epoch=self.epoch,
            contiguous_seq=self.node.follower.contiguous_seq,
        )
        self.close(code, "bad message" if code == PROTOCOL_ERROR else "beyond a bound")

    def _receive(self, entries: list) -> None:
        self.node.heard_from_master()
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
                    code=POLICY_VIOLATION,
                )
                return
            task = asyncio.get_running_loop().create_task(self._apply_later(entries))
            self._delayed.add(task)
            task.add_done_callback(self._delayed.discard)
        else:
            self._apply(entries)

    async def _apply_later(self, entries: list) -> None:
        # The artificial delay: hold the batch before applying and acknowledging it.
        await asyncio.sleep(self.node.config.delay)
        # No longer held (before its ACK can let the master send another batch).
        self._delayed.discard(asyncio.current_task())  # type: ignore[arg-type]
        self._apply(entries)

    def _apply(self, entries: list) -> None:
        # The node acknowledges once what this adds is on disk.
        result = self.node.apply(entries, self.epoch)
        if result is not None and result.refused is not None:
            # Beyond the buffer's bounds: the core discarded the buffer, nothing was applied.
            self.drop(result.refused, frame="append", code=POLICY_VIOLATION)

    def send_ack(self, durable_seq: int) -> None:
        # Nothing before `sync`: what we hold may include a suffix it discards.
        if self._synced and not self._dropped:
            self._send(wire.encode_ack(durable_seq))

    def _send(self, payload: bytes) -> None:
        # On a closed stream, drop it: the next stream's hello reports our progress.
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self.write_message(payload).add_done_callback(_ignore_closed)

    def on_close(self) -> None:
        if self._limit.exceeded is not None and not self._dropped:
            self._dropped = True
            limit = int(self._limit)
            log.warning(
                "bad_replication_message",
                reason=f"frame of {self._limit.exceeded} bytes, over {limit}, the most this "
                f"secondary accepts (--max-entry-bytes {self.node.config.max_entry_bytes}): "
                "refused unread",
                frame=None,
                limit=limit,
                epoch=self.epoch,
                contiguous_seq=self.node.follower.contiguous_seq,
            )
        # Batches still held by the delay die with their stream: the next
        # stream's hello reports what we hold and the master resends the rest.
        for task in self._delayed:
            task.cancel()
        self.node.detach_stream(self)
