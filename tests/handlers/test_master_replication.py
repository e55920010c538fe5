"""The master's end of the internal channels, against fake secondaries (pytest-tornado).

A fake secondary is a WebSocket server the master's link dials; it answers with
whatever hello and ACKs a test gives it. Whatever it sends, the master drops
that stream with a logged reason, and its writes never wait for it.
"""

import asyncio
import json
import time

import orjson
import pytest
import tornado.httpserver
import tornado.web
import tornado.websocket
from structlog.testing import capture_logs
from tornado.testing import bind_unused_port

from replog.common import wire
from replog.common.config import StorageConfig
from replog.common.security import PeerClient, TlsConfig
from replog.core import LogReport
from replog.master.app import make_app
from replog.master.config import MasterConfig
from replog.master.node import MasterNode
from replog.master.recovery_fetch import PAGE, FetchError, fetch_log
from replog.storage.node_store import open_store
from support.waiting import async_wait_until


class FakeSecondary(tornado.websocket.WebSocketHandler):
    """Sends `script.hello` on open, then `script.after_sync` once it gets the sync."""

    def initialize(self, script: "Script") -> None:
        self.script = script

    def open(self) -> None:
        self.script.streams += 1
        self.write_message(self.script.hello, binary=False).add_done_callback(_ignore)

    def on_message(self, message) -> None:
        doc = json.loads(message)
        self.script.received.append(doc)
        if doc["type"] == "sync" and self.script.after_sync is not None:
            self.write_message(self.script.after_sync).add_done_callback(_ignore)
        if doc["type"] == "sync" and self.script.close_with is not None:
            self.close(self.script.close_with, "message too big")
        if doc["type"] == "append" and self.script.close_on_append is not None:
            self.close(self.script.close_on_append, "message too big")

    def on_close(self) -> None:
        self.script.closes.append(self.close_code)


def _ignore(future):
    if not future.cancelled():
        future.exception()


class Script:
    def __init__(
        self, hello: bytes, after_sync: str | None = None, close_with=None, close_on_append=None
    ) -> None:
        self.hello = hello
        self.close_on_append = close_on_append
        self.after_sync = after_sync
        self.close_with = close_with
        self.streams = 0
        self.received: list[dict] = []
        self.closes: list[int | None] = []


def hello(runs: bytes = b"[]", length: int = 0) -> bytes:
    return (
        b'{"type":"hello","secondary":"fake","contiguous_seq":%d,"durable_seq":0,'
        b'"last_epoch":1,"sync_epoch":1,"incarnation":"inc-f","epoch_runs":%s}' % (length, runs)
    )


@pytest.fixture
def node():
    """An open master with two healthy secondaries in its core (so a quorum without
    the fake one), N = 4 once the fake one registers."""
    node = MasterNode(MasterConfig(secondaries=2, unhealthy_after=2.0))
    node.log.adopt([], epoch=1)
    node.cluster_id = "c1"
    for name in ("s1", "s2"):
        node.log.register(name, f"http://{name}", 0, now=time.monotonic())
        node.log.stream_opened(name, 0, now=time.monotonic())
    node.log.update_health(time.monotonic())
    node.opened.set()
    return node


@pytest.fixture
def app(node):
    return make_app(node)


async def start_fake(script: Script) -> tuple[str, tornado.httpserver.HTTPServer]:
    sock, port = bind_unused_port()
    fake = tornado.web.Application(
        [(wire.REPLICATION_PATH, FakeSecondary, {"script": script})],
        websocket_max_message_size=64 << 20,
    )
    server = tornado.httpserver.HTTPServer(fake)
    server.add_sockets([sock])
    return f"http://127.0.0.1:{port}", server


async def join(node: MasterNode, url: str) -> None:
    node.register(LogReport("fake", url, 0, 0, 0, incarnation="inc-f", cluster_id="c1"))


async def w1_write(http_client, base_url, message: str) -> dict:
    body = json.dumps({"message": message, "w": 1})
    resp = await http_client.fetch(base_url + "/", method="POST", body=body, request_timeout=5)
    assert resp.code == 201
    return json.loads(resp.body)


def refusals(logs):
    return [e for e in logs if e["event"] == "bad_replication_message"]


@pytest.mark.parametrize(
    ("runs", "reason"),
    [
        (b",".join([b"[1,1]"] * 2_000_000), "over 524288"),  # 12 MB
        (b",".join(b"[%d,%d]" % (i, i) for i in range(1, 10_002)), "more than 10000"),
    ],
    ids=["2000000-runs", "10001-runs"],
)
@pytest.mark.gen_test(timeout=20)
async def test_a_hello_with_too_many_epoch_runs_is_refused_and_writes_go_on(
    http_client, base_url, node, runs, reason
):
    script = Script(hello(b"[" + runs + b"]", length=10**6))
    url, server = await start_fake(script)
    try:
        with capture_logs() as logs:
            await join(node, url)
            await async_wait_until(lambda: script.streams, what="the master dialled")
            # Issued while the hello is on its way: the master's writes never wait for it.
            answer = await w1_write(http_client, base_url, "not stalled")
            assert answer["acked_by"] == ["master"]
            await async_wait_until(lambda: script.closes, what="the stream dropped")
            await async_wait_until(lambda: refusals(logs), what="a logged reason")
        (event,) = refusals(logs)[:1]
        assert event["log_level"] == "warning" and event["secondary"] == "fake"
        assert event["frame"] == "hello" and reason in event["reason"]
        assert not [e for e in logs if e["event"] == "stream_opened"]
        assert not script.received  # no sync: the hello was never matched
        assert not node.log.progress("fake").connected
    finally:
        await node.stop()
        server.stop()


BAD_ACKS = {
    "beyond-what-was-sent": ({"type": "ack", "contiguous_seq": 5}, "carried only 1..0"),
    "string-seq": ({"type": "ack", "contiguous_seq": "0"}, "contiguous_seq"),
    "bool-seq": ({"type": "ack", "contiguous_seq": False}, "contiguous_seq"),
    "negative-seq": ({"type": "ack", "contiguous_seq": -1}, "contiguous_seq"),
    "missing-seq": ({"type": "ack"}, "missing"),
    "extra-field": ({"type": "ack", "contiguous_seq": 0, "x": 1}, "unknown"),
    "second-hello": (json.loads(hello()), "expected type ack"),
    "not-json": ("{nope", "not JSON"),
}


@pytest.mark.parametrize("name", sorted(BAD_ACKS))
@pytest.mark.gen_test(timeout=10)
async def test_a_bad_ack_drops_the_stream_and_changes_nothing(http_client, base_url, node, name):
    frame, reason = BAD_ACKS[name]
    script = Script(hello(), after_sync=frame if isinstance(frame, str) else json.dumps(frame))
    url, server = await start_fake(script)
    try:
        with capture_logs() as logs:
            await join(node, url)
            await async_wait_until(lambda: script.closes, what="the stream dropped")
            await w1_write(http_client, base_url, "still writing")
        (event,) = refusals(logs)[:1]
        assert event["frame"] == "ack" and reason in event["reason"]
        assert script.received[0]["type"] == "sync" and script.closes[0] == 1002
        assert node.log.progress("fake").acked_seq == 0
        assert node.log.ack_set(1) == ("master",)
    finally:
        await node.stop()
        server.stop()


@pytest.mark.gen_test(timeout=15)
async def test_a_peer_that_breaks_the_protocol_is_dialled_with_backoff(http_client, base_url, node):
    """No hot loop: a refused stream does not reset the backoff, and neither does the
    registration such a secondary sends each time its stream ends."""
    script = Script(hello(), after_sync=json.dumps({"type": "ack", "contiguous_seq": 5}))
    url, server = await start_fake(script)

    def retries(logs, after=0):
        return [e["retry_in_ms"] for e in logs[after:] if e["event"] == "stream_retry"]

    try:
        with capture_logs() as logs:
            await join(node, url)
            # Backoff grows from 25-50 ms: 200 ms or more means it was never reset.
            await async_wait_until(lambda: any(ms >= 200 for ms in retries(logs)), timeout=8)
            mark = len(logs)
            await join(node, url)  # registers again: still no dial at once
            await async_wait_until(lambda: retries(logs, mark), timeout=8)
        assert retries(logs, mark)[0] >= 200
        assert len(refusals(logs)) < 10
    finally:
        await node.stop()
        server.stop()


@pytest.mark.gen_test(timeout=15)
async def test_a_secondary_that_acks_sync_then_refuses_every_batch_is_dialled_with_backoff(
    http_client, base_url, node
):
    """Found by the outside review: the ACK answering `sync` reset the backoff, so a
    secondary refusing each batch as too big was redialled every few tens of ms."""
    node.log.append("too big for that secondary", None)
    node.log.mark_durable(1)
    script = Script(
        hello(), after_sync=json.dumps({"type": "ack", "contiguous_seq": 0}), close_on_append=1009
    )
    url, server = await start_fake(script)

    def retries(logs):
        return [e["retry_in_ms"] for e in logs if e["event"] == "stream_retry"]

    try:
        with capture_logs() as logs:
            await join(node, url)
            # Backoff grows from 25-50 ms: 200 ms or more means it was never reset.
            await async_wait_until(lambda: any(ms >= 200 for ms in retries(logs)), timeout=8)
        assert script.streams < 10
    finally:
        await node.stop()
        server.stop()


@pytest.mark.gen_test(timeout=10)
async def test_a_secondary_refusing_a_frame_as_too_big_is_an_error_naming_the_fix(
    http_client, base_url, node
):
    script = Script(hello(), close_with=1009)
    url, server = await start_fake(script)
    try:
        with capture_logs() as logs:
            await join(node, url)
            refused = await async_wait_until(
                lambda: [e for e in logs if e["event"] == "stream_refused_by_secondary"],
                what="the refusal logged",
            )
        assert refused[0]["log_level"] == "error" and refused[0]["code"] == 1009
        assert "--max-entry-bytes" in refused[0]["reason"]
    finally:
        await node.stop()
        server.stop()


@pytest.mark.gen_test(timeout=10)
async def test_the_master_announces_its_largest_frame_when_it_dials(http_client, base_url, node):
    seen = []

    class Recorder(FakeSecondary):
        def get(self, *args, **kwargs):
            seen.append(self.get_query_argument("max_frame"))
            return super().get(*args, **kwargs)

    script = Script(hello())
    sock, port = bind_unused_port()
    server = tornado.httpserver.HTTPServer(
        tornado.web.Application([(wire.REPLICATION_PATH, Recorder, {"script": script})])
    )
    server.add_sockets([sock])
    try:
        await join(node, f"http://127.0.0.1:{port}")
        await async_wait_until(lambda: seen, what="a dial")
        assert int(seen[0]) == wire.frame_limit(node.config.max_body_bytes)
    finally:
        await node.stop()
        server.stop()


# -- recovery: the pages of a secondary's log ------------------------------------------


PEERS = PeerClient(None, TlsConfig())


class Pages(tornado.web.RequestHandler):
    def initialize(self, pages: dict) -> None:
        self.pages = pages

    def get(self) -> None:
        self.write(self.pages.get(int(self.get_query_argument("from")), b'{"entries":[]}'))


async def serve_pages(pages: dict[int, bytes]) -> tuple[str, tornado.httpserver.HTTPServer]:
    sock, port = bind_unused_port()
    server = tornado.httpserver.HTTPServer(
        tornado.web.Application([(wire.LOG_PATH, Pages, {"pages": pages})])
    )
    server.add_sockets([sock])
    return f"http://127.0.0.1:{port}", server


def page(*entries) -> bytes:
    return orjson.dumps({"entries": [list(e) for e in entries]})


@pytest.mark.gen_test
async def test_the_recovery_fetch_reads_pages_until_an_empty_one():
    # Pages stop early (the secondary's byte budget): the fetch goes on from there.
    url, server = await serve_pages(
        {1: page((1, 1, None, "a"), (2, 1, "k", "b")), 3: page((3, 2, 7, "c"))}
    )
    try:
        entries = await fetch_log(url, PEERS)
    finally:
        server.stop()
    assert [e.to_wire() for e in entries] == [[1, 1, None, "a"], [2, 1, "k", "b"], [3, 2, 7, "c"]]


@pytest.mark.parametrize(
    ("pages", "reason"),
    [
        ({1: page((1, 1, None, "a")), 2: page((3, 1, None, "gap"))}, "start at seq 3"),
        ({1: page((1, 2, None, "a")), 2: page((2, 1, None, "older"))}, "older epoch"),
        ({1: page((1, 1, None, "a"), (2, 1, None, 5))}, "bad entry"),
        ({1: page((1, 1, {"a": 1}, "a"))}, "bad entry"),
        ({1: b'{"entries": [], "more": 1}'}, "expected"),
        ({1: b"[]"}, "expected"),
        ({1: b"{nope"}, "not JSON"),
        ({1: page(*[(i, 1, None, "") for i in range(1, PAGE + 2)])}, "more than"),
    ],
    ids=["gap", "epoch-back", "number-message", "object-id", "extra", "list", "json", "long"],
)
@pytest.mark.gen_test
async def test_a_bad_page_fails_the_fetch(pages, reason):
    url, server = await serve_pages(pages)
    try:
        with pytest.raises(FetchError, match=reason):
            await fetch_log(url, PEERS)
    finally:
        server.stop()


@pytest.mark.gen_test
async def test_a_page_over_the_size_bound_is_not_read(monkeypatch):
    monkeypatch.setattr(wire, "LOG_PAGE_LIMIT", 10_000)
    url, server = await serve_pages({1: page((1, 1, None, "x" * 20_000))})
    try:
        with pytest.raises(FetchError):
            await fetch_log(url, PEERS)
    finally:
        server.stop()
    await asyncio.sleep(0)


# -- epochs from reports -----------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_master_never_adopts_an_epoch_that_leaves_it_no_room(tmp_path):
    """A registration may report any epoch up to MAX_INT; one no master could have
    reached is refused as "seen", so the next start does not open beyond MAX_INT."""
    config = MasterConfig(storage=StorageConfig(data_dir=tmp_path, fsync="never"))
    node = MasterNode(config, open_store(data_dir=tmp_path, node="master", role="master"))
    own = node.log.epoch

    def report(name, epoch):
        return LogReport(name, "http://127.0.0.1:9", 0, 0, 0, epoch, f"inc-{name}", node.cluster_id)

    try:
        with capture_logs() as logs:
            node.register(report("forger", wire.MAX_INT))
        (event,) = [e for e in logs if e["event"] == "epoch_out_of_range"]
        assert event["epoch"] == wire.MAX_INT and node.store.state["epoch"] == own
        with capture_logs() as logs:
            node.register(report("restored", 10**12))  # a real, newer master epoch
        assert [e["event"] for e in logs if e["event"] == "newer_epoch_reported"]
        assert node.store.state["epoch"] == 10**12
    finally:
        await node.stop()
        node.store.close()
