"""Transport: one persistent WebSocket stream from the master to each secondary.

Why a WebSocket: Tornado's default HTTP client opens a connection per request,
and a request per message per secondary is exactly what makes naive
replication slow. One long-lived stream per secondary carries batches in
order, lets the master pipeline several batches before the first ACK, and
lets the secondary acknowledge asynchronously, with no extra dependency.

The link only moves bytes: what to send and what an ACK means is decided by
the core through `MasterNode`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from common import wire
from common.backoff import Backoff

if TYPE_CHECKING:
    from master.config import MasterConfig
    from master.node import MasterNode

log = structlog.get_logger("replog.master")

CONNECT_ERRORS = (
    OSError,
    HTTPClientError,
    StreamClosedError,
    WebSocketClosedError,
    asyncio.TimeoutError,
    wire.WireError,
)


class SecondaryLink:
    """Keeps a replication stream to one secondary open, reconnecting forever."""

    def __init__(self, node: MasterNode, secondary_id: str, config: MasterConfig) -> None:
        self.node = node
        self.secondary_id = secondary_id
        self.config = config
        self._backoff = Backoff(initial=config.retry_initial, maximum=config.retry_max)
        self._wake = asyncio.Event()  # new entries, an ACK, or the stream ended
        self._restart = asyncio.Event()  # registration: reconnect now
        self._conn: WebSocketClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        self._wake.set()

    def restart(self) -> None:
        self._backoff.reset()
        self._restart.set()
        if self._conn is not None:
            self._conn.close()
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            self._conn.close()

    async def _run(self) -> None:
        while True:
            self._restart.clear()
            try:
                await self._session()
            except CONNECT_ERRORS as exc:
                log.info("stream_error", secondary=self.secondary_id, error=repr(exc))
            finally:
                self._conn = None
                self.node.stream_closed(self.secondary_id)
            if self._restart.is_set():
                continue
            delay = self._backoff.next_delay()
            log.info("stream_retry", secondary=self.secondary_id, retry_in_ms=round(delay * 1000))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._restart.wait(), delay)

    async def _session(self) -> None:
        url = self.node.url_of(self.secondary_id).rstrip("/")
        ws_url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        request = HTTPRequest(ws_url + wire.REPLICATION_PATH, connect_timeout=5, request_timeout=5)
        conn = await websocket_connect(
            request,
            ping_interval=self.config.ping_interval,
            ping_timeout=self.config.ping_timeout,
            max_message_size=wire.MAX_MESSAGE_BYTES,
        )
        self._conn = conn
        raw = await asyncio.wait_for(conn.read_message(), 10)
        if raw is None:
            return
        hello = wire.decode(raw, "hello")
        self.node.stream_opened(self.secondary_id, wire.decode_seq(hello))
        self._backoff.reset()
        reader = asyncio.get_running_loop().create_task(self._read_acks(conn))
        try:
            while not reader.done():
                self._wake.clear()
                while (batch := self.node.next_batch(self.secondary_id)) is not None:
                    await conn.write_message(wire.encode_append(batch.entries))
                await self._wake.wait()
        finally:
            conn.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, *CONNECT_ERRORS):
                await reader

    async def _read_acks(self, conn: WebSocketClientConnection) -> None:
        try:
            while (raw := await conn.read_message()) is not None:
                ack = wire.decode(raw, "ack")
                self.node.acked(self.secondary_id, wire.decode_seq(ack))
                self._wake.set()
        finally:
            self._wake.set()
