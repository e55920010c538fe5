"""A tiny HTTP client for the command-line tools (stdlib only: the CLI needs no event loop).

Every failure is one of two exceptions, which the commands turn into exit status 1 and
one line on stderr: `ServerError` (the node answered with an error status; its JSON
`error` is the text) and `Unreachable` (no answer at all: refused, reset, timed out)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.client import HTTPException, HTTPResponse
from typing import Any

DEFAULT_TIMEOUT = 30.0


class ClientError(Exception):
    """What a command reports on stderr before exiting with status 1."""


class UsageError(Exception):
    """A command line that makes no sense: exit status 2, as argparse's own errors."""


class ServerError(ClientError):
    def __init__(self, status: int, error: str, body: Any = None) -> None:
        super().__init__(f"{error} (HTTP {status})")
        self.status = status
        self.error = error
        self.body = body


class Unreachable(ClientError):
    def __init__(self, url: str, reason: object) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class Answer:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def endpoint(base: str, path: str, query: Mapping[str, object] | None = None) -> str:
    """`base` (a node's URL, a trailing slash or not) + `path` + the query, leaving out Nones."""
    url = base.rstrip("/") + path
    params = {k: str(v) for k, v in (query or {}).items() if v is not None}
    return url + ("?" + urllib.parse.urlencode(params) if params else "")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the node running?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)


def _server_error(status: int, text: str) -> ServerError:
    """The node's JSON `{"error": ...}`, or its raw text when it is not one."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return ServerError(status, body["error"], body)
    return ServerError(status, text.strip() or f"HTTP {status}", body)


def open_url(
    url: str,
    *,
    method: str = "GET",
    body: object = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> HTTPResponse:
    """The open response to a request answered 2xx; raises ServerError or Unreachable."""
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Accept": "application/json", **(headers or {})}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        response: HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        with exc:
            text = exc.read().decode("utf-8", "replace")
        raise _server_error(exc.code, text) from None
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        raise Unreachable(url, _reason(exc)) from None
    return response


def call(
    url: str,
    *,
    method: str = "GET",
    body: object = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Answer:
    """One request, read whole."""
    with open_url(url, method=method, body=body, timeout=timeout) as response:
        try:
            text = response.read().decode("utf-8", "replace")
        except (OSError, HTTPException) as exc:
            raise Unreachable(url, _reason(exc)) from None
        return Answer(response.status, text)


def lines(response: HTTPResponse, url: str) -> Iterator[str]:
    """The response's lines as they arrive (without their line ending), until it ends.

    A connection that breaks or times out mid-way raises Unreachable."""
    while True:
        try:
            raw = response.readline()
        except (OSError, HTTPException) as exc:
            raise Unreachable(url, _reason(exc)) from None
        if not raw:
            return
        yield raw.decode("utf-8", "replace").rstrip("\r\n")
