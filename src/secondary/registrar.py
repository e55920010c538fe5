"""Transport: keep this secondary registered with the master.

Whenever no replication stream is attached, register (again), retrying with
capped, jittered backoff until the master answers. So start order never
matters, a restarted master learns about us again, and a registration after
a restart tells the master how much we hold, which is how catch-up starts.

The registration itself goes through a `RegisterTransport` (an HTTP POST to
the master's /register by default, `HttpRegister`); a simulator gives its own.
The backoff's jitter comes from the node's `rng`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
import structlog
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from replog.common.backoff import Backoff
from replog.common.loop import cancel_and_wait, left_alone_if_cancelled
from replog.common.security import PeerClient
from replog.secondary.node import SecondaryNode

log = structlog.get_logger("replog.secondary")

# After a successful registration, how long to wait for the master's stream
# before registering again.
STREAM_WAIT_SECONDS = 3.0
# At most this long for the entries already applied to reach the disk before a
# report (SecondaryNode.settle): one sync, normally milliseconds.
SETTLE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class RegisterAnswer:
    """The master's answer to a registration."""

    # The HTTP status: 200 registered; 401, 409 refused; 599 no answer in time.
    status: int
    # The answer's body as sent (the master's JSON error), None when there was none.
    body: bytes | None = None
    # What went wrong, in words (logged when the body says nothing).
    reason: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


# Sends our report (SecondaryNode.report()) to the master's /register. Raises
# OSError (ssl.SSLError included) when the master cannot be reached.
RegisterTransport = Callable[[dict], Awaitable[RegisterAnswer]]


class HttpRegister:
    """The default transport: POST the report to the master, with the cluster token."""

    def __init__(self, master_url: str, peers: PeerClient) -> None:
        self.url = master_url + "/register"
        self.peers = peers

    async def __call__(self, report: dict) -> RegisterAnswer:
        request = self.peers.request(
            self.url,
            method="POST",
            body=orjson.dumps(report),
            headers={"Content-Type": "application/json"},
            connect_timeout=3,
            request_timeout=5,
        )
        try:
            response = await left_alone_if_cancelled(AsyncHTTPClient().fetch(request))
        except HTTPClientError as exc:
            body = None if exc.response is None else exc.response.body
            return RegisterAnswer(exc.code, body, str(exc))
        return RegisterAnswer(response.code, response.body, response.reason)


class Registrar:
    def __init__(self, node: SecondaryNode, register: RegisterTransport | None = None) -> None:
        self.node = node
        config = node.config
        self.backoff = Backoff(initial=config.retry_initial, maximum=config.retry_max, rng=node.rng)
        # By default it carries the cluster token and verifies an https master.
        self._register = register or HttpRegister(
            config.master_url, PeerClient(config.cluster_token, config.tls)
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            if self.node.stream is not None:
                await self._watch_stream()
                continue
            if await self._register_once():
                self.backoff.reset()
                await self._wait_for_stream(STREAM_WAIT_SECONDS)
            else:
                await self._wait_for_stream(self.backoff.next_delay())

    async def _watch_stream(self) -> None:
        """While a stream is attached, drop it if the master falls silent."""
        timeout = self.node.config.master_timeout
        self.node.stream_changed.clear()
        await _wait(self.node.stream_changed, timeout / 4)
        stream = self.node.stream
        if stream is not None and self.node.master_silent_for() > timeout:
            log.warning("master_silent", silent_s=round(self.node.master_silent_for(), 3))
            self.node.detach_stream(stream)
            stream.close()

    async def _wait_for_stream(self, seconds: float) -> None:
        self.node.stream_changed.clear()
        if self.node.stream is None:
            await _wait(self.node.stream_changed, seconds)

    async def _register_once(self) -> bool:
        config = self.node.config
        # /readyz names the master's refusal only while it is the latest answer: an
        # attempt that ends otherwise (unreachable, an error, success) clears it.
        self.node.registration_refused = None
        await self.node.settle(SETTLE_SECONDS)
        body = self.node.report()
        try:
            answer = await self._register(body)
        except ssl.SSLError as exc:
            # The master's certificate does not verify (or no TLS there): say why, loudly.
            log.error(
                "register_failed",
                master=config.master_url,
                error=f"TLS: {exc} (is --tls-ca the CA that signed the master's certificate?)",
            )
            return False
        except OSError as exc:
            log.info("register_failed", master=config.master_url, error=str(exc))
            return False
        except Exception as exc:
            # Keep trying whatever went wrong: start order must never matter.
            log.warning("register_failed", master=config.master_url, error=repr(exc))
            return False
        if answer.status == 401:
            # Not the master's token (or none): it will not stream to us. Keep asking,
            # so fixing the master's token is enough.
            log.error(
                "register_unauthorized",
                master=config.master_url,
                error=_error(answer) + " (give every node the same --cluster-token)",
            )
            return False
        if answer.status == 409 and answer.body is not None:
            # Another cluster's master, our id held by another node that is up, or
            # this node removed from the cluster: keep our data, say so, keep asking.
            conflict = _field(answer, "conflict")
            event = "cluster_mismatch"
            if isinstance(conflict, str):
                event = REFUSALS.get(conflict, event)
            log.error(event, master=config.master_url, error=_error(answer))
            self.node.registration_refused = f"{event}: {_error(answer)}"
            return False
        if not answer.ok:
            log.info("register_failed", master=config.master_url, error=answer.reason)
            return False
        log.info(
            "registered",
            master=config.master_url,
            url=config.url,
            contiguous_seq=body["contiguous_seq"],
            sync_epoch=body["sync_epoch"],
        )
        return True


# The master's 409 `conflict` field -> the event this secondary logs.
REFUSALS = {"cluster": "cluster_mismatch", "id": "id_conflict", "removed": "removed_from_cluster"}


def _field(answer: RegisterAnswer, name: str) -> object:
    if answer.body is None:
        return None
    try:
        return orjson.loads(answer.body).get(name)
    except (orjson.JSONDecodeError, TypeError, AttributeError):
        return None


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set or `seconds` pass.

    asyncio.timeout, not wait_for: in Python 3.11 wait_for loses a cancel that
    comes as the event is set (the master's stream closing as the node stops),
    and the registrar went on registering after stop().
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def _error(answer: RegisterAnswer) -> str:
    """The master's JSON error message, or the HTTP reason."""
    if answer.body is None:
        return answer.reason
    try:
        return str(orjson.loads(answer.body)["error"])
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return answer.reason
