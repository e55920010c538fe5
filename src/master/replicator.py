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
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import structlog
from tornado.httpclient import HTTPClientError
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from replog.common import wire
from replog.common.backoff import Backoff
from replog.common.loop import cancel_and_wait
from replog.common.ws import POLICY_VIOLATION, PROTOCOL_ERROR, TOO_BIG, FrameLimit
from replog.core import AckBeyondSent, Health

if TYPE_CHECKING:
    from replog.master.config import MasterConfig
    from replog.master.node import MasterNode

log = structlog.get_logger("replog.master")


class PeerMismatch(Exception):
    """The node answering at the secondary's URL is not the one that registered."""


CONNECT_ERRORS = (
    OSError,
    HTTPClientError,
    StreamClosedError,
    WebSocketClosedError,
    asyncio.TimeoutError,
    PeerMismatch,
)


def _ignore(future: asyncio.Future) -> None:
    """Write futures fail only when the stream closed, which the session handles."""
    if not future.cancelled():
        future.exception()


def _close_if_connected(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


class SecondaryLink:
    """Keeps a replication stream to one secondary open, reconnecting forever.

    Each connection attempt runs as its own task (a session). `restart()`
    cancels the current session outright, so nothing an old session reads
    (a late hello or ACK) can reach the core after the secondary registered
    again.
    """

    def __init__(self, node: MasterNode, secondary_id: str, config: MasterConfig) -> None:
        self.node = node
        self.secondary_id = secondary_id
        self.config = config
        self._backoff = Backoff(initial=config.retry_initial, maximum=config.retry_max)
        # Set by wake() (new entries, an ACK, the stream ended, a heartbeat due);
        # the send loop parks on `_wakeup` only when nothing happened meanwhile.
        self._woken = False
        self._wakeup: asyncio.Future[None] | None = None
        self._restart = asyncio.Event()  # registration: reconnect now
        self._conn: WebSocketClientConnection | None = None
        # The current connection's read limit (it notes a frame it refused).
        self._limit = FrameLimit(wire.MASTER_READ_LIMIT)
        self._task: asyncio.Task[None] | None = None
        self._session_task: asyncio.Task[None] | None = None
        # The connection while a session is streaming (after hello and sync).
        self._stream: WebSocketClientConnection | None = None
        self._send_soon = False
        self._stopped = False
        # The last stream ended over a frame one end refused (cleared by a good ACK).
        self._refused = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """New entries or an ACK: send soon if the stream is idle, else let the loop run."""
        if (
            self._stream is not None
            and not self._send_soon
            and self.node.log.idle(self.secondary_id)
        ):
            # Nothing in flight: this is the latency path (one client, say), so
            # skip the hop through the send loop, yet let the current callback
            # (a handler answering a w=1 write) finish first. Under load something
            # is always in flight and the loop coalesces entries into bigger batches.
            self._send_soon = True
            asyncio.get_running_loop().call_soon(self._send_now)
        self._woken = True
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _send_now(self) -> None:
        self._send_soon = False
        if self._stream is not None:
            self._send_batches(self._stream)

    def _send_batches(self, conn: WebSocketClientConnection) -> None:
        try:
            while (batch := self.node.next_batch(self.secondary_id)) is not None:
                conn.write_message(wire.encode_append(batch.items)).add_done_callback(_ignore)
        except WebSocketClosedError:
            pass  # the session notices and ends; unacknowledged entries are resent

    def restart(self) -> None:
        """Registration: drop the current session (if any) and dial at once.

        Not at once after a stream that one end refused a frame of (a peer that
        breaks the protocol, or a secondary whose frame limit is below ours):
        that secondary registers again each time, and the backoff keeps the two
        from looping as fast as they can.
        """
        if not self._refused:
            self._backoff.reset()
            self._restart.set()
        if self._session_task is not None:
            self._session_task.cancel()

    def drop_connection(self) -> None:
        """Abort the current stream (declared unhealthy); the link dials again.

        Aborted, not closed: a graceful close waits for the peer's close frame,
        which a hung or cut-off peer never sends.
        """
        conn = self._conn
        if conn is not None:
            conn.close()
            stream = getattr(conn.protocol, "stream", None)
            if stream is not None:
                stream.close()

    async def stop(self) -> None:
        # Checked by the loop too: a cancellation swallowed on its way must not let
        # the link dial on after stop().
        self._stopped = True
        # A session may have ended with a dial error nobody collected (the link's own
        # task was cancelled first): it no longer matters.
        await cancel_and_wait(self._task, self._session_task)

    async def _run(self) -> None:
        # A restarted master streams nothing before it has recovered the log.
        await self.node.opened.wait()
        loop = asyncio.get_running_loop()
        while not self._stopped:
            self._restart.clear()
            self._session_task = loop.create_task(self._session())
            try:
                await self._session_task
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # the link itself is stopping
            except HTTPClientError as exc:
                if exc.code == 401:
                    # Our token is not the secondary's: nothing streams until they agree.
                    log.error(
                        "stream_unauthorized",
                        secondary=self.secondary_id,
                        url=self._url(),
                        error="the secondary refused the cluster token (401): give every "
                        "node the same --cluster-token",
                    )
                else:
                    log.info("stream_error", secondary=self.secondary_id, error=repr(exc))
            except ssl.SSLError as exc:
                # The secondary's certificate does not verify (or it speaks no TLS).
                log.error(
                    "stream_tls_error",
                    secondary=self.secondary_id,
                    url=self._url(),
                    error=f"{exc} (is --tls-ca the CA that signed the secondary's certificate?)",
                )
            except CONNECT_ERRORS as exc:
                log.info("stream_error", secondary=self.secondary_id, error=repr(exc))
            except Exception:
                # Never let a surprise end the link for good: log it and retry.
                log.exception("stream_failed", secondary=self.secondary_id)
            if self._stopped:
                return
            if self._restart.is_set():
                continue
            delay = self._backoff.next_delay()
            log.info("stream_retry", secondary=self.secondary_id, retry_in_ms=round(delay * 1000))
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for loses a cancel
            # that comes as the event is set, and the link would dial on after stop().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._restart.wait()

    def _url(self) -> str | None:
        """The secondary's URL, for a log line (None once it has been removed)."""
        if not self.node.log.is_member(self.secondary_id):
            return None
        return self.node.url_of(self.secondary_id)

    async def _session(self) -> None:
        opened = False
        try:
            conn = await self._connect()
            async with asyncio.timeout(self.config.unhealthy_after):
                raw = await conn.read_message()
            if raw is None:
                self._log_closed(conn, "hello")
                return
            try:
                hello = wire.decode_hello(wire.decode(raw, "hello"))
            except wire.WireError as exc:
                self._refuse(conn, str(exc), "hello")
                return
            self._check_identity(hello)
            epoch, keep = self.node.stream_opened(self.secondary_id, hello)
            opened = True
            await conn.write_message(wire.encode_sync(epoch, keep, self.node.log.epoch_start))
            reader = asyncio.get_running_loop().create_task(self._read_acks(conn))
            self._stream = conn
            try:
                await self._send_loop(conn, reader)
            finally:
                self._stream = None
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, *CONNECT_ERRORS):
                    await reader
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self.node.stream_closed(self.secondary_id, was_open=opened)

    def _refuse(self, conn: WebSocketClientConnection, reason: str, frame: str) -> None:
        """Drop a stream over a frame no correct secondary sends; we dial again later."""
        self._refused = True
        log.warning(
            "bad_replication_message", secondary=self.secondary_id, frame=frame, reason=reason
        )
        conn.close(PROTOCOL_ERROR, "bad message")

    def _log_closed(self, conn: WebSocketClientConnection, frame: str) -> None:
        """The stream ended: say why, if it was over a frame one end refused."""
        if self._limit.exceeded is not None:
            self._refused = True
            log.warning(
                "bad_replication_message",
                secondary=self.secondary_id,
                frame=frame,
                reason=f"frame of {self._limit.exceeded} bytes, over {int(self._limit)}, the "
                "most a master reads (a hello or an ACK): refused unread",
            )
        elif conn.close_code in (PROTOCOL_ERROR, POLICY_VIOLATION, TOO_BIG):
            self._refused = True
            hint = (
                ": it takes entries up to its --max-entry-bytes; set that to this master's "
                "--max-body-bytes"
                if conn.close_code == TOO_BIG
                else ""
            )
            log.error(
                "stream_refused_by_secondary",
                secondary=self.secondary_id,
                code=conn.close_code,
                reason=f"{conn.close_reason}{hint}",
            )

    async def _connect(self) -> WebSocketClientConnection:
        url = self.node.url_of(self.secondary_id).rstrip("/")
        ws_url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        query = urlencode(
            {
                "epoch": self.node.log.epoch,
                "secondary": self.secondary_id,
                "cluster": self.node.cluster_id,
                # So that a secondary that would refuse our largest frames says so at once.
                "max_frame": self.config.max_frame_bytes,
            }
        )
        timeout = self.config.unhealthy_after
        # The cluster token, and the secondary's certificate verified for wss.
        request = self.node.peers.request(
            f"{ws_url}{wire.REPLICATION_PATH}?{query}",
            connect_timeout=timeout,
            request_timeout=timeout,
        )
        # A secondary sends a hello and ACKs only: anything larger is refused unread.
        self._limit = FrameLimit(wire.MASTER_READ_LIMIT)
        connecting = websocket_connect(request, max_message_size=self._limit)
        try:
            self._conn = await asyncio.shield(connecting)
        except asyncio.CancelledError:
            # restart() cancelled us mid-handshake: close whatever it still opens.
            connecting.add_done_callback(_close_if_connected)
            raise
        return self._conn

    def _check_identity(self, hello: wire.Hello) -> None:
        if hello.secondary != self.secondary_id:
            # Another secondary answers at this URL: it must not count as this one.
            raise PeerMismatch(
                f"{self.node.url_of(self.secondary_id)} is {hello.secondary!r}, "
                f"not {self.secondary_id!r}"
            )
        expected = self.node.log.progress(self.secondary_id).incarnation
        if hello.incarnation != expected:
            # Not the node that registered (it restarted since): it registers again.
            raise PeerMismatch(
                f"{self.secondary_id!r} answers as incarnation {hello.incarnation!r}, "
                f"registered as {expected!r}"
            )

    async def _send_loop(self, conn: WebSocketClientConnection, reader: asyncio.Task) -> None:
        """Send batches as entries appear, and a heartbeat every interval."""
        interval = self.config.heartbeat_interval
        loop = asyncio.get_running_loop()
        heartbeat_due = loop.time()
        while not reader.done():
            if self.node.status_of(self.secondary_id) == Health.UNHEALTHY:
                # Silent too long: this connection may be dead without knowing it
                # (a cut link sends no RST). Drop it and dial again.
                log.info("stream_dropped_unhealthy", secondary=self.secondary_id)
                return
            self._woken = False
            self._send_batches(conn)
            if loop.time() >= heartbeat_due:
                # Never awaited: a peer that stopped reading must not block this loop.
                conn.write_message(wire.HEARTBEAT).add_done_callback(_ignore)
                heartbeat_due = loop.time() + interval
            if self._woken:
                continue  # something happened while we were writing
            self._wakeup = loop.create_future()
            timer = loop.call_at(heartbeat_due, self.wake)
            try:
                await self._wakeup
            finally:
                timer.cancel()
                self._wakeup = None

    def _idle(self) -> bool:
        log = self.node.log
        return log.is_member(self.secondary_id) and log.idle(self.secondary_id)

    def _acked_seq(self) -> int:
        log = self.node.log
        return log.progress(self.secondary_id).acked_seq if log.is_member(self.secondary_id) else 0

    async def _read_acks(self, conn: WebSocketClientConnection) -> None:
        try:
            while (raw := await conn.read_message()) is not None:
                before = self._acked_seq()
                try:
                    self.node.acked(self.secondary_id, wire.decode_seq(wire.decode(raw, "ack")))
                except (wire.WireError, AckBeyondSent) as exc:
                    self._refuse(conn, str(exc), "ack")
                    return
                if self._acked_seq() > before or self._idle():
                    # A working stream (it took what it was sent): the next dial after
                    # it ends is at once. A peer that refuses or breaks what it is sent
                    # (the ACK answering sync proves nothing yet) waits out the backoff.
                    self._backoff.reset()
                    self._refused = False
                self.wake()
            self._log_closed(conn, "ack")
        finally:
            self.wake()
