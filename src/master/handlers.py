"""The master's HTTP handlers: parse and validate, call the node, render."""

from __future__ import annotations

import asyncio

from replog.common import wire
from replog.common.metrics import BAD_REQUEST
from replog.common.reads import LogReadHandler
from replog.common.urls import is_node_url
from replog.common.web import JsonHandler, decode_json_body
from replog.core import InvalidRequest, LogReport, parse_write
from replog.master.node import MasterNode


class LogHandler(LogReadHandler):
    """`GET /` reads the log (common.reads: read concern, long poll); `POST /`
    appends under a write concern.

    Bodies over --max-body-bytes never get here: common.http_server answers 413.
    """

    node: MasterNode

    def initialize(self, node: MasterNode) -> None:  # type: ignore[override]
        super().initialize(node)
        self._waiter: asyncio.Future | None = None

    async def post(self) -> None:
        try:
            request = parse_write(decode_json_body(self.request.body), self.node.log.cluster_size)
        except InvalidRequest:
            self.node.metrics.write(BAD_REQUEST)
            raise
        try:
            # ReadOnly, IdConflict and WriteConcernTimeout are answered by write_error.
            outcome = await self.node.write(request, track=self._track)
        except asyncio.CancelledError:
            return  # the client went away; the entry stays and keeps replicating
        self.send_json(outcome.to_json(), 200 if outcome.all_duplicates else 201)

    def _track(self, waiter: asyncio.Future) -> None:
        self._waiter = waiter

    def on_connection_close(self) -> None:
        super().on_connection_close()  # a waiting read
        # The client went away: stop waiting for it (the entry stays and replicates).
        if self._waiter is not None:
            self._waiter.cancel()


def parse_report(doc: object, *, https_only: bool) -> LogReport:
    """A registration body (`POST /register`) as the LogReport the node takes, or
    InvalidRequest saying what is wrong. `https_only`: the cluster uses TLS (--tls-ca).
    The simulator registers its secondaries through this too."""
    if not isinstance(doc, dict):
        raise InvalidRequest('send {"id": "<name>", "url": "http://host:port", ...}')
    secondary_id, url = doc.get("id"), doc.get("url")
    if not wire.valid_id(secondary_id) or secondary_id == "master":
        raise InvalidRequest(
            f'"id" must be 1 to {wire.MAX_ID_CHARS} characters, none a control character, '
            'other than "master"',
        )
    if not is_node_url(url):
        raise InvalidRequest(
            '"url" must be http(s)://host:port and nothing more (no path, query, fragment '
            "or user info), like http://127.0.0.2:5001",
        )
    if https_only and url.startswith("http://"):
        # --tls-ca says this cluster uses TLS: never stream the log (or send the
        # token) in clear to a secondary that advertises plain HTTP.
        raise InvalidRequest('"url" must be https://: this master verifies its peers (--tls-ca)')
    numbers = {}
    for key in ("contiguous_seq", "last_epoch", "sync_epoch", "stream_epoch"):
        value = doc.get(key, 0)
        if not wire.valid_int(value):
            raise InvalidRequest(f'"{key}" must be an integer from 0 to {wire.MAX_INT}')
        numbers[key] = value
    strings = {}
    for key in ("incarnation", "cluster_id", "instance"):
        value = doc.get(key)
        if value is not None and not (isinstance(value, str) and 0 < len(value) <= 64):
            raise InvalidRequest(f'"{key}" must be a string of 1 to 64 characters, or null')
        strings[key] = value
    return LogReport(
        secondary_id=secondary_id,
        url=url,
        length=numbers["contiguous_seq"],
        last_epoch=numbers["last_epoch"],
        sync_epoch=numbers["sync_epoch"],
        stream_epoch=numbers["stream_epoch"],
        incarnation=strings["incarnation"] or "",
        instance=strings["instance"] or "",
        cluster_id=strings["cluster_id"],
    )


class RegisterHandler(JsonHandler):
    """`POST /register`: a secondary announces itself and reports its log.

    Body: {"id", "url", "contiguous_seq", "last_epoch", "sync_epoch",
    "stream_epoch", "incarnation", "cluster_id"} (the epochs default to 0: a
    secondary that never followed a master; a null cluster_id: one that never
    joined a cluster). Another cluster's secondary is refused with 409.
    Cluster members only (the cluster token, when set).
    """

    internal = True

    def initialize(self, node: MasterNode) -> None:
        self.node = node

    def post(self) -> None:
        report = parse_report(
            decode_json_body(self.request.body), https_only=self.node.config.tls.ca is not None
        )
        secondary_id = report.secondary_id
        # ClusterMismatch, MemberConflict and RemovedMember are answered by write_error.
        self.node.register(report)
        log = self.node.log
        self.send_json(
            {
                "registered": secondary_id,
                "cluster_size": log.cluster_size,
                "last_seq": log.last_seq,
                "epoch": log.epoch,
                "cluster_id": self.node.cluster_id,
            }
        )


class HealthHandler(JsonHandler):
    """`GET /health`: the master's view of the cluster."""

    def initialize(self, node: MasterNode) -> None:
        self.node = node

    def get(self) -> None:
        self.send_json(self.node.health())

    # HEAD as GET, without the body (Tornado drops it): uptime checkers use it.
    head = get


class SecondaryHandler(JsonHandler):
    """`DELETE /secondaries/<id>`: remove a member from the cluster (cluster token required).

    Its link stops, it no longer counts in N, quorum or any ACK set, and that
    node (its incarnation) cannot register again.
    """

    internal = True

    def initialize(self, node: MasterNode) -> None:
        self.node = node

    async def delete(self, secondary_id: str) -> None:
        # StillRecovering and UnknownSecondary are answered by write_error.
        await self.node.remove(secondary_id)
        self.send_json({"removed": secondary_id, "cluster_size": self.node.log.cluster_size})
