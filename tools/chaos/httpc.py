"""A tiny blocking JSON-over-HTTP client (standard library only).

Clients and samplers run in threads; each call opens its own connection so a
hung request never holds up another one.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Response:
    status: int
    body: Any


class RequestFailed(Exception):
    """No HTTP answer: `kind` is "refused", "timeout" or "error"."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def request(method: str, url: str, body: Any = None, timeout: float = 5.0) -> Response:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    payload = None if body is None else json.dumps(body).encode()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    sent = False
    try:
        conn.connect()
        sent = True
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
    except ConnectionRefusedError as exc:
        raise RequestFailed("refused", str(exc)) from None
    except TimeoutError as exc:
        # A timeout before the connection was made means nothing was sent.
        raise RequestFailed("timeout" if sent else "connect_timeout", str(exc)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise RequestFailed("error" if sent else "connect_error", repr(exc)) from None
    finally:
        conn.close()
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = {"raw": data[:200].decode(errors="replace")}
    return Response(resp.status, parsed)


def get_json(url: str, timeout: float = 5.0) -> Any:
    """GET and return the body of a 200 answer; raise RequestFailed otherwise."""
    resp = request("GET", url, timeout=timeout)
    if resp.status != 200:
        raise RequestFailed("status", f"{resp.status} {resp.body!r}")
    return resp.body
