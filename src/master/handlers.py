"""The master's HTTP handlers: parse and validate, call the node, render."""

from __future__ import annotations

import asyncio

from replog.common import wire
from replog.common.urls import is_node_url
from replog.common.web import JsonHandler, decode_json_body, parse_paging, render_messages
from replog.core import (
    IdConflict,
    LogReport,
    MemberConflict,
    ReadOnly,
    RemovedMember,
    RequestError,
    parse_write,
)
from replog.core.write_request import show
from replog.master.node import ClusterMismatch, MasterNode, WriteConcernTimeout


class LogHandler(JsonHandler):
    """`GET /` lists the log; `POST /` appends under a write concern.

    Bodies over --max-body-bytes never get here: common.http_server answers 413.
    """

    def initialize(self, node: MasterNode) -> None:
        self.node = node
        self._waiter: asyncio.Future | None = None

    def get(self) -> None:
        start, limit = parse_paging(self)
        self.send_json(render_messages(self.node.log.public_page(start, limit)))

    async def post(self) -> None:
        doc = decode_json_body(self.request.body)
        request = parse_write(doc, self.node.log.cluster_size)
        try:
            outcome = await self.node.write(request, track=self._track)
        except ReadOnly as exc:
            self.send_error_json(
                503,
                f"read-only: {exc.reason}; nothing was appended. Reads still work, and "
                "writes resume by themselves once enough secondaries are back",
                read_only=True,
                quorum=self.node.log.quorum,
                nodes_up=self.node.log.nodes_up,
                cluster_size=self.node.log.cluster_size,
            )
            return
        except WriteConcernTimeout as exc:
            seqs = [a.entry.seq for a in exc.appended]
            where = f"at seq {seqs[0]}" if len(seqs) == 1 else f"at seqs {seqs[0]}..{seqs[-1]}"
            where_fields = (
                {"seqs": seqs}
                if request.batch
                else {"seq": seqs[0], "id": exc.appended[0].entry.id}
            )
            self.send_error_json(
                504,
                f"write concern w={exc.w} not met within {exc.wtimeout_ms} ms; the message "
                f"is in the log {where} and keeps replicating (not rolled back)",
                **where_fields,
                w=exc.w,
                acks=len(exc.acked_by),
                acked_by=list(exc.acked_by),
            )
            return
        except IdConflict as exc:
            self.send_error_json(
                409,
                f"id {show(exc.client_id)} already names message seq {exc.existing.seq} "
                "with a different text; use a new id for a new message",
                seq=exc.existing.seq,
            )
            return
        except asyncio.CancelledError:
            return  # the client went away; the entry stays and keeps replicating
        self.send_json(outcome.to_json(), 200 if outcome.all_duplicates else 201)

    def _track(self, waiter: asyncio.Future) -> None:
        self._waiter = waiter

    def on_connection_close(self) -> None:
        # The client went away: stop waiting for it (the entry stays and replicates).
        if self._waiter is not None:
            self._waiter.cancel()


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
        doc = decode_json_body(self.request.body)
        if not isinstance(doc, dict):
            raise RequestError(400, 'send {"id": "<name>", "url": "http://host:port", ...}')
        secondary_id, url = doc.get("id"), doc.get("url")
        if not wire.valid_id(secondary_id) or secondary_id == "master":
            raise RequestError(
                400,
                f'"id" must be 1 to {wire.MAX_ID_CHARS} characters, none a control character, '
                'other than "master"',
            )
        if not is_node_url(url):
            raise RequestError(
                400,
                '"url" must be http(s)://host:port and nothing more (no path, query, fragment '
                "or user info), like http://127.0.0.2:5001",
            )
        if self.node.config.tls.ca is not None and url.startswith("http://"):
            # --tls-ca says this cluster uses TLS: never stream the log (or send the
            # token) in clear to a secondary that advertises plain HTTP.
            raise RequestError(
                400, '"url" must be https://: this master verifies its peers (--tls-ca)'
            )
        numbers = {}
        for key in ("contiguous_seq", "last_epoch", "sync_epoch", "stream_epoch"):
            value = doc.get(key, 0)
            if not wire.valid_int(value):
                raise RequestError(400, f'"{key}" must be an integer from 0 to {wire.MAX_INT}')
            numbers[key] = value
        strings = {}
        for key in ("incarnation", "cluster_id", "instance"):
            value = doc.get(key)
            if value is not None and not (isinstance(value, str) and 0 < len(value) <= 64):
                raise RequestError(400, f'"{key}" must be a string of 1 to 64 characters, or null')
            strings[key] = value
        report = LogReport(
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
        try:
            self.node.register(report)
        except ClusterMismatch as exc:
            self.send_error_json(409, str(exc), conflict="cluster", cluster_id=self.node.cluster_id)
            return
        except MemberConflict as exc:
            self.send_error_json(409, str(exc), conflict="id", secondary=secondary_id, url=exc.url)
            return
        except RemovedMember as exc:
            self.send_error_json(409, str(exc), conflict="removed", secondary=secondary_id)
            return
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


class SecondaryHandler(JsonHandler):
    """`DELETE /secondaries/<id>`: remove a member from the cluster (cluster token required).

    Its link stops, it no longer counts in N, quorum or any ACK set, and that
    node (its incarnation) cannot register again.
    """

    internal = True

    def initialize(self, node: MasterNode) -> None:
        self.node = node

    async def delete(self, secondary_id: str) -> None:
        if self.node.log.epoch is None:
            self.send_error_json(
                503, "the master is recovering its log; remove members once it has opened"
            )
            return
        try:
            await self.node.remove(secondary_id)
        except KeyError:
            self.send_error_json(
                404, f"no secondary {secondary_id!r} in this cluster", secondary=secondary_id
            )
            return
        self.send_json({"removed": secondary_id, "cluster_size": self.node.log.cluster_size})
