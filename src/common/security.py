"""Cluster authentication (a shared bearer token) and TLS, for both roles.

Internal endpoints (registration, the replication stream, the log export and
any handler with `internal = True`) require `Authorization: Bearer <token>`
when the node has a cluster token; client endpoints never do. Every request a
node dials to a peer carries the token, and verifies the peer's certificate
for https/wss: against `--tls-ca` if given, else the system's default CAs.
"""

from __future__ import annotations

import hmac
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from tornado.httpclient import HTTPRequest

# `reason` of an `unauthorized` event, and the error a refused request gets.
MISSING = "missing"
WRONG = "wrong"
REFUSALS = {
    MISSING: "this internal endpoint needs the cluster token: send "
    '"Authorization: Bearer <token>" (the token every node of the cluster is given)',
    WRONG: "wrong cluster token",
}
CHALLENGE = "Bearer"


@dataclass(frozen=True)
class TlsConfig:
    """`--tls-cert`/`--tls-key`: serve HTTPS (and WSS); `--tls-ca`: verify peers against it."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None

    @property
    def enabled(self) -> bool:
        """Whether this node serves HTTPS."""
        return self.cert is not None

    def server_context(self) -> ssl.SSLContext | None:
        """The listening socket's TLS context, or None: plain HTTP. Raises ssl.SSLError."""
        if self.cert is None or self.key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # An encrypted key would make OpenSSL prompt on the terminal: refuse it instead.
        context.load_cert_chain(self.cert, self.key, password=_no_password)
        return context

    def client_context(self) -> ssl.SSLContext | None:
        """How dialled https/wss peers are verified: None means Tornado's default
        (verified against the system's CAs); never unverified."""
        if self.ca is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca))


def _no_password() -> bytes:
    raise ValueError("the TLS key is encrypted; give an unencrypted key file")


def check_bearer(header: str | None, token: str) -> str | None:
    """None if `header` (an Authorization value) carries `token`, else MISSING or WRONG.

    The comparison takes the same time wherever the first difference is.
    """
    if header is None:
        return MISSING
    scheme, _, presented = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return MISSING
    if hmac.compare_digest(presented.strip().encode("utf-8"), token.encode("utf-8")):
        return None
    return WRONG


def bearer(token: str | None) -> dict[str, str]:
    """The headers that authenticate a request to a peer (none without a token)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


class PeerClient:
    """Builds the requests a node dials to its peers: token attached, TLS verified."""

    def __init__(self, token: str | None, tls: TlsConfig) -> None:
        self.token = token
        self.tls = tls
        self._context: ssl.SSLContext | None = None

    def request(self, url: str, *, headers: dict[str, str] | None = None, **kw: Any) -> HTTPRequest:
        if url.startswith(("https://", "wss://")) and self.tls.ca is not None:
            if self._context is None:
                self._context = self.tls.client_context()
            kw["ssl_options"] = self._context
        return HTTPRequest(url, headers={**(headers or {}), **bearer(self.token)}, **kw)


def log_auth_mode(logger: Any, token: str | None, tls: TlsConfig) -> None:
    """At start: warn when internal endpoints are open to anyone who can reach the node."""
    if token is None:
        logger.warning(
            "no_cluster_token",
            tls=tls.enabled,
            warning="no --cluster-token: the internal endpoints (registration, the "
            "replication stream, the log export, member removal) are open to anyone who "
            "can reach this node",
        )


def unauthorized_reason(handler: Any, token: str | None) -> str | None:
    """Check a request to an internal endpoint; on refusal log `unauthorized` and
    prepare the 401's headers. Returns the refusal's message, or None: go on."""
    if token is None:
        return None
    request = handler.request
    reason = check_bearer(request.headers.get("Authorization"), token)
    if reason is None:
        return None
    structlog.get_logger("replog").warning(
        "unauthorized",
        peer=request.remote_ip,
        method=request.method,
        path=request.path,
        reason=reason,
    )
    handler.set_header("WWW-Authenticate", CHALLENGE)
    return REFUSALS[reason]
