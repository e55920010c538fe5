"""The secondary's HTTP and WebSocket handlers."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import structlog
import tornado.websocket

from common import wire
from common.security import unauthorized_reason
from common.web import DIGITS, JSON_TYPE, JsonHandler, parse_paging, render_messages
from secondary.node import SecondaryNode

log = structlog.get_logger("replog.secondary")


class LogHandler(JsonHandler):
    """`GET /`: the contiguous prefix this secondary holds. Clients write to the master."""

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node

    def get(self) -> None:
        start, limit = parse_paging(self)
        self.send_json(render_messages(self.node.follower.public_page(start, limit)))

    def post(self) -> None:
        self.send_error_json(
            405,
            f"this is a read-only secondary; send writes to the master at "
            f"{self.node.config.master_url}/",
            master=self.node.config.master_url,
        )


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
    """`GET /replication/log?from=&limit=`: entries with epochs, for a restarting master."""

    internal = True

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node

    def get(self) -> None:
        start, limit = parse_paging(self)
        entries = self.node.follower.entries(start, limit)
        self.send_json(orjson.dumps({"entries": [e.to_wire() for e in entries]}))


class ReplicationHandler(tornado.websocket.WebSocketHandler):
    """The master's replication stream: sync and batches in, contiguous-prefix ACKs out."""

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node
        self.epoch = 0
        self.cluster_id = ""
        self._synced = False
        self._delayed: set[asyncio.Task[None]] = set()

    def get(self, *args: str, **kwargs: str) -> object:
        # Cluster members only, checked before anything else about the upgrade.
        refusal = unauthorized_reason(self, self.settings.get("cluster_token"))
        if refusal is not None:
            return self._refuse(401, refusal)
        raw = self.get_query_argument("epoch", "")
        if not DIGITS.fullmatch(raw):
            return self._refuse(400, "?epoch=<master epoch> is required")
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

    def open(self) -> None:
        if self.cluster_id:
            self.node.join(self.cluster_id)
        self.node.attach_stream(self)
        self._send(wire.encode_hello(self.node.hello()))

    def on_message(self, message: str | bytes) -> None:
        if self.node.stream is not self:
            return  # replaced by a newer stream
        self.node.heard_from_master()
        try:
            doc = wire.decode(message, "append", "heartbeat", "sync")
            if doc["type"] == "heartbeat":
                self.send_ack(self.node.follower.durable_seq)
            elif doc["type"] == "sync":
                epoch = wire.decode_int(doc, "epoch")
                if epoch != self.epoch:
                    raise wire.WireError("sync epoch differs from the stream's")
                contiguous = self.node.sync(
                    epoch, wire.decode_int(doc, "keep"), wire.decode_int(doc, "epoch_start")
                )
                self._synced = True
                self.send_ack(contiguous)
            else:
                self._receive(wire.decode_entries(doc))
        except wire.WireError as exc:
            log.warning("bad_replication_message", error=str(exc))
            self.close(1003, "bad message")

    def _receive(self, entries: list) -> None:
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
            task = asyncio.get_running_loop().create_task(self._apply_later(entries))
            self._delayed.add(task)
            task.add_done_callback(self._delayed.discard)
        else:
            self._apply(entries)

    async def _apply_later(self, entries: list) -> None:
        # The artificial delay: hold the batch before applying and acknowledging it.
        await asyncio.sleep(self.node.config.delay)
        self._apply(entries)

    def _apply(self, entries: list) -> None:
        # The node acknowledges once what this adds is on disk.
        self.node.apply(entries, self.epoch)

    def send_ack(self, durable_seq: int) -> None:
        # Nothing before `sync`: what we hold may include a suffix it discards.
        if self._synced:
            self._send(wire.encode_ack(durable_seq))

    def _send(self, payload: bytes) -> None:
        # On a closed stream, drop it: the next stream's hello reports our progress.
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self.write_message(payload).add_done_callback(_ignore_closed)

    def on_close(self) -> None:
        # Batches still held by the delay die with their stream: the next
        # stream's hello reports what we hold and the master resends the rest.
        for task in self._delayed:
            task.cancel()
        self.node.detach_stream(self)
