"""The secondary's HTTP and WebSocket handlers."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
import tornado.websocket

from common import wire
from common.web import JsonHandler, parse_paging, render_messages
from secondary.node import SecondaryNode

log = structlog.get_logger("replog.secondary")


class LogHandler(JsonHandler):
    """`GET /`: the contiguous prefix this secondary holds. Clients write to the master."""

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node

    def get(self) -> None:
        start, limit = parse_paging(self)
        self.send_json(render_messages(self.node.follower.entries(start, limit)))

    def post(self) -> None:
        self.send_error_json(
            405,
            f"this is a read-only secondary; send writes to the master at "
            f"{self.node.config.master_url}/",
            master=self.node.config.master_url,
        )


class HealthHandler(JsonHandler):
    """`GET /health`: how much of the log this secondary holds."""

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node

    def get(self) -> None:
        node = self.node
        self.send_json(
            {
                "role": "secondary",
                "id": node.config.secondary_id,
                "contiguous_seq": node.follower.contiguous_seq,
                "buffered": len(node.follower.out_of_order),
                "master": node.config.master_url,
                "stream": node.stream is not None,
            }
        )


class ReplicationHandler(tornado.websocket.WebSocketHandler):
    """The master's replication stream: batches in, contiguous-prefix ACKs out."""

    def initialize(self, node: SecondaryNode) -> None:
        self.node = node
        self._delayed: set[asyncio.Task[None]] = set()

    def open(self) -> None:
        self.node.attach_stream(self)
        follower = self.node.follower
        self._send(
            wire.encode_hello(
                self.node.config.secondary_id, follower.contiguous_seq, follower.last_epoch
            )
        )

    def on_message(self, message: str | bytes) -> None:
        try:
            entries = wire.decode_append(message)
        except wire.WireError as exc:
            log.warning("bad_replication_message", error=str(exc))
            self.close(1003, "bad message")
            return
        if entries:
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
        contiguous_seq = self.node.apply(entries)
        self._send(wire.encode_ack(contiguous_seq))
        log.info("ack_sent", contiguous_seq=contiguous_seq)

    def _send(self, payload: bytes) -> None:
        # On a closed stream, drop it: the next stream's hello reports our progress.
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self.write_message(payload)

    def on_close(self) -> None:
        self.node.detach_stream(self)
