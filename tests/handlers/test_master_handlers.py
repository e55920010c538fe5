"""The master's handlers in-process (pytest-tornado), with no secondaries.

The master expects 2 secondaries, so N = 3: `w=1` answers at once, and
validation can be checked against N without any replication.
"""

import asyncio
import json

import pytest

from master.app import make_app
from master.config import MasterConfig
from master.node import MasterNode


@pytest.fixture
def node():
    return MasterNode(MasterConfig(secondaries=2, max_body_bytes=1000))


@pytest.fixture
def app(node):
    return make_app(node)


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
    # A secondary acknowledges (the core event a replication link would deliver).
    node.log.register("s1", "http://s1", 0)
    node.log.stream_opened("s1", 0)
    node.acked("s1", 1)
    code, body = await task
    assert code == 201
    assert body["w"] == 2 and body["acks"] == 2 and body["acked_by"] == ["master", "s1"]


BAD_BODIES = [
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
    ],
)
async def test_bad_registration_is_400_and_registers_nothing(http_client, base_url, node, body):
    resp = await http_client.fetch(
        base_url + "/register", method="POST", body=json.dumps(body), raise_error=False
    )
    assert resp.code == 400 and "error" in json.loads(resp.body)
    assert node.log.secondaries == []


@pytest.mark.gen_test
async def test_health_reports_the_log_and_cluster(http_client, base_url):
    await post(http_client, base_url, {"message": "m", "w": 1})
    body = json.loads((await http_client.fetch(base_url + "/health")).body)
    assert body["role"] == "master" and body["last_seq"] == 1 and body["cluster_size"] == 3
