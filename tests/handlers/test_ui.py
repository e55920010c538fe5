"""The live cluster page in-process: GET /ui (the HTML) and GET /ui/events (snapshots)."""

from __future__ import annotations

import asyncio
import json
import re
import socket

import jsonschema
import pytest
from structlog.testing import capture_logs
from tornado.iostream import IOStream
from tornado.tcpclient import TCPClient

from replog.common.config import ReadConfig
from replog.common.openapi import document
from replog.master import ui
from replog.master.app import make_app
from replog.master.ui import TAIL_ENTRIES, TAIL_MESSAGE_CHARS
from support import masters

XSS = "<img src=x onerror=alert(1)>"


def check_documented(snap: dict) -> None:
    """`snap` is what the master's OpenAPI document says a snapshot is."""
    components = document("master")["components"]
    schema = {"$ref": "#/components/schemas/UiSnapshot", "components": components}
    jsonschema.Draft202012Validator(schema).validate(snap)


@pytest.fixture
def node(request):
    """An open master; `request.param`: more MasterConfig fields."""
    return masters.open_master(**getattr(request, "param", {}))


@pytest.fixture
def app(node):
    return make_app(node)


class Feed:
    """A raw HTTP/1.1 connection reading GET /ui/events event by event."""

    def __init__(self, stream: IOStream) -> None:
        self.stream = stream
        self.headers: dict[str, str] = {}

    @classmethod
    async def open(cls, port: int) -> Feed:
        stream = await TCPClient().connect("127.0.0.1", port)
        await stream.write(b"GET /ui/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        feed = cls(stream)
        head = (await stream.read_until(b"\r\n\r\n")).decode()
        status, *lines = head.strip().split("\r\n")
        assert status.startswith("HTTP/1.1 200"), status
        feed.headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        return feed

    async def event(self) -> dict:
        """The next snapshot (the body is chunked: a chunk is one event)."""
        while True:
            size = int((await self.stream.read_until(b"\r\n")).strip(), 16)
            chunk = (await self.stream.read_bytes(size + 2))[:-2].decode()
            if not chunk:
                continue
            assert chunk.startswith("event: snapshot\ndata: ") and chunk.endswith("\n\n"), chunk
            return json.loads(chunk.split("data: ", 1)[1])

    async def until(self, predicate, timeout: float = 5.0) -> dict:
        async def loop() -> dict:
            while True:
                snap = await self.event()
                if predicate(snap):
                    return snap

        return await asyncio.wait_for(loop(), timeout)


async def post(http_client, base_url, body: dict) -> int:
    resp = await http_client.fetch(
        base_url + "/", method="POST", body=json.dumps(body), raise_error=False
    )
    return resp.code


@pytest.mark.gen_test
async def test_ui_is_one_self_contained_html_page(http_client, base_url):
    resp = await http_client.fetch(base_url + "/ui")
    assert resp.code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    html = resp.body.decode()
    assert html.startswith("<!doctype html>")
    # No CDN, no external script, style, font or image: nothing but this page and its feed.
    assert not re.search(r"https?://", html)
    assert "<script src" not in html and '<link rel="stylesheet"' not in html
    # Messages are user data: never parsed as HTML.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in html
    assert 'new EventSource("ui/events")' in html


@pytest.mark.gen_test
async def test_ui_events_snapshot_fields_and_update_after_a_write(
    http_client, base_url, http_port, node
):
    feed = await Feed.open(http_port)
    assert feed.headers["content-type"] == "text/event-stream"
    assert feed.headers["cache-control"] == "no-cache"
    first = await feed.event()
    assert set(first) == {"time", "last_seq", "commit_seq", "read_only", "writes", "nodes", "tail"}
    assert first["last_seq"] == 0 and first["commit_seq"] == 0 and first["read_only"] is None
    assert first["writes"] == {
        "rate_per_s": 0.0,
        "latency_ms": {"p50": None, "p99": None},
        "window_s": 10,
    }
    assert [(n["id"], n["role"]) for n in first["nodes"]] == [
        ("master", "master"),
        ("s1", "secondary"),
        ("s2", "secondary"),
    ]
    master = first["nodes"][0]
    # The master's URL as the page's own request named it (a port-forward's included).
    assert master["url"] == f"http://127.0.0.1:{http_port}" and master["status"] == "ok"
    assert master["heartbeat_age_ms"] is None
    for n in first["nodes"][1:]:
        assert set(n) == {"id", "role", "url", "status", "acked_seq", "lag", "heartbeat_age_ms"}
        assert n["status"] == "healthy" and n["acked_seq"] == 0 and n["heartbeat_age_ms"] >= 0
    assert first["tail"] == []
    check_documented(first)

    assert await post(http_client, base_url, {"message": XSS, "w": 1, "id": "x"}) == 201
    snap = await feed.until(lambda s: s["tail"])
    assert snap["last_seq"] == 1
    # The message is sent as it is: the page renders it as text (tests/browser).
    assert snap["tail"] == [{"seq": 1, "id": "x", "message": XSS, "truncated": False}]
    assert snap["nodes"][0]["acked_seq"] == 1 and snap["nodes"][0]["lag"] == 0
    # Nothing replicates in this in-process cluster: both secondaries lag by one.
    assert [n["lag"] for n in snap["nodes"][1:]] == [1, 1]
    assert snap["writes"]["rate_per_s"] > 0
    assert snap["writes"]["latency_ms"]["p50"] is not None
    check_documented(snap)
    feed.stream.close()


@pytest.mark.gen_test
async def test_ui_events_tail_is_the_last_entries_cut_short(http_client, base_url, http_port):
    for i in range(TAIL_ENTRIES + 5):
        assert await post(http_client, base_url, {"message": f"m{i}", "w": 1}) == 201
    long = "y" * (TAIL_MESSAGE_CHARS + 50)
    assert await post(http_client, base_url, {"message": long, "w": 1}) == 201
    feed = await Feed.open(http_port)
    snap = await feed.until(lambda s: s["tail"] and s["tail"][-1]["seq"] == TAIL_ENTRIES + 6)
    seqs = [e["seq"] for e in snap["tail"]]
    assert seqs == list(range(7, TAIL_ENTRIES + 7))
    assert snap["tail"][-1]["message"] == long[:TAIL_MESSAGE_CHARS]
    assert snap["tail"][-1]["truncated"] is True
    feed.stream.close()


@pytest.mark.gen_test
async def test_ui_events_read_only_master_says_why(http_client, base_url, http_port, node):
    node.log.remove("s1")  # in the core only: no quorum, nothing else changes
    node.log.remove("s2")
    node.log.expected_secondaries = 2
    node.log.update_health(node.clock())
    feed = await Feed.open(http_port)
    snap = await feed.event()
    assert snap["read_only"].startswith("no quorum")
    assert snap["nodes"][0]["status"] == "read_only"
    feed.stream.close()


@pytest.mark.gen_test
async def test_ui_events_reader_that_leaves_is_forgotten(http_client, base_url, http_port, node):
    feed = await Feed.open(http_port)
    await feed.event()
    feed.stream.close()
    # Its wait on the node's change signal is cancelled, and a change wakes nobody.
    deadline = asyncio.get_running_loop().time() + 5
    while len(node.changes) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert len(node.changes) == 0


@pytest.mark.parametrize("node", [{"reads": ReadConfig(stream_buffer_bytes=65536)}], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_ui_events_reader_that_does_not_read_is_disconnected(
    http_client, base_url, http_port, node, monkeypatch
):
    """Bounded like GET /stream (common.reads.EventStreamHandler): a reader with more than
    --stream-buffer-bytes written and not taken is cut off, and the master serves on."""
    # Snapshots as fast as the loop turns: the socket fills in moments, not minutes.
    monkeypatch.setattr(ui, "MIN_INTERVAL_S", 0.0)
    monkeypatch.setattr(ui, "REFRESH_S", 0.0)
    for i in range(TAIL_ENTRIES):
        assert await post(http_client, base_url, {"message": f"{i}" * 300, "w": 1}) == 201
    with capture_logs() as logs:
        stream = await TCPClient().connect("127.0.0.1", http_port)
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await stream.write(b"GET /ui/events HTTP/1.1\r\nHost: x\r\n\r\n")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not any(e["event"] == "ui_reader_closed" for e in logs):
            assert loop.time() < deadline, "the reader was never judged slow"
            await asyncio.sleep(0.01)
        stream.close()
    (slow,) = [e for e in logs if e["event"] == "ui_reader_slow"]
    assert slow["buffered_bytes"] > 65536
    (closed,) = [e for e in logs if e["event"] == "ui_reader_closed"]
    assert closed["reason"] == "slow"
    assert await post(http_client, base_url, {"message": "after", "w": 1}) == 201
