"""The nodes' HTTP server: Tornado's, with transport-level errors answered in JSON.

Tornado answers a request it cannot parse (a malformed request line or
header, a bad Content-Length, both Content-Length and Transfer-Encoding, a
bad chunk) with a bare `400 Bad Request`, no body, and closes; a declared
length over the limit gets the same 400. This server keeps Tornado and
changes only that, by subclassing its HTTP/1 connection where it parses:

- `_parse_headers`: the request line, the headers, Host, the body's framing
  headers, and the declared length against the limit (413), all checked
  before the application sees the request, and before any body is read;
- `_read_chunked_body`: the chunk framing, and the size of a chunked body,
  counted as it arrives (413).

Every refusal answers `{"error": "..."}` with `Connection: close` and closes
the connection, after reading and dropping what the client still sends for
up to 2 s or 16 MiB (closing with unread data would reset the connection,
and the client could lose the answer); nothing of it is kept. A well-formed
request pays one header check.

The same server sets the idle (keep-alive and slow headers) and body timeouts.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable
from typing import Any

import orjson
import structlog
import tornado.httpserver
from tornado import httputil, iostream
from tornado.http1connection import (
    HTTP1Connection,
    HTTP1ConnectionParameters,
    HTTP1ServerConnection,
    _QuietException,
)
from tornado.log import gen_log

log = structlog.get_logger("replog.http")

# After a refusal, read and drop what the client still sends for this long (or this much).
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 << 20
# What Tornado accepts in Host (its RFC 3986 subset), less the comma of several Host headers.
HOST = re.compile(r"(?:[\[\]:A-Za-z0-9\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})*")
LENGTH = re.compile(r"[0-9]{1,18}")
COUNT_ALL = 1 << 62


class Refused(iostream.StreamClosedError):
    """The request was answered with an error and its connection is closing.

    A StreamClosedError, so that Tornado's request loop for the connection
    ends quietly, as when a client goes away.
    """


class BodyTooLarge(httputil.HTTPInputError):
    pass


def check_headers(
    request: httputil.RequestStartLine, headers: httputil.HTTPHeaders, limit: int, hint: str
) -> tuple[int, str] | None:
    """(status, error) for headers Tornado would refuse, or a body over `limit`; else None.

    Accepts exactly what tornado.http1connection accepts, so that nothing
    passed here reaches its bare 400.
    """
    host = headers.get("Host")
    if host is None:
        if request.version != "HTTP/1.0":
            return 400, "the request has no Host header (HTTP/1.1 requires one)"
    elif not HOST.fullmatch(host):
        return 400, f"bad Host header {host!r} (one host[:port] is expected)"
    length = headers.get("Content-Length")
    coding = headers.get("Transfer-Encoding")
    if coding is not None:
        if length is not None:
            return 400, (
                "the request has both Content-Length and Transfer-Encoding; send one of them"
            )
        if coding.lower() != "chunked":
            return 400, f"Transfer-Encoding {coding!r} is not supported; use chunked or none"
        return None
    if length is None:
        return None
    values = re.split(r",[ \t]*", length) if "," in length else [length]
    if any(value != values[0] for value in values):
        return 400, f"the request has different Content-Length values: {length!r}"
    if not values[0].isascii() or not values[0].isdigit():
        return 400, f"Content-Length must be a whole number of bytes, got {values[0]!r}"
    if not LENGTH.fullmatch(values[0]) or int(values[0]) > limit:
        return 413, too_large(limit, hint)
    return None


def too_large(limit: int, hint: str) -> str:
    return f"the body is larger than {limit} bytes{hint}"


class JsonHTTPServer(tornado.httpserver.HTTPServer):
    """`HTTPServer(app, max_body_size=..., idle_connection_timeout=..., body_timeout=...)`,
    answering transport errors in JSON. `limit_hint` follows the 413's byte count
    (e.g. " (--max-body-bytes)")."""

    def initialize(self, *args: Any, limit_hint: str = "", **kwargs: Any) -> None:
        # HTTPServer's own arguments pass through untouched; only limit_hint is ours.
        super().initialize(*args, **kwargs)
        self.limit_hint = limit_hint
        self._refusals: set[asyncio.Task[None]] = set()

    def handle_stream(self, stream: iostream.IOStream, address: tuple) -> None:
        # As HTTPServer.handle_stream, with our connection class.
        context = tornado.httpserver._HTTPRequestContext(
            stream, address, self.protocol, self.trusted_downstream
        )
        conn = _ServerConnection(stream, self.conn_params, context, self)
        self._connections.add(conn)
        conn.start_serving(self)

    def refuse(self, stream: iostream.IOStream, status: int, error: str, peer: object) -> Refused:
        """Answer `status` and close `stream` (in the background); raise the result."""
        log.info("request_refused", status=status, error=error, peer=str(peer))
        task = asyncio.get_running_loop().create_task(_answer_and_close(stream, status, error))
        self._refusals.add(task)
        task.add_done_callback(self._refusals.discard)
        return Refused()


async def _answer_and_close(stream: iostream.IOStream, status: int, error: str) -> None:
    body = orjson.dumps({"error": error})
    reason = httputil.responses.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        await stream.write(head.encode("latin-1") + body)
        if not isinstance(stream, iostream.SSLIOStream) and stream.socket is not None:
            stream.socket.shutdown(socket.SHUT_WR)  # the client sees the end of the answer
        drained = 0
        async with asyncio.timeout(LINGER_SECONDS):
            while drained < LINGER_BYTES:
                drained += len(await stream.read_bytes(65536, partial=True))
    except (iostream.StreamClosedError, TimeoutError, OSError):
        pass
    finally:
        stream.close()


class _ServerConnection(HTTP1ServerConnection):
    def __init__(
        self,
        stream: iostream.IOStream,
        params: HTTP1ConnectionParameters,
        context: object,
        server: JsonHTTPServer,
    ) -> None:
        super().__init__(stream, params, context)
        self.server = server

    async def _server_request_loop(self, delegate: httputil.HTTPServerConnectionDelegate) -> None:
        # As HTTP1ServerConnection._server_request_loop, with our connection class.
        try:
            while True:
                conn = _JsonConnection(self.stream, self.params, self.context, self.server)
                request_delegate = delegate.start_request(self, conn)
                try:
                    ret = await conn.read_response(request_delegate)
                except (
                    iostream.StreamClosedError,
                    iostream.UnsatisfiableReadError,
                    asyncio.CancelledError,
                ):
                    return
                except _QuietException:  # a delegate failed, and that is logged already
                    conn.close()
                    return
                except Exception:
                    gen_log.error("Uncaught exception", exc_info=True)
                    conn.close()
                    return
                if not ret:
                    return
                await asyncio.sleep(0)
        finally:
            delegate.on_close(self)


class _JsonConnection(HTTP1Connection):
    def __init__(
        self,
        stream: iostream.IOStream,
        params: HTTP1ConnectionParameters,
        context: object,
        server: JsonHTTPServer,
    ) -> None:
        super().__init__(stream, False, params, context)
        self.server = server

    def _refuse(self, status: int, error: str) -> Refused:
        return self.server.refuse(self.stream, status, error, self.context)

    def _parse_headers(self, data: bytes) -> tuple[str, httputil.HTTPHeaders]:
        try:
            start_line, headers = super()._parse_headers(data)
            request = httputil.parse_request_start_line(start_line)
        except httputil.HTTPInputError as exc:
            raise self._refuse(400, f"malformed request: {exc}") from None
        problem = check_headers(request, headers, self._max_body_size, self.server.limit_hint)
        if problem is not None:
            raise self._refuse(*problem)
        return start_line, headers

    async def _read_chunked_body(self, delegate: httputil.HTTPMessageDelegate) -> None:
        # Tornado refuses a chunked body by the sizes its chunks declare, with a bare 400;
        # count what arrives instead (at most one read past the limit) and answer 413.
        limit, self._max_body_size = self._max_body_size, COUNT_ALL
        try:
            await super()._read_chunked_body(_Counted(delegate, limit))
        except BodyTooLarge:
            raise self._refuse(413, too_large(limit, self.server.limit_hint)) from None
        except httputil.HTTPInputError as exc:
            raise self._refuse(400, f"bad chunked body: {exc}") from None


class _Counted(httputil.HTTPMessageDelegate):
    """Passes body data on to `inner` until more than `limit` bytes came."""

    def __init__(self, inner: httputil.HTTPMessageDelegate, limit: int) -> None:
        self.inner = inner
        self.left = limit

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        self.left -= len(chunk)
        if self.left < 0:
            raise BodyTooLarge()  # an HTTPInputError: Tornado passes it on unlogged
        return self.inner.data_received(chunk)
