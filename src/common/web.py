"""JSON request handlers shared by master and secondary."""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any, ClassVar

import orjson
import tornado.web

from replog.common.security import unauthorized_reason
from replog.core.entry import PublicMessage
from replog.core.errors import (
    ClusterMismatch,
    IdConflict,
    InvalidRequest,
    MemberConflict,
    NotMaster,
    ReadOnly,
    RemovedMember,
    ReplogError,
    StillRecovering,
    UnknownSecondary,
    WriteConcernTimeout,
)

JSON_TYPE = "application/json"
# ASCII digits only (str.isdigit also accepts "²"), and few enough for int().
DIGITS = re.compile(r"[0-9]{1,18}")

# The one place a refusal becomes an HTTP status; the body is the error's own to_json().
ERROR_STATUS: dict[type[ReplogError], int] = {
    InvalidRequest: 400,
    UnknownSecondary: 404,
    NotMaster: 405,
    IdConflict: 409,
    ClusterMismatch: 409,
    MemberConflict: 409,
    RemovedMember: 409,
    ReadOnly: 503,
    StillRecovering: 503,
    # The write is in the log; only the wait for `w` ran out (MongoDB's wtimeout).
    WriteConcernTimeout: 504,
}


def error_status(error: ReplogError) -> int:
    """The HTTP status `error` is answered with (a subclass answers as its nearest mapped base)."""
    for cls in type(error).__mro__:
        status = ERROR_STATUS.get(cls)
        if status is not None:
            return status
    raise LookupError(f"{type(error).__name__} has no HTTP status in ERROR_STATUS")


def decode_json_body(body: bytes) -> Any:
    """Decode a request body, or raise a 400 that says what is wrong with it."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("the body is not valid UTF-8") from None
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None


def render_messages(page: list[PublicMessage]) -> bytes:
    """`GET /`'s body from a log's `public_page()`."""
    return orjson.dumps({"messages": page})


def parse_paging(handler: tornado.web.RequestHandler) -> tuple[int, int | None]:
    """`?from=<seq>&limit=<n>` for `GET /`: both optional, both positive integers."""
    values: list[int | None] = []
    for name in ("from", "limit"):
        try:
            raw = handler.get_query_argument(name, None)
        except tornado.web.HTTPError:
            raise InvalidRequest(
                f'query parameter "{name}" is not valid UTF-8 once percent-decoded'
            ) from None
        if raw is None:
            values.append(None)
            continue
        if not DIGITS.fullmatch(raw) or int(raw) < 1:
            raise InvalidRequest(
                f'query parameter "{name}" must be a positive integer, got {raw!r}'
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
        if isinstance(exc, ReplogError):
            self.set_status(error_status(exc))
            self.finish(orjson.dumps(exc.to_json()))
            return
        if status_code == 405:
            reason = f"{self.request.method} is not allowed on {self.request.path}"
        elif status_code == 500:
            reason = "internal error, see the node's log"
        elif isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            # Tornado's own 4xx (a query argument that is not UTF-8, say): say what it is.
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        else:
            reason = self._reason
        self.finish(orjson.dumps({"error": reason}))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, ReplogError) or (
            isinstance(value, tornado.web.HTTPError) and value.status_code < 500
        ):
            return  # a refusal, answered as such; not a server fault
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
