"""Reading the log on any node: `GET /` with a read concern and a long poll, and
`GET /stream` (Server-Sent Events). Written once, used by the master's and the
secondary's handlers.

A node that serves reads is a `ReadableNode`: it says how far a reader can
see under each read concern (`readable_seq`), gives pages of it
(`read_page`), and keeps `Readers`, the waiting readers, which it tells
(`notify`) whenever what it shows may have grown: its durable prefix, or its
commit point. A waiting reader is an asyncio Future in a core `ReadWaiters`,
keyed by the seq it needs: no polling, no CPU while it waits, and a client
that goes away frees its waiter at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Protocol

import orjson
import structlog
import tornado.web
from tornado.http1connection import HTTP1Connection

from replog.common.config import ReadConfig
from replog.common.web import DIGITS, JsonHandler, parse_paging, render_messages
from replog.core.entry import PublicMessage
from replog.core.errors import InvalidRequest
from replog.core.read_waiters import ReadWaiters

log = structlog.get_logger("replog.reads")

# Read concerns (MongoDB's readConcern "local" and "majority").
LOCAL = "local"
MAJORITY = "majority"
READ_CONCERNS = (LOCAL, MAJORITY)
# An idle stream gets a comment line this often, so proxies keep it open.
KEEPALIVE_SECONDS = 15.0
# A stream writes at most this many entries at once, and no more than a quarter of
# --stream-buffer-bytes (but always one entry).
STREAM_PAGE_ENTRIES = 1000
# A stream whose unflushed bytes pass half of --stream-buffer-bytes waits up to this
# long for its socket to take them before writing more.
DRAIN_GRACE_SECONDS = 1.0
# `wait`: a plain decimal number of seconds (no sign, exponent, nan or inf), of any
# size (above --max-wait it is clamped); at most 64 characters.
_SECONDS = re.compile(r"(?=.{1,64}$)([0-9]+(\.[0-9]*)?|\.[0-9]+)")


class Readers:
    """The readers waiting on one node, one `ReadWaiters` per read concern."""

    def __init__(self, readable_seq: Callable[[str], int]) -> None:
        self._readable_seq = readable_seq
        self._waiters = {read: ReadWaiters(readable_seq(read)) for read in READ_CONCERNS}

    def __len__(self) -> int:
        return sum(len(waiters) for waiters in self._waiters.values())

    def notify(self) -> None:
        """What the node shows may have grown: wake the readers it now satisfies."""
        for read, waiters in self._waiters.items():
            if not waiters:
                waiters.readable_seq = self._readable_seq(read)
                continue
            for future in waiters.advance(self._readable_seq(read)):
                assert isinstance(future, asyncio.Future)
                if not future.done():
                    future.set_result(None)

    def wait(self, read: str, seq: int) -> asyncio.Future[None] | None:
        """A Future resolved once entry `seq` is readable under `read`; None if it is
        now. Cancelling it (the wait ran out, the client left) frees its place."""
        waiters = self._waiters[read]
        waiters.readable_seq = self._readable_seq(read)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not waiters.register(future, seq):
            return None
        future.add_done_callback(waiters.cancel)
        return future


class ReadableNode(Protocol):
    """What the read handlers need from a node (master or secondary)."""

    readers: Readers

    @property
    def read_config(self) -> ReadConfig: ...

    def readable_seq(self, read: str) -> int:
        """The highest seq a reader sees under `read` (its prefix 1..that)."""
        ...

    def read_page(self, start: int, limit: int | None, read: str) -> list[PublicMessage]:
        """The entries from `start`, at most `limit`, a reader sees under `read`."""
        ...


def _query(handler: tornado.web.RequestHandler, name: str) -> str | None:
    try:
        return handler.get_query_argument(name, None)
    except tornado.web.HTTPError:
        raise InvalidRequest(
            f'query parameter "{name}" is not valid UTF-8 once percent-decoded'
        ) from None


def parse_read(handler: tornado.web.RequestHandler) -> str:
    """`?read=local|majority` (default local)."""
    raw = _query(handler, "read")
    if raw is None:
        return LOCAL
    if raw not in READ_CONCERNS:
        raise InvalidRequest(f'read must be "local" or "majority", not {raw[:40]!r}')
    return raw


def parse_wait(handler: tornado.web.RequestHandler, max_wait: float) -> float:
    """`?wait=<seconds>` (default 0: no wait), clamped to `max_wait`."""
    raw = _query(handler, "wait")
    if raw is None:
        return 0.0
    if not _SECONDS.fullmatch(raw):
        raise InvalidRequest(
            f'query parameter "wait" must be a non-negative number of seconds, got {raw[:40]!r}'
        )
    return min(float(raw), max_wait)


def parse_stream_start(handler: tornado.web.RequestHandler, node: ReadableNode, read: str) -> int:
    """The first seq a stream sends: after `Last-Event-ID`, else `?from=`, else the
    next new entry. Both are checked, whichever wins."""
    raw = _query(handler, "from")
    if raw is not None and (not DIGITS.fullmatch(raw) or int(raw) < 1):
        raise InvalidRequest(f'query parameter "from" must be a positive integer, got {raw!r}')
    last_id = handler.request.headers.get("Last-Event-ID")
    if last_id is not None:
        if not DIGITS.fullmatch(last_id):
            raise InvalidRequest(
                f"Last-Event-ID must be a non-negative integer (a seq), got {last_id[:40]!r}"
            )
        return int(last_id) + 1
    return node.readable_seq(read) + 1 if raw is None else int(raw)


class LogReadHandler(JsonHandler):
    """`GET /?from=&limit=&read=&wait=` on any node (the master's handler adds POST)."""

    node: ReadableNode

    def initialize(self, node: ReadableNode) -> None:
        self.node = node
        self._read_waiter: asyncio.Future[None] | None = None

    async def get(self) -> None:
        start, limit = parse_paging(self)
        read = parse_read(self)
        wait = parse_wait(self, self.node.read_config.max_wait)
        if wait > 0 and self.node.readable_seq(read) < start:
            waiter = self.node.readers.wait(read, start)
            if waiter is not None:
                self._read_waiter = waiter
                try:
                    await asyncio.wait_for(waiter, wait)
                except TimeoutError:
                    self.send_json(render_messages([]))
                    return
                except asyncio.CancelledError:
                    return  # the client went away; its waiter is gone
                finally:
                    self._read_waiter = None
        self.send_json(render_messages(self.node.read_page(start, limit, read)))

    def on_connection_close(self) -> None:
        if self._read_waiter is not None:
            self._read_waiter.cancel()


def event_bytes(message: PublicMessage) -> bytes:
    """One Server-Sent Event: `id: <seq>` and one `data:` line (JSON escapes newlines)."""
    return b"id: %d\ndata: %s\n\n" % (int(message["seq"] or 0), orjson.dumps(message))


class EventStreamHandler(JsonHandler):
    """A Server-Sent Events answer that does not end: its headers, writes that track
    the bytes the socket has not taken yet, and the end of a reader that falls too
    far behind. Used by `GET /stream` here and the master's `GET /ui/events`.

    `_waiter`, when set, is cancelled as the connection closes (the client went
    away, or the node stops and closes its connections).
    """

    def initialize(self) -> None:
        self._waiter: asyncio.Future[None] | None = None
        self._gone = False
        # Bytes handed to the connection whose flush has not completed.
        self._unflushed = 0
        self._last_flush: asyncio.Future[None] | None = None

    def _open_event_stream(self) -> None:
        """Send the status and the event-stream headers, at once."""
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        self._send(b"")

    async def _drain(self, limit: int) -> str | None:
        """Before writing more: give the socket DRAIN_GRACE_SECONDS when over half of
        `limit` bytes wait in it. None: write on; "client_closed": the reader is gone;
        "slow": it still holds more than `limit` bytes, and its connection is now
        closed (the caller logs it and ends)."""
        if self._unflushed > limit // 2 and self._last_flush is not None:
            # Give the socket a moment (a reader catching up reads fast).
            await asyncio.wait({self._last_flush}, timeout=DRAIN_GRACE_SECONDS)
            if self._gone:
                return "client_closed"
        if self._unflushed > limit:
            connection = self.request.connection
            if isinstance(connection, HTTP1Connection):
                connection.close()
            return "slow"
        return None

    def _send(self, chunk: bytes) -> None:
        if self._gone:
            return
        if chunk:
            self.write(chunk)
        size = len(chunk)
        self._unflushed += size
        flushed = self.flush()
        self._last_flush = flushed

        def done(future: asyncio.Future[None], size: int = size) -> None:
            self._unflushed -= size
            if not future.cancelled() and future.exception() is not None:
                self._gone = True  # the connection failed; on_connection_close follows

        flushed.add_done_callback(done)

    def on_connection_close(self) -> None:
        self._gone = True
        if self._waiter is not None:
            self._waiter.cancel()


class StreamHandler(EventStreamHandler):
    """`GET /stream?from=&read=` (or `Last-Event-ID`): every entry from there on, live,
    as Server-Sent Events, in seq order, no gaps, no duplicates.

    Written without waiting for the socket while less than half of
    --stream-buffer-bytes waits to be taken by it; past that, the stream gives
    the socket DRAIN_GRACE_SECONDS before writing more. A reader with more
    than --stream-buffer-bytes written and not yet taken when there is more
    to write is disconnected (`stream_reader_slow`) instead of buffered
    without bound: memory per reader stays within the limit and one page.
    """

    node: ReadableNode

    def initialize(self, node: ReadableNode) -> None:  # type: ignore[override]
        super().initialize()
        self.node = node

    async def get(self) -> None:
        read = parse_read(self)
        start = parse_stream_start(self, self.node, read)
        self._open_event_stream()
        next_seq, sent, reason = start, 0, "client_closed"
        log.info("stream_reader_opened", peer=self.request.remote_ip, **{"from": start}, read=read)
        try:
            limit = self.node.read_config.stream_buffer_bytes
            while not self._gone:
                if self.node.readable_seq(read) >= next_seq:
                    stop = await self._drain(limit)
                    if stop == "client_closed":
                        break
                    if stop == "slow":
                        reason = stop
                        log.warning(
                            "stream_reader_slow",
                            peer=self.request.remote_ip,
                            seq=next_seq - 1,
                            buffered_bytes=self._unflushed,
                        )
                        return
                    events = self._page(next_seq, read, max(limit // 4, 1))
                    self._send(b"".join(events))
                    next_seq += len(events)
                    sent += len(events)
                    continue
                self._waiter = self.node.readers.wait(read, next_seq)
                if self._waiter is None:
                    continue
                try:
                    await asyncio.wait_for(self._waiter, KEEPALIVE_SECONDS)
                except TimeoutError:
                    self._send(b": keepalive\n\n")
                except asyncio.CancelledError:
                    return  # the client went away
                finally:
                    self._waiter = None
        finally:
            log.info(
                "stream_reader_closed",
                peer=self.request.remote_ip,
                **{"from": start},
                read=read,
                sent=sent,
                reason=reason,
            )

    def _page(self, start: int, read: str, budget: int) -> list[bytes]:
        """The events from `start` on, as many as fit `budget` bytes (at least one)."""
        events: list[bytes] = []
        size = 0
        for message in self.node.read_page(start, STREAM_PAGE_ENTRIES, read):
            if events and size >= budget:
                break
            event = event_bytes(message)
            events.append(event)
            size += len(event)
        return events
