"""Transport: one persistent WebSocket stream from the master to each secondary.

Why a WebSocket: Tornado's default HTTP client opens a connection per request,
and a request per message per secondary is exactly what makes naive
replication slow. One long-lived stream per secondary carries batches in
order, lets the master pipeline several batches before the first ACK, and
lets the secondary acknowledge asynchronously, with no extra dependency.

The link only moves bytes and arms timers: what to send, what a frame means
and when to drop a stream is decided by the core's `MasterStream`, one per
connection session. What the link needs from the master node is `LinkHost`
(the node is given a factory of links, so nothing here imports it).

Dialing is a seam too: a link takes a `Dialer` that opens a `Connection`
(default `dial_websocket`, Tornado's WebSocket client with the cluster token);
a simulator gives one over its own network and runs this same link, e.g.
`functools.partial(SecondaryLink, dial=its_dialer)` as the node's link factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlencode

import structlog
from tornado.httpclient import HTTPClientError
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, websocket_connect

from replog.common import wire
from replog.common.backoff import Backoff
from replog.common.loop import cancel_and_wait
from replog.common.metrics import NodeMetrics
from replog.common.ws import POLICY_VIOLATION, PROTOCOL_ERROR, TOO_BIG, FrameLimit
from replog.core import Satisfied
from replog.core.stream import (
    Append,
    Close,
    CloseKind,
    Committed,
    MasterEffect,
    MasterStream,
    Opened,
    Progress,
    Resolve,
    Send,
    Working,
)

if TYPE_CHECKING:
    from replog.common.security import PeerClient
    from replog.common.sources import Clock
    from replog.master.config import MasterConfig

log = structlog.get_logger("replog.master")


class LinkHost(Protocol):
    """What a link needs from the master node."""

    # Set once the master has its log: a restarted master streams nothing before.
    opened: asyncio.Event
    cluster_id: str | None
    # Dials with the cluster token, and verifies the secondary's certificate.
    peers: PeerClient
    # The node's clock (seconds, monotonic): what the stream's ages and deadlines are read on.
    clock: Clock
    # The source of the backoff's jitter.
    rng: random.Random
    # The node's metrics: batch sizes and stream reconnects are counted by the link.
    metrics: NodeMetrics

    def url_of(self, secondary_id: str) -> str | None:
        """The secondary's URL; None once it has been removed."""
        ...

    def open_stream(self, secondary_id: str) -> MasterStream:
        """A new protocol state machine for one connection session."""
        ...

    def resolve(self, satisfied: list[Satisfied]) -> None:
        """Answer the writers whose write concern is now met."""
        ...

    def committed(self) -> None:
        """The commit point advanced: wake `read=majority` readers, tell every stream."""
        ...

    def acked(self, secondary_id: str) -> None:
        """The secondary acknowledged more of the log (for the live page's feed)."""
        ...


class Connection(Protocol):
    """One replication connection to a secondary, as the link uses it (Tornado's
    WebSocketClientConnection is one)."""

    # Set once closed by the peer: the WebSocket close code and reason it sent.
    close_code: int | None
    close_reason: str | None

    def read_message(self) -> Awaitable[str | bytes | None]:
        """The next frame; None once the connection closed."""
        ...

    def write_message(self, message: bytes) -> asyncio.Future[None]:
        """Send a frame; the Future fails if the connection closed. Raises
        WebSocketClosedError on a connection known closed."""
        ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


# Opens a connection to `url` (the secondary's replication URL with its query) within
# `timeout` seconds, reading frames up to `limit` (a FrameLimit notes one it refused),
# dialed as `peers` says (the cluster token, TLS verification). Raises CONNECT_ERRORS.
Dialer = Callable[[str, float, FrameLimit, "PeerClient"], Awaitable[Connection]]


async def dial_websocket(
    url: str, timeout: float, limit: FrameLimit, peers: PeerClient
) -> Connection:
    """The default Dialer: Tornado's WebSocket client."""
    request = peers.request(url, connect_timeout=timeout, request_timeout=timeout)
    return await websocket_connect(request, max_message_size=limit)


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

    Each connection attempt runs as its own task (a session) with its own
    `MasterStream`. `restart()` cancels the current session outright, so
    nothing an old session reads (a late hello or ACK) can reach the core
    after the secondary registered again.
    """

    def __init__(
        self,
        host: LinkHost,
        secondary_id: str,
        config: MasterConfig,
        *,
        dial: Dialer = dial_websocket,
    ) -> None:
        self.host = host
        self._dial = dial
        self.secondary_id = secondary_id
        self.config = config
        self.backoff = Backoff(initial=config.retry_initial, maximum=config.retry_max, rng=host.rng)
        # Set by wake() (new entries, an ACK, the stream ended, a heartbeat due);
        # the send loop parks on `_wakeup` only when nothing happened meanwhile.
        self._woken = False
        self._wakeup: asyncio.Future[None] | None = None
        self._restart = asyncio.Event()  # registration: reconnect now
        self._conn: Connection | None = None
        # The current connection's read limit (it notes a frame it refused).
        self._limit = FrameLimit(wire.MASTER_READ_LIMIT)
        self._task: asyncio.Task[None] | None = None
        self._session_task: asyncio.Task[None] | None = None
        # The connection and its protocol state while a session is streaming
        # (after hello and sync).
        self._live: tuple[Connection, MasterStream] | None = None
        self._send_soon = False
        self._stopped = False
        # The last stream ended over a frame one end refused (cleared by a good ACK).
        self._refused = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """New entries, an ACK, a status change: send soon if the stream is idle, else
        let the loop run (it polls the stream, which decides what is due)."""
        if self._live is not None and not self._send_soon and self._live[1].idle:
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
        if self._live is not None:
            conn, stream = self._live
            self._write(conn, stream.batches())

    def _write(self, conn: Connection, sends: Sequence[Send]) -> None:
        try:
            for send in sends:
                message = send.message
                if isinstance(message, Append):
                    entries = message.entries
                    self.host.metrics.batch_entries.observe(len(entries))
                    log.info(
                        "replication_send",
                        secondary=self.secondary_id,
                        seq_from=entries[0].seq,
                        seq_to=entries[-1].seq,
                        count=len(entries),
                    )
                # Never awaited: a peer that stopped reading must not block the link.
                conn.write_message(wire.encode(message)).add_done_callback(_ignore)
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
            self.backoff.reset()
            self._restart.set()
        if self._session_task is not None:
            self._session_task.cancel()

    def _abort(self) -> None:
        """Abort the current connection; the link dials again.

        Aborted, not closed: a graceful close waits for the peer's close frame,
        which a hung or cut-off peer never sends.
        """
        conn = self._conn
        if conn is not None:
            conn.close()
            stream = getattr(getattr(conn, "protocol", None), "stream", None)
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
        await self.host.opened.wait()
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
                        url=self.host.url_of(self.secondary_id),
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
                    url=self.host.url_of(self.secondary_id),
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
            delay = self.backoff.next_delay()
            log.info("stream_retry", secondary=self.secondary_id, retry_in_ms=round(delay * 1000))
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for loses a cancel
            # that comes as the event is set, and the link would dial on after stop().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._restart.wait()

    async def _session(self) -> None:
        stream = self.host.open_stream(self.secondary_id)
        try:
            conn = await self._connect(stream.epoch)
            async with asyncio.timeout(self.config.unhealthy_after):
                raw = await conn.read_message()
            if raw is None:
                self._log_closed(conn, "hello")
                return
            if not self._carry_out(conn, self._receive(stream, raw)):
                return
            reader = asyncio.get_running_loop().create_task(self._read_acks(conn, stream))
            self._live = (conn, stream)
            try:
                await self._send_loop(conn, stream, reader)
            finally:
                self._live = None
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, *CONNECT_ERRORS):
                    await reader
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            ended = stream.end()
            if ended is not None and ended.was_open:
                log.info("stream_closed", secondary=self.secondary_id, acked_seq=ended.acked_seq)

    def _receive(self, stream: MasterStream, raw: str | bytes) -> list[MasterEffect]:
        """A frame from the secondary, decoded and handed to the stream."""
        try:
            message = wire.decode_message(raw, *stream.expecting)
        except wire.WireError as exc:
            return stream.violation(str(exc))
        return stream.receive(message, self.host.clock())

    def _carry_out(self, conn: Connection, effects: list[MasterEffect]) -> bool:
        """Do what the stream decided; False once it closed."""
        for effect in effects:
            if isinstance(effect, Send):
                self._write(conn, [effect])
            elif isinstance(effect, Resolve):
                self.host.resolve(effect.satisfied)
            elif isinstance(effect, Committed):
                self.host.committed()
            elif isinstance(effect, Progress):
                self.host.acked(self.secondary_id)
                log.info(
                    "ack",
                    secondary=self.secondary_id,
                    seq_from=effect.seq_from,
                    seq_to=effect.seq_to,
                    acked_seq=effect.seq_to,
                )
            elif isinstance(effect, Working):
                # A working stream (it took what it was sent): the next dial after
                # it ends is at once. A peer that refuses or breaks what it is sent
                # (the ACK answering sync proves nothing yet) waits out the backoff.
                self.backoff.reset()
                self._refused = False
            elif isinstance(effect, Opened):
                self._log_opened(effect)
            elif isinstance(effect, Close):
                self._close(conn, effect)
                return False
        return True

    def _log_opened(self, opened: Opened) -> None:
        self.host.metrics.stream_opened(self.secondary_id)
        if opened.keep < opened.contiguous_seq:
            log.warning(
                "secondary_log_truncated",
                secondary=self.secondary_id,
                keep=opened.keep,
                seq_from=opened.keep + 1,
                seq_to=opened.contiguous_seq,
                discarded=opened.contiguous_seq - opened.keep,
            )
        log.info(
            "stream_opened",
            secondary=self.secondary_id,
            contiguous_seq=opened.contiguous_seq,
            keep=opened.keep,
            last_seq=opened.last_seq,
            epoch=opened.epoch,
        )

    def _close(self, conn: Connection, close: Close) -> None:
        if close.kind is CloseKind.PROTOCOL:
            # A frame no correct secondary sends; we dial again later, with backoff.
            self._refused = True
            log.warning(
                "bad_replication_message",
                secondary=self.secondary_id,
                frame=close.frame,
                reason=close.reason,
            )
            conn.close(PROTOCOL_ERROR, "bad message")
        elif close.kind is CloseKind.PEER_MISMATCH:
            raise PeerMismatch(close.reason)
        elif close.kind is CloseKind.UNHEALTHY:
            log.info("stream_dropped_unhealthy", secondary=self.secondary_id)
            self._abort()

    def _log_closed(self, conn: Connection, frame: str) -> None:
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

    async def _connect(self, epoch: int) -> Connection:
        url = self.host.url_of(self.secondary_id)
        if url is None:
            raise PeerMismatch(f"{self.secondary_id!r} is no longer a member")
        ws_url = url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        query = urlencode(
            {
                "epoch": epoch,
                "secondary": self.secondary_id,
                "cluster": self.host.cluster_id,
                # So that a secondary that would refuse our largest frames says so at once.
                "max_frame": self.config.max_frame_bytes,
            }
        )
        # A secondary sends a hello and ACKs only: anything larger is refused unread.
        self._limit = FrameLimit(wire.MASTER_READ_LIMIT)
        # The cluster token, and the secondary's certificate verified for wss.
        dialing = self._dial(
            f"{ws_url}{wire.REPLICATION_PATH}?{query}",
            self.config.unhealthy_after,
            self._limit,
            self.host.peers,
        )
        # A Future: shielded, and closed if it opens after a cancel.
        connecting = asyncio.ensure_future(dialing)
        try:
            self._conn = await asyncio.shield(connecting)
        except asyncio.CancelledError:
            # restart() cancelled us mid-handshake: close whatever it still opens.
            connecting.add_done_callback(_close_if_connected)
            raise
        return self._conn

    async def _send_loop(
        self, conn: Connection, stream: MasterStream, reader: asyncio.Task
    ) -> None:
        """Poll the stream whenever something happened or a heartbeat is due, and
        send what it says; end the session when it says so."""
        loop = asyncio.get_running_loop()
        while not reader.done():
            self._woken = False
            if not self._carry_out(conn, stream.poll(self.host.clock())):
                return
            if self._woken:
                continue  # something happened while we were writing
            self._wakeup = loop.create_future()
            due = stream.next_poll_at
            delay = self.config.heartbeat_interval if due is None else due - self.host.clock()
            timer = loop.call_later(max(delay, 0.0), self.wake)
            try:
                await self._wakeup
            finally:
                timer.cancel()
                self._wakeup = None

    async def _read_acks(self, conn: Connection, stream: MasterStream) -> None:
        try:
            while (raw := await conn.read_message()) is not None:
                if not self._carry_out(conn, self._receive(stream, raw)):
                    return
                self.wake()
            self._log_closed(conn, "ack")
        finally:
            self.wake()
