"""The secondary's handlers in-process (pytest-tornado)."""

import asyncio
import json
from urllib.parse import urlencode

import pytest
from structlog.testing import capture_logs
from tornado.websocket import websocket_connect

from replog.common import wire
from replog.core import Entry
from replog.core.limits import MAX_INFLIGHT_BATCHES
from replog.secondary.app import make_app
from replog.secondary.config import SecondaryConfig
from replog.secondary.node import SecondaryNode
from support.waiting import async_wait_until


@pytest.fixture
def node(request):
    overrides = getattr(request, "param", {})  # parametrize("node", [{...}], indirect=True)
    return SecondaryNode(
        SecondaryConfig(
            host="127.0.0.1", port=0, master_url="http://m:5000", secondary_id="s1", **overrides
        )
    )


@pytest.fixture
def app(node):
    return make_app(node)


@pytest.mark.gen_test
async def test_client_post_is_refused_naming_the_master(http_client, base_url, node):
    resp = await http_client.fetch(
        base_url + "/", method="POST", body='{"message": "x"}', raise_error=False
    )
    assert resp.code == 405
    body = json.loads(resp.body)
    assert "http://m:5000" in body["error"]
    assert node.follower.contiguous_seq == 0


@pytest.mark.gen_test
async def test_get_shows_only_the_contiguous_prefix(http_client, base_url, node):
    node.sync(1, 0, 0)
    node.apply([Entry(1, 1, None, "a"), Entry(2, 1, None, "b"), Entry(4, 1, None, "d")], 1)
    body = json.loads((await http_client.fetch(base_url + "/")).body)
    assert [m["seq"] for m in body["messages"]] == [1, 2]
    health = json.loads((await http_client.fetch(base_url + "/health")).body)
    assert health["contiguous_seq"] == 2 and health["buffered"] == 1
    node.apply([Entry(3, 1, None, "c")], 1)
    body = json.loads((await http_client.fetch(base_url + "/")).body)
    assert [m["message"] for m in body["messages"]] == ["a", "b", "c", "d"]


@pytest.mark.gen_test
async def test_log_export_gives_entries_with_epochs(http_client, base_url, node):
    node.sync(7, 0, 0)
    node.apply([Entry(1, 7, "a", "x"), Entry(2, 7, None, "y")], 7)
    body = json.loads((await http_client.fetch(base_url + "/replication/log?from=2")).body)
    assert body == {"entries": [[2, 7, None, "y"]]}


@pytest.mark.gen_test
async def test_replication_stream_refuses_a_stale_master(http_client, base_url, node):
    node.sync(7, 0, 0)
    resp = await http_client.fetch(base_url + "/replication?epoch=3", raise_error=False)
    assert resp.code == 409
    resp = await http_client.fetch(base_url + "/replication", raise_error=False)
    assert resp.code == 400


# -- the replication stream, driven by a fake master -----------------------------------


async def dial(base_url, epoch=1, **query):
    params = urlencode({"epoch": epoch, "secondary": "s1", "cluster": "c1", **query})
    url = base_url.replace("http://", "ws://") + f"/replication?{params}"
    conn = await websocket_connect(url)
    hello = json.loads(await conn.read_message())
    assert hello["type"] == "hello"
    return conn, hello


async def read(conn, timeout=5.0):
    return await asyncio.wait_for(conn.read_message(), timeout)


async def synced_stream(base_url, keep=None, epoch=1):
    """A stream after `sync` (keeping all the secondary holds), and its first ACK."""
    conn, hello = await dial(base_url, epoch)
    keep = hello["contiguous_seq"] if keep is None else keep
    await conn.write_message(
        json.dumps({"type": "sync", "epoch": epoch, "keep": keep, "epoch_start": 0})
    )
    ack = json.loads(await read(conn))
    assert ack == {"type": "ack", "contiguous_seq": keep}
    return conn


def append(*entries):
    return json.dumps({"type": "append", "entries": [list(e) for e in entries]})


async def send_good_batch(conn, node, first, count=2, epoch=1):
    """A valid batch: acknowledged once applied (in memory: at once)."""
    entries = [(seq, epoch, None, f"m{seq}") for seq in range(first, first + count)]
    await conn.write_message(append(*entries))
    ack = json.loads(await read(conn))
    assert ack == {"type": "ack", "contiguous_seq": first + count - 1}
    assert node.follower.contiguous_seq == first + count - 1


async def assert_dropped(conn, logs, code, reason_part):
    """The secondary closed the stream, saying why in a warning."""
    assert await read(conn) is None
    assert conn.close_code == code
    (event,) = [e for e in logs if e["event"] == "bad_replication_message"]
    assert event["log_level"] == "warning" and reason_part in event["reason"]


async def assert_still_serving(http_client, base_url, node, held):
    """Nothing stored, nothing buffered; it serves reads and takes a good stream again."""
    assert node.follower.contiguous_seq == held and node.follower.out_of_order == {}
    body = json.loads((await http_client.fetch(base_url + "/")).body)
    assert [m["seq"] for m in body["messages"]] == list(range(1, held + 1))
    await wait_for_detach(node)
    conn = await synced_stream(base_url)
    await send_good_batch(conn, node, held + 1)
    conn.close()


async def wait_for_detach(node):
    await async_wait_until(lambda: node.stream is None, what="the stream detached")


BAD_FRAMES = {
    "not-json": "{not json",
    "not-an-object": "[1, 2]",
    "wrong-type": json.dumps({"type": "ack", "contiguous_seq": 1}),
    "unknown-type": json.dumps({"type": "bogus"}),
    "missing-entries": json.dumps({"type": "append"}),
    "unknown-field": json.dumps({"type": "heartbeat", "extra": 1}),
    "object-as-id": append((3, 1, None, "ok"), (4, 1, {"a": 1}, "x")),
    "number-as-message": append((3, 1, None, "ok"), (4, 1, None, 5)),
    "string-as-epoch": append((3, 1, None, "ok"), (4, "1", None, "x")),
    "seq-0": append((0, 1, None, "x")),
    "negative-seq": append((-3, 1, None, "x")),
    "bool-seq": append((True, 1, None, "x")),
    "huge-seq": append((10**16, 1, None, "x")),
    "huge-epoch": append((3, 10**16, None, "x")),
    "short-entry": append((3, 1, None)),
    "long-entry": append((3, 1, None, "x", "extra")),
    "entries-not-a-list": json.dumps({"type": "append", "entries": {"3": "x"}}),
    "entry-not-a-list": json.dumps({"type": "append", "entries": ["x"]}),
    "no-entries": json.dumps({"type": "append", "entries": []}),
    "gap-in-batch": append((3, 1, None, "a"), (5, 1, None, "b")),
    "sync-again": json.dumps({"type": "sync", "epoch": 1, "keep": 0, "epoch_start": 0}),
    "string-as-keep": json.dumps({"type": "sync", "epoch": 1, "keep": "0", "epoch_start": 0}),
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
@pytest.mark.gen_test
async def test_a_bad_frame_drops_the_stream_and_changes_nothing(http_client, base_url, node, name):
    conn = await synced_stream(base_url)
    await send_good_batch(conn, node, 1)
    with capture_logs() as logs:
        await conn.write_message(BAD_FRAMES[name])
        await assert_dropped(conn, logs, 1002, "")
    await assert_still_serving(http_client, base_url, node, held=2)


@pytest.mark.gen_test
async def test_a_binary_frame_that_is_not_json_drops_the_stream(http_client, base_url, node):
    conn = await synced_stream(base_url)
    with capture_logs() as logs:
        await conn.write_message(b"\xff\xfe\x00", binary=True)
        await assert_dropped(conn, logs, 1002, "not JSON")
    await assert_still_serving(http_client, base_url, node, held=0)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (append((1, 1, None, "x")), "before sync"),
        (json.dumps({"type": "heartbeat"}), "before sync"),
        (json.dumps({"type": "sync", "epoch": 2, "keep": 0, "epoch_start": 0}), "epoch"),
        (json.dumps({"type": "sync", "epoch": 1, "keep": 5, "epoch_start": 0}), "holds 0"),
    ],
    ids=["append", "heartbeat", "other-epoch", "keep-too-much"],
)
@pytest.mark.gen_test
async def test_a_stream_must_start_with_a_sync_of_its_own_epoch(
    http_client, base_url, node, frame, reason
):
    conn, _ = await dial(base_url)
    with capture_logs() as logs:
        await conn.write_message(frame)
        await assert_dropped(conn, logs, 1002, reason)
    assert node.follower.stream_epoch == 0  # no sync happened
    await assert_still_serving(http_client, base_url, node, held=0)


@pytest.mark.gen_test
async def test_an_entry_of_a_later_epoch_than_the_stream_is_refused(http_client, base_url, node):
    conn = await synced_stream(base_url)
    with capture_logs() as logs:
        await conn.write_message(append((1, 1, None, "a"), (2, 7, None, "forged")))
        await assert_dropped(conn, logs, 1008, "later than the stream's")
    await assert_still_serving(http_client, base_url, node, held=0)


@pytest.mark.gen_test
async def test_a_frame_of_far_ahead_seqs_is_refused_and_the_buffer_discarded(
    http_client, base_url, node
):
    conn = await synced_stream(base_url)
    await send_good_batch(conn, node, 1)
    await conn.write_message(append((5, 1, None, "early")))  # within the window: buffered
    ack = json.loads(await read(conn))
    assert ack["contiguous_seq"] == 2 and len(node.follower.out_of_order) == 1
    far = [(10**9 + i, 1, None, "x" * 900) for i in range(1000)]  # ~1 MB, 1000 entries
    with capture_logs() as logs:
        await conn.write_message(append(*far))
        await assert_dropped(conn, logs, 1008, "outside")
    assert node.follower.out_of_order == {} and node.follower.buffered_bytes == 0
    await assert_still_serving(http_client, base_url, node, held=2)


@pytest.mark.gen_test
async def test_a_frame_over_the_limit_is_refused_unread(http_client, base_url, node):
    limit = node.config.max_frame_bytes
    assert limit == (1 << 20) + 1024  # the default: --max-entry-bytes 1 MiB
    conn = await synced_stream(base_url)
    await send_good_batch(conn, node, 1)
    with capture_logs() as logs:
        await conn.write_message(append((3, 1, None, "x" * limit)))
        await assert_dropped(conn, logs, 1009, f"over {limit}, the most")
    await assert_still_serving(http_client, base_url, node, held=2)


@pytest.mark.gen_test
async def test_a_master_announcing_larger_frames_is_warned_about(http_server, base_url, node):
    with capture_logs() as logs:
        conn, _ = await dial(base_url, max_frame=(8 << 20) + 1024)
    (event,) = [e for e in logs if e["event"] == "frame_limit_below_master"]
    assert event["limit"] == node.config.max_frame_bytes and "--max-entry-bytes" in event["reason"]
    conn.close()
    with capture_logs() as logs:
        conn, _ = await dial(base_url, max_frame=node.config.max_frame_bytes)
    assert not [e for e in logs if e["event"] == "frame_limit_below_master"]
    conn.close()


@pytest.mark.parametrize("epoch", ["0", str(10**15 + 1), "999999999999999999", "-1", "1e3"])
@pytest.mark.gen_test
async def test_the_stream_epoch_is_bounded(http_client, base_url, node, epoch):
    url = base_url + f"/replication?epoch={epoch}&secondary=s1"
    resp = await http_client.fetch(url, raise_error=False)
    assert resp.code == 400 and "epoch" in json.loads(resp.body)["error"]
    assert node.follower.stream_epoch == 0


@pytest.mark.parametrize("node", [{"delay": 60}], indirect=True)
@pytest.mark.gen_test
async def test_batches_held_by_the_delay_are_bounded(http_client, base_url, node):
    """The master never has more than MAX_INFLIGHT_BATCHES unacknowledged batches in
    flight, so a secondary never holds more in its --delay."""
    conn = await synced_stream(base_url)
    for seq in range(1, MAX_INFLIGHT_BATCHES + 1):
        await conn.write_message(append((seq, 1, None, "held")))
    with capture_logs() as logs:
        await conn.write_message(append((MAX_INFLIGHT_BATCHES + 1, 1, None, "one more")))
        await assert_dropped(conn, logs, 1008, "held by --delay")
    await wait_for_detach(node)
    assert node.follower.contiguous_seq == 0  # the held batches died with their stream
    assert json.loads((await http_client.fetch(base_url + "/")).body) == {"messages": []}
    (await synced_stream(base_url)).close()


@pytest.mark.gen_test
async def test_a_log_page_is_bounded_in_bytes(http_client, base_url, node):
    node.sync(1, 0, 0)
    big = "b" * (1 << 20)
    node.apply([Entry(i, 1, None, big) for i in range(1, 7)], 1)
    node.apply([Entry(7, 1, None, "c" * (5 << 20)), Entry(8, 1, None, "d")], 1)
    resp = await http_client.fetch(base_url + "/replication/log?from=1&limit=100")
    assert len(resp.body) <= wire.LOG_PAGE_BYTES
    assert [e[0] for e in json.loads(resp.body)["entries"]] == [1, 2, 3]
    resp = await http_client.fetch(base_url + "/replication/log?from=7")
    assert [e[0] for e in json.loads(resp.body)["entries"]] == [7]  # alone, over the budget
    resp = await http_client.fetch(base_url + "/replication/log?from=9")
    assert json.loads(resp.body) == {"entries": []}
