"""JSON request handlers shared by master and secondary."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any, ClassVar

import orjson
import tornado.web
from tornado import httputil

from common.security import unauthorized_reason
from core import RequestError

JSON_TYPE = "application/json"
# ASCII digits only (str.isdigit also accepts "²"), and few enough for int().
DIGITS = re.compile(r"[0-9]{1,18}")


def decode_json_body(body: bytes) -> Any:
    """Decode a request body, or raise a 400 that says what is wrong with it."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, "the body is not valid UTF-8") from None
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None


def render_messages(page: list[dict]) -> bytes:
    """`GET /`'s body from a log's `public_page()`."""
    return orjson.dumps({"messages": page})


def parse_paging(handler: tornado.web.RequestHandler) -> tuple[int, int | None]:
    """`?from=<seq>&limit=<n>` for `GET /`: both optional, both positive integers."""
    values = []
    for name in ("from", "limit"):
        raw = handler.get_query_argument(name, None)
        if raw is None:
            values.append(None)
            continue
        if not DIGITS.fullmatch(raw) or int(raw) < 1:
            raise RequestError(
                400, f'query parameter "{name}" must be a positive integer, got {raw!r}'
            )
        values.append(int(raw))
    start, limit = values
    return (start or 1), limit


class JsonHandler(tornado.web.RequestHandler):
    """Base handler: every answer, errors included, is a JSON document.

    A subclass with `internal = True` is for cluster members only: when the node
    has a cluster token (Application setting `cluster_token`), a request without
    it is answered 401 before any method of the handler runs.
    """

    internal: ClassVar[bool] = False

    def prepare(self) -> None:
        if self.internal:
            refusal = unauthorized_reason(self, self.settings.get("cluster_token"))
            if refusal is not None:
                self.send_error_json(401, refusal)

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", JSON_TYPE)

    def send_json(self, document: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(document if isinstance(document, bytes) else orjson.dumps(document))

    def send_error_json(self, status: int, message: str, **extra: Any) -> None:
        self.send_json({"error": message, **extra}, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, RequestError):
            self.set_status(exc.status)
            self.finish(orjson.dumps({"error": exc.message}))
            return
        if status_code == 405:
            reason = f"{self.request.method} is not allowed on {self.request.path}"
        elif status_code == 500:
            reason = "internal error, see the node's log"
        else:
            reason = self._reason
        self.finish(orjson.dumps({"error": reason}))

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[no-untyped-def]
        if isinstance(value, RequestError):
            return  # a client error, answered as such; not a server fault
        super().log_exception(typ, value, tb)


class OpenApiHandler(JsonHandler):
    """`GET /openapi.json`: this role's OpenAPI document (common.openapi)."""

    def initialize(self, document: bytes) -> None:
        self.document = document

    def get(self) -> None:
        self.send_json(self.document)


class NotFoundHandler(JsonHandler):
    def prepare(self) -> None:
        self.send_error_json(404, f"no such endpoint: {self.request.method} {self.request.path}")


class BodyLimit(httputil.HTTPServerConnectionDelegate):
    """Refuse request bodies over `limit` bytes with a JSON 413, for every path.

    Wraps the Application at the connection level so that ordinary requests
    keep Tornado's fast non-streaming path: the declared Content-Length is
    checked when the headers arrive, a chunked body is counted as it streams,
    and an oversized body is read and dropped, never handed to a handler.
    """

    def __init__(self, app: tornado.web.Application, limit: int) -> None:
        self.app = app
        self.limit = limit

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        inner = self.app.start_request(server_conn, request_conn)
        return _LimitedRequest(inner, request_conn, self.limit)

    def on_close(self, server_conn: object) -> None:
        self.app.on_close(server_conn)


class _LimitedRequest(httputil.HTTPMessageDelegate):
    def __init__(
        self, inner: httputil.HTTPMessageDelegate, conn: httputil.HTTPConnection, limit: int
    ) -> None:
        self.inner = inner
        self.conn = conn
        self.limit = limit
        self.size = 0
        self.refused = False

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        declared = headers.get("Content-Length", "")
        # More than 18 digits is far over any limit (and beyond what DIGITS admits).
        if (
            declared.isascii()
            and declared.isdigit()
            and (len(declared) > 18 or int(declared) > self.limit)
        ):
            self.refused = True
            return None
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.refused:
            return None
        self.size += len(chunk)
        if self.size > self.limit:
            self.refused = True
            self.inner.on_connection_close()  # let the handler side drop what it buffered
            return None
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()
            return
        body = orjson.dumps(
            {"error": f"the body is larger than {self.limit} bytes (--max-body-bytes)"}
        )
        # The body has been read (and dropped), so the connection stays usable.
        headers = httputil.HTTPHeaders(
            {"Content-Type": JSON_TYPE, "Content-Length": str(len(body))}
        )
        start = httputil.ResponseStartLine("HTTP/1.1", 413, "Content Too Large")
        self.conn.write_headers(start, headers, body)
        self.conn.finish()

    def on_connection_close(self) -> None:
        self.inner.on_connection_close()
