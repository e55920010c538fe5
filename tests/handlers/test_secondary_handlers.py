"""The secondary's handlers in-process (pytest-tornado)."""

import json

import pytest

from core import Entry
from secondary.app import make_app
from secondary.config import SecondaryConfig
from secondary.node import SecondaryNode


@pytest.fixture
def node():
    return SecondaryNode(
        SecondaryConfig(host="127.0.0.1", port=0, master_url="http://m:5000", secondary_id="s1")
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
