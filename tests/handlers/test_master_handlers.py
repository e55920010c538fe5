"""The master's handlers in-process (pytest-tornado), with no real secondaries.

The master expects 2 secondaries, so N = 3. Two secondaries are registered in
the core with their streams open (so there is quorum) but nothing replicates: `w=1`
answers at once, and validation can be checked against N.
"""

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest
import tornado.httpserver
import tornado.testing

from replog.common.security import TlsConfig
from replog.common.urls import is_node_url
from replog.core import ReadOnly, WriteConcernTimeout, WriteRequest
from replog.master.app import make_app, make_server
from replog.master.config import MasterConfig
from replog.master.node import MasterNode
from support import masters


def open_master(**config) -> MasterNode:
    return masters.open_master(max_body_bytes=1000, **config)


@pytest.fixture
def node():
    return open_master()


@pytest.fixture
def app(node):
    return make_app(node)


@pytest.fixture
def http_server(request, io_loop, _unused_port, node):
    """pytest-tornado's server fixture, serving as replog-master does (master.app.make_server):
    its body limit and its JSON answers to malformed requests are the server's."""
    server = make_server(node)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections)


async def post(http_client, base_url, body, **kw):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await http_client.fetch(base_url + "/", method="POST", body=raw, raise_error=False, **kw)
    return resp.code, json.loads(resp.body)


@pytest.mark.gen_test
async def test_w1_write_is_created(http_client, base_url, node):
    code, body = await post(http_client, base_url, {"message": "hi", "w": 1, "id": "a"})
    assert code == 201
    assert body == {
        "seq": 1,
        "id": "a",
        "message": "hi",
        "w": 1,
        "acks": 1,
        "acked_by": ["master"],
        "duplicate": False,
    }
    assert node.log.last_seq == 1


@pytest.mark.gen_test
async def test_duplicate_answers_200_with_the_original_seq(http_client, base_url, node):
    await post(http_client, base_url, {"message": "one", "w": 1, "id": 1})
    await post(http_client, base_url, {"message": "two", "w": 1, "id": 2})
    code, body = await post(http_client, base_url, {"message": "one", "w": 1, "id": 1})
    assert code == 200 and body["seq"] == 1 and body["duplicate"] is True
    assert node.log.last_seq == 2


@pytest.mark.gen_test
async def test_reused_id_with_other_message_is_409(http_client, base_url, node):
    await post(http_client, base_url, {"message": "one", "w": 1, "id": 1})
    code, body = await post(http_client, base_url, {"message": "other", "w": 1, "id": 1})
    assert code == 409 and "error" in body
    assert node.log.last_seq == 1


@pytest.mark.gen_test
async def test_write_waits_for_w_then_answers_with_the_resolved_w(http_client, base_url, node):
    pending = post(http_client, base_url, {"message": "m", "w": "majority"})
    task = asyncio.ensure_future(pending)
    while not node.log.commit_waiters:  # the write is appended and waiting
        assert not task.done()
        await asyncio.sleep(0.01)
    # A secondary acknowledges (the core events a replication link would deliver).
    node.log.stream_opened("s1", 0, now=time.monotonic())
    node.log.next_batch("s1")
    node.resolve(node.log.record_ack("s1", 1, now=time.monotonic()))
    code, body = await task
    assert code == 201
    assert body["w"] == 2 and body["acks"] == 2 and body["acked_by"] == ["master", "s1"]


BAD_BODIES = [
    (b'{"message": ' + b"[" * 300 + b"]" * 300 + b"}", 400, "nests deeper"),
    (b'{"message": "m", "wtimout": 5000}', 400, '"wtimout"'),
    (b"{not json", 400, "JSON"),
    (b'{"message": "\xff\xfe"}', 400, "UTF-8"),
    (b"[]", 400, "object"),
    (b'"hi"', 400, "object"),
    (b"{}", 400, "message"),
    (b'{"message": 1}', 400, "message"),
    (b'{"message": null}', 400, "message"),
    (b'{"message": "m", "w": 0}', 400, '"w"'),
    (b'{"message": "m", "w": 4}', 400, '"w"'),
    (b'{"message": "m", "w": true}', 400, '"w"'),
    (b'{"message": "m", "w": 1.0}', 400, '"w"'),
    (b'{"message": "m", "w": "all"}', 400, '"w"'),
    (b'{"message": "m", "id": 1.5}', 400, '"id"'),
    (b'{"message": "m", "id": false}', 400, '"id"'),
    (b'{"message": "m", "id": {"k": 1}}', 400, '"id"'),
    (b'{"message": "' + b"x" * 2000 + b'"}', 413, "larger"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize(("raw", "status", "hint"), BAD_BODIES)
async def test_bad_input_is_a_json_error_and_changes_nothing(
    http_client, base_url, node, raw, status, hint
):
    code, body = await post(http_client, base_url, raw)
    assert code == status
    assert hint in body["error"]
    assert node.log.last_seq == 0


@pytest.mark.gen_test
async def test_oversized_chunked_body_is_413(http_client, base_url, node):
    async def producer(write):
        for _ in range(10):
            await write(b"x" * 500)

    resp = await http_client.fetch(
        base_url + "/", method="POST", body_producer=producer, raise_error=False
    )
    assert resp.code == 413
    assert node.log.last_seq == 0


@pytest.mark.gen_test
async def test_get_lists_messages_in_seq_order_with_paging(http_client, base_url):
    for i in range(5):
        await post(http_client, base_url, {"message": f"m{i}", "w": 1})
    resp = await http_client.fetch(base_url + "/")
    assert [m["seq"] for m in json.loads(resp.body)["messages"]] == [1, 2, 3, 4, 5]
    resp = await http_client.fetch(base_url + "/?from=2&limit=2")
    assert json.loads(resp.body) == {
        "messages": [
            {"seq": 2, "id": None, "message": "m1"},
            {"seq": 3, "id": None, "message": "m2"},
        ]
    }
    resp = await http_client.fetch(base_url + "/?limit=x", raise_error=False)
    assert resp.code == 400


@pytest.mark.gen_test
async def test_unknown_path_and_method_are_json_errors(http_client, base_url):
    resp = await http_client.fetch(base_url + "/nope", raise_error=False)
    assert resp.code == 404 and "error" in json.loads(resp.body)
    resp = await http_client.fetch(base_url + "/", method="DELETE", raise_error=False)
    assert resp.code == 405 and "error" in json.loads(resp.body)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://x:1"},
        {"id": "", "url": "http://x:1"},
        {"id": "master", "url": "http://x:1"},
        {"id": "s1", "url": "ftp://x"},
        {"id": "s1", "url": "http://x:1", "contiguous_seq": -1},
        {"id": "s1", "url": "http://x:1", "contiguous_seq": True},
        {"id": "s1", "url": "http://x:1", "stream_epoch": 10**18},
        {"id": "s1", "url": "http://x:1", "incarnation": ""},
        {"id": "s1", "url": "http://x:1", "cluster_id": {"a": 1}},
        {"id": "s3", "url": "http://x:1/replication/log?from=1#"},
        {"id": "s3", "url": "http://x:1/other"},
        {"id": "s3", "url": "http://x:1?a=b"},
        {"id": "s3", "url": "http://x:1#frag"},
        {"id": "s3", "url": "http://user:pass@x:1"},
        # Found by the outside review: accepted, then every dial failed with a traceback.
        {"id": "s3", "url": "HTTP://x:1"},
        {"id": "s3", "url": "Http://x:1"},
        {"id": "s3", "url": " http://x:1"},
        {"id": "s3", "url": "http://x:1\n"},
        {"id": "s3", "url": "http://x\n.y:1"},
        {"id": "s3", "url": "http://x:"},
        {"id": "s3", "url": "http://x"},
        {"id": "s3", "url": "http://x:0"},
        {"id": "s3", "url": "http://x:00006010"},
        {"id": "s3", "url": "http://x:65536"},
        {"id": "s3", "url": "http://[::1:1"},
        {"id": "s3", "url": "http://[zz::1]:1"},
        {"id": "s3", "url": "http://ex\u00e4mple:1"},
        {"id": "s3", "url": "http://a%40b:1"},
        {"id": "s3", "url": "ftp://x:1"},
        {"id": "s" * 65, "url": "http://x:1"},
        {"id": "s\n3", "url": "http://x:1"},
        {"id": ["s3"], "url": "http://x:1"},
        {"id": "s3", "url": "http://x:1", "incarnation": "i" * 65},
    ],
)
async def test_bad_registration_is_400_and_registers_nothing(http_client, base_url, node, body):
    resp = await http_client.fetch(
        base_url + "/register", method="POST", body=json.dumps(body), raise_error=False
    )
    assert resp.code == 400 and "error" in json.loads(resp.body)
    assert [p.secondary_id for p in node.log.secondaries] == ["s1", "s2"]


@pytest.mark.gen_test
async def test_health_reports_the_log_and_cluster(http_client, base_url):
    await post(http_client, base_url, {"message": "m", "w": 1})
    body = json.loads((await http_client.fetch(base_url + "/health")).body)
    assert body["role"] == "master" and body["last_seq"] == 1 and body["cluster_size"] == 3


@pytest.mark.gen_test
async def test_wtimeout_answers_504_and_keeps_the_message(http_client, base_url, node):
    code, body = await post(http_client, base_url, {"message": "m", "w": 3, "wtimeout": 50})
    assert code == 504
    assert body["seq"] == 1 and body["w"] == 3 and body["acks"] == 1
    assert body["acked_by"] == ["master"] and "error" in body
    assert node.log.last_seq == 1  # not rolled back
    assert not node.log.commit_waiters


@pytest.mark.gen_test
@pytest.mark.parametrize("wtimeout", [-1, 1.5, "10", True])
async def test_bad_wtimeout_is_400(http_client, base_url, node, wtimeout):
    code, body = await post(http_client, base_url, {"message": "m", "wtimeout": wtimeout})
    assert code == 400 and '"wtimeout"' in body["error"]
    assert node.log.last_seq == 0


@pytest.mark.gen_test
async def test_master_default_wtimeout_applies_to_requests_without_one():
    node = open_master(wtimeout_ms=30)
    with pytest.raises(WriteConcernTimeout) as err:
        await node.write(WriteRequest.single("m", 2))
    assert err.value.wtimeout_ms == 30 and err.value.appended[0].entry.seq == 1
    # An explicit 0 means "no limit", overriding the default: it is still waiting.
    pending = asyncio.ensure_future(node.write(WriteRequest.single("n", 2, wtimeout_ms=0)))
    await asyncio.sleep(0.1)
    assert not pending.done()
    pending.cancel()


@pytest.mark.gen_test
async def test_read_only_without_quorum_is_503_but_duplicates_answer(http_client, base_url, node):
    code, _ = await post(http_client, base_url, {"message": "kept", "w": 1, "id": "k"})
    assert code == 201
    node.log.update_health(time.monotonic() + 3600)  # every secondary silent for an hour
    code, body = await post(http_client, base_url, {"message": "new", "w": 1})
    assert code == 503 and body["error"].startswith("read-only: no quorum")
    assert node.log.last_seq == 1
    code, body = await post(http_client, base_url, {"message": "kept", "w": 1, "id": "k"})
    assert code == 200 and body["duplicate"] is True
    resp = await http_client.fetch(base_url + "/")
    assert len(json.loads(resp.body)["messages"]) == 1  # reads keep working
    health = json.loads((await http_client.fetch(base_url + "/health")).body)
    assert health["read_only"] is True and health["quorum"] is False


@pytest.mark.gen_test
async def test_recovering_master_refuses_writes():
    node = MasterNode(MasterConfig(secondaries=2))
    with pytest.raises(ReadOnly) as err:
        await node.write(WriteRequest.single("m", 1, "k"))
    assert "recovering" in err.value.reason and node.log.last_seq == 0


@pytest.mark.gen_test
async def test_batch_append_answers_with_every_seq(http_client, base_url, node):
    await post(http_client, base_url, {"message": "before", "w": 1})
    body = {"messages": ["a", {"message": "b", "id": "kb"}, "c"], "w": 1}
    code, answer = await post(http_client, base_url, body)
    assert code == 201
    assert answer == {
        "seqs": [2, 3, 4],
        "count": 3,
        "duplicates": 0,
        "w": 1,
        "acks": 1,
        "acked_by": ["master"],
    }
    code, answer = await post(
        http_client, base_url, {"messages": [{"message": "b", "id": "kb"}], "w": 1}
    )
    assert code == 200 and answer["seqs"] == [3] and answer["duplicates"] == 1
    assert node.log.last_seq == 4


@pytest.mark.gen_test
async def test_batch_with_a_conflicting_id_is_409_and_appends_nothing(http_client, base_url, node):
    await post(http_client, base_url, {"message": "taken", "w": 1, "id": 1})
    code, _ = await post(
        http_client, base_url, {"messages": ["new", {"message": "other", "id": 1}], "w": 1}
    )
    assert code == 409 and node.log.last_seq == 1


# -- membership: an id bound to its node, removal -------------------------------


async def register(http_client, base_url, **body):
    resp = await http_client.fetch(
        base_url + "/register", method="POST", body=json.dumps(body), raise_error=False
    )
    return resp.code, json.loads(resp.body)


@pytest.mark.gen_test
async def test_an_id_in_use_by_a_node_that_is_up_is_409_and_changes_nothing(
    http_client, base_url, node
):
    before = node.log.membership()
    code, body = await register(
        http_client, base_url, id="s1", url="http://127.0.0.9:7000", incarnation="intruder"
    )
    assert code == 409 and body["conflict"] == "id" and body["url"] == "http://s1"
    assert "'s1'" in body["error"] and "up" in body["error"]
    assert node.log.membership() == before
    assert node.log.progress("s1").connected  # the running node keeps its stream


@pytest.mark.gen_test
async def test_delete_secondary_removes_it_from_the_cluster(http_client, base_url, node):
    resp = await http_client.fetch(base_url + "/secondaries/s2", method="DELETE")
    assert resp.code == 200
    assert json.loads(resp.body) == {"removed": "s2", "cluster_size": 2}
    assert [p.secondary_id for p in node.log.secondaries] == ["s1"]
    assert node.log.quorum  # 2 of 2 up
    # w=3 no longer fits the cluster.
    code, body = await post(http_client, base_url, {"message": "m", "w": 3})
    assert code == 400 and node.log.last_seq == 0
    # That node may not come back under its old incarnation...
    code, body = await register(http_client, base_url, id="s2", url="http://s2:1")
    assert code == 409 and body["conflict"] == "removed"
    assert not node.log.is_member("s2") and node.log.cluster_size == 2


@pytest.mark.gen_test
async def test_delete_unknown_secondary_is_404(http_client, base_url, node):
    resp = await http_client.fetch(
        base_url + "/secondaries/nope", method="DELETE", raise_error=False
    )
    assert resp.code == 404 and "nope" in json.loads(resp.body)["error"]
    assert node.log.cluster_size == 3
    resp = await http_client.fetch(base_url + "/secondaries/s1", raise_error=False)
    assert resp.code == 405 and "error" in json.loads(resp.body)


@pytest.mark.gen_test
async def test_delete_secondary_whose_last_dial_failed(http_client, base_url, node):
    """Found by the OpenAPI fuzzer: removing a member whose link's last dial had
    failed re-raised that dial's error out of the link's stop(): a 500 and a traceback."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    node.opened.set()  # links dial only once the master has opened
    code, _ = await register(http_client, base_url, id="s3", url=f"http://127.0.0.1:{port}")
    assert code == 200
    link = node.links["s3"]
    deadline = time.monotonic() + 10
    while not (link._session_task is not None and link._session_task.done()):
        assert time.monotonic() < deadline, "the link never dialled"
        await asyncio.sleep(0.01)
    assert isinstance(link._session_task.exception(), ConnectionRefusedError)
    resp = await http_client.fetch(base_url + "/secondaries/s3", method="DELETE", raise_error=False)
    assert resp.code == 200, resp.body
    assert json.loads(resp.body) == {"removed": "s3", "cluster_size": 3}
    assert "s3" not in node.links and not node.log.is_member("s3")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:5001",
        "https://node-1.example:443/",
        "http://secondary_slow:5002",
        "http://[::1]:5001",
        "http://localhost:65535",
    ],
)
def test_node_urls_that_are_accepted(url):
    assert is_node_url(url)


@pytest.mark.gen_test
async def test_a_master_that_verifies_its_peers_refuses_plain_http_secondaries(
    http_client, base_url
):
    """Found by the outside review: a secondary without a certificate registered over
    https, and the master then streamed the log (and the token) to it in clear."""
    node = open_master(tls=TlsConfig(ca=Path("ca.pem")))
    app = make_app(node)
    server = tornado.httpserver.HTTPServer(app)
    sock, port = tornado.testing.bind_unused_port()
    server.add_sockets([sock])
    try:
        resp = await http_client.fetch(
            f"http://127.0.0.1:{port}/register",
            method="POST",
            body=json.dumps({"id": "s3", "url": "http://127.0.0.9:7000"}),
            raise_error=False,
        )
        assert resp.code == 400 and "https://" in json.loads(resp.body)["error"]
        assert not node.log.is_member("s3")
    finally:
        server.stop()


def test_a_secondary_that_verifies_its_master_needs_an_https_master():
    from replog.secondary.config import parse_config

    argv = ["--master", "http://127.0.0.2:5000", "--id", "s1", "--tls-ca", __file__]
    with pytest.raises(SystemExit) as exited:
        parse_config(argv)
    assert exited.value.code == 2
