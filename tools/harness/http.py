"""A small blocking JSON-over-HTTP client (standard library only).

Each call opens its own connection and closes it, so a hung request never holds
up another one (the campaign's clients run in threads).

`request` raises what `http.client` raises when there is no answer (tests want
to see the real error); `attempt` turns every such failure into `RequestFailed`
with a `kind` saying whether anything may have reached the server.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    raw: bytes

    @cached_property
    def body(self) -> Any:
        """The answer parsed as JSON (None if empty or not JSON); parsed on first use only."""
        if not self.raw:
            return None
        try:
            return json.loads(self.raw)
        except ValueError:
            return None


class RequestFailed(Exception):
    """No usable answer. `kind`: "refused", "connect_timeout" or "connect_error" (nothing
    was sent), "timeout" or "error" (the request may have arrived), or "status" (an
    answer, but not the one wanted: see `get_json`)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def bearer(token: str) -> dict[str, str]:
    """The header that carries the cluster token to an internal endpoint."""
    return {"Authorization": f"Bearer {token}"}


def _connect(
    url: str, timeout: float, context: ssl.SSLContext | None
) -> tuple[http.client.HTTPConnection, str]:
    """A connected HTTP(S) connection to `url`'s server, and the path to ask for."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.connect()
    except BaseException:
        conn.close()
        raise
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return conn, path


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any,
    raw: bytes | None,
    headers: dict[str, str] | None,
) -> Response:
    try:
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(
            method,
            path,
            body=payload,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def request(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    context: ssl.SSLContext | None = None,
) -> Response:
    """Send `body` as JSON (or `raw` bytes as they are) and read the whole answer.

    `context` verifies an https server (None: the system's CAs)."""
    conn, path = _connect(url, timeout, context)
    return _exchange(conn, method, path, body, raw, headers)


def attempt(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    context: ssl.SSLContext | None = None,
) -> Response:
    """`request`, with every way of getting no answer raised as `RequestFailed`."""
    try:
        conn, path = _connect(url, timeout, context)
    except ConnectionRefusedError as exc:
        raise RequestFailed("refused", str(exc)) from None
    except TimeoutError as exc:
        raise RequestFailed("connect_timeout", str(exc)) from None
    except OSError as exc:
        raise RequestFailed("connect_error", repr(exc)) from None
    try:
        return _exchange(conn, method, path, body, raw, headers)
    except TimeoutError as exc:
        raise RequestFailed("timeout", str(exc)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise RequestFailed("error", repr(exc)) from None


def get(url: str, **kwargs: Any) -> Response:
    return request("GET", url, **kwargs)


def post(url: str, body: Any = None, **kwargs: Any) -> Response:
    return request("POST", url, body, **kwargs)


def delete(url: str, **kwargs: Any) -> Response:
    return request("DELETE", url, **kwargs)


def get_json(url: str, timeout: float = 5.0, **kwargs: Any) -> Any:
    """GET and return the parsed body of a 200 answer; `RequestFailed` for anything else."""
    resp = attempt("GET", url, timeout=timeout, **kwargs)
    if resp.status != 200:
        raise RequestFailed("status", f"{resp.status} {resp.body!r}")
    return resp.body
