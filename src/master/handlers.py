"""The master's HTTP handlers: parse and validate, call the node, render."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import tornado.web

from common.web import JsonHandler, decode_json_body, parse_paging, render_messages
from core import IdConflict, RequestError, parse_write
from master.node import MasterNode


@tornado.web.stream_request_body
class LogHandler(JsonHandler):
    """`GET /` lists the log; `POST /` appends under a write concern.

    The body is streamed so that an oversized one is refused with a JSON 413
    before it is read into memory.
    """

    def initialize(self, node: MasterNode) -> None:
        self.node = node
        self._chunks: list[bytes] = []
        self._size = 0
        self._pending: asyncio.Future | None = None

    @property
    def max_body_bytes(self) -> int:
        return self.node.config.max_body_bytes

    def prepare(self) -> None:
        if self.request.method != "POST":
            return
        declared = self.request.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            self._too_large()

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._size += len(chunk)
        if self._size > self.max_body_bytes:
            self._chunks.clear()
            self._too_large()
            return
        self._chunks.append(chunk)

    def _too_large(self) -> None:
        self.send_error_json(
            413,
            f"the body is larger than {self.max_body_bytes} bytes (the master's --max-body-bytes)",
        )

    def get(self) -> None:
        start, limit = parse_paging(self)
        self.send_json(render_messages(self.node.log.entries(start, limit)))

    async def post(self) -> None:
        if self._finished:
            return
        doc = decode_json_body(b"".join(self._chunks))
        request = parse_write(doc, self.node.log.cluster_size)
        self._pending = asyncio.ensure_future(self.node.write(request))
        try:
            outcome = await self._pending
        except IdConflict as exc:
            self.send_error_json(
                409,
                f"id {exc.client_id!r} already names message seq {exc.existing.seq} "
                "with a different text; use a new id for a new message",
                seq=exc.existing.seq,
            )
            return
        except asyncio.CancelledError:
            return  # the client went away; the entry stays and keeps replicating
        self.send_json(outcome.to_json(), 200 if outcome.duplicate else 201)

    def on_connection_close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()


class RegisterHandler(JsonHandler):
    """`POST /register` {"id", "url", "contiguous_seq"}: a secondary announces itself."""

    def initialize(self, node: MasterNode) -> None:
        self.node = node

    def post(self) -> None:
        doc = decode_json_body(self.request.body)
        if not isinstance(doc, dict):
            raise RequestError(
                400, 'send {"id": "<name>", "url": "http://host:port", "contiguous_seq": 0}'
            )
        secondary_id, url, contiguous_seq = (
            doc.get("id"),
            doc.get("url"),
            doc.get("contiguous_seq", 0),
        )
        if not isinstance(secondary_id, str) or not secondary_id or secondary_id == "master":
            raise RequestError(400, '"id" must be a non-empty string other than "master"')
        if (
            not isinstance(url, str)
            or urlsplit(url).scheme not in ("http", "https")
            or not urlsplit(url).netloc
        ):
            raise RequestError(
                400, '"url" must be an http(s) URL the master can reach, like http://127.0.0.2:5001'
            )
        if (
            not isinstance(contiguous_seq, int)
            or isinstance(contiguous_seq, bool)
            or contiguous_seq < 0
        ):
            raise RequestError(400, '"contiguous_seq" must be a non-negative integer')
        self.node.register(secondary_id, url, contiguous_seq)
        self.send_json(
            {
                "registered": secondary_id,
                "cluster_size": self.node.log.cluster_size,
                "last_seq": self.node.log.last_seq,
            }
        )


class HealthHandler(JsonHandler):
    """`GET /health`: the master's view of the cluster."""

    def initialize(self, node: MasterNode) -> None:
        self.node = node

    def get(self) -> None:
        self.send_json(self.node.health())
