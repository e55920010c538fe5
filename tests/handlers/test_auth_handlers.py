"""The cluster token on internal endpoints, in-process (pytest-tornado).

Every internal endpoint answers 401 (JSON error, `WWW-Authenticate: Bearer`,
an `unauthorized` event with the peer) without the token or with a wrong one,
and changes nothing; client endpoints stay open.
"""

from __future__ import annotations

import json

import pytest
import tornado.web
from structlog.testing import capture_logs
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from replog.common.security import MISSING, WRONG, check_bearer
from replog.common.web import JsonHandler
from replog.core import Entry
from replog.master.app import make_app as make_master_app
from replog.master.node import MasterNode
from replog.secondary.app import make_app as make_secondary_app
from replog.secondary.config import SecondaryConfig
from replog.secondary.node import SecondaryNode
from support import masters

TOKEN = "s3cret-Token_value"
GOOD = {"Authorization": f"Bearer {TOKEN}"}
BAD_HEADERS = [
    pytest.param({}, MISSING, id="no-header"),
    pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, MISSING, id="not-bearer"),
    pytest.param({"Authorization": "Bearer "}, MISSING, id="empty-bearer"),
    pytest.param({"Authorization": "Bearer guessed-token"}, WRONG, id="wrong-token"),
    pytest.param({"Authorization": f"Bearer {TOKEN}x"}, WRONG, id="token-plus-one"),
    pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}"}, WRONG, id="token-prefix"),
]


def open_master(token: str | None = TOKEN) -> MasterNode:
    return masters.open_master(cluster_token=token)


def master_state(node: MasterNode) -> tuple:
    return (
        node.log.cluster_size,
        node.log.membership(),
        sorted(node.log.removed),
        node.log.last_seq,
        sorted(node.links),
    )


def assert_refused(resp, reason: str, logs: list[dict], method: str, path: str) -> None:
    assert resp.code == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert resp.headers["Content-Type"] == "application/json"
    body = json.loads(resp.body)
    assert set(body) == {"error"}
    assert ("wrong" in body["error"]) == (reason == WRONG)
    assert TOKEN not in resp.body.decode() and "guessed" not in resp.body.decode()
    events = [e for e in logs if e["event"] == "unauthorized"]
    assert len(events) == 1, logs
    event = events[0]
    assert event["log_level"] == "warning"
    assert event["peer"] == "127.0.0.1"
    assert (event["method"], event["path"], event["reason"]) == (method, path, reason)
    assert TOKEN not in json.dumps(logs)


def test_check_bearer() -> None:
    assert check_bearer(f"Bearer {TOKEN}", TOKEN) is None
    assert check_bearer(f"bearer {TOKEN}", TOKEN) is None  # the scheme is case-insensitive
    assert check_bearer(None, TOKEN) == MISSING
    assert check_bearer(TOKEN, TOKEN) == MISSING  # no scheme
    assert check_bearer(f"Bearer {TOKEN.upper()}", TOKEN) == WRONG
    assert check_bearer("Bearer é", TOKEN) == WRONG  # non-ASCII compares, never crashes


class TestMaster:
    @pytest.fixture
    def node(self):
        return open_master()

    @pytest.fixture
    def app(self, node):
        return make_master_app(node)

    @pytest.mark.gen_test
    @pytest.mark.parametrize(("headers", "reason"), BAD_HEADERS)
    async def test_register_without_the_token_is_401_and_changes_nothing(
        self, http_client, base_url, node, headers, reason
    ):
        before = master_state(node)
        body = {"id": "intruder", "url": "http://127.0.0.9:9", "contiguous_seq": 5}
        with capture_logs() as logs:
            resp = await http_client.fetch(
                base_url + "/register",
                method="POST",
                body=json.dumps(body),
                headers=headers,
                raise_error=False,
            )
        assert_refused(resp, reason, logs, "POST", "/register")
        assert master_state(node) == before
        assert not any(e["event"] == "secondary_registered" for e in logs)

    @pytest.mark.gen_test
    async def test_register_with_the_token_is_accepted(self, http_client, base_url, node):
        body = {"id": "s3", "url": "http://127.0.0.9:9", "contiguous_seq": 0}
        resp = await http_client.fetch(
            base_url + "/register", method="POST", body=json.dumps(body), headers=GOOD
        )
        assert json.loads(resp.body)["registered"] == "s3"
        assert "s3" in [p.secondary_id for p in node.log.secondaries]
        await node.stop()

    @pytest.mark.gen_test
    @pytest.mark.parametrize(("headers", "reason"), BAD_HEADERS)
    async def test_delete_secondary_without_the_token_is_401(
        self, http_client, base_url, node, headers, reason
    ):
        before = master_state(node)
        with capture_logs() as logs:
            resp = await http_client.fetch(
                base_url + "/secondaries/s2", method="DELETE", headers=headers, raise_error=False
            )
        assert_refused(resp, reason, logs, "DELETE", "/secondaries/s2")
        assert master_state(node) == before

    @pytest.mark.gen_test
    async def test_delete_secondary_with_the_token_works(self, http_client, base_url, node):
        resp = await http_client.fetch(base_url + "/secondaries/s2", method="DELETE", headers=GOOD)
        assert json.loads(resp.body) == {"removed": "s2", "cluster_size": 2}

    @pytest.mark.gen_test
    async def test_client_endpoints_stay_open(self, http_client, base_url, node):
        resp = await http_client.fetch(
            base_url + "/", method="POST", body=json.dumps({"message": "hi", "w": 1})
        )
        assert resp.code == 201
        page = json.loads((await http_client.fetch(base_url + "/")).body)
        assert [m["message"] for m in page["messages"]] == ["hi"]
        health = json.loads((await http_client.fetch(base_url + "/health")).body)
        assert health["auth"] is True and health["tls"] is False


class TestMasterWithoutToken:
    @pytest.fixture
    def node(self):
        return open_master(token=None)

    @pytest.fixture
    def app(self, node):
        return make_master_app(node)

    @pytest.mark.gen_test
    async def test_internal_endpoints_are_open_and_health_says_so(
        self, http_client, base_url, node
    ):
        health = json.loads((await http_client.fetch(base_url + "/health")).body)
        assert health["auth"] is False and health["tls"] is False
        resp = await http_client.fetch(base_url + "/secondaries/s2", method="DELETE")
        assert resp.code == 200


class Internal(JsonHandler):
    """Any handler marked internal is guarded by JsonHandler.prepare, nothing more."""

    internal = True
    calls: list[str] = []

    def get(self) -> None:
        Internal.calls.append("get")
        self.send_json({"ok": True})


class TestAnyInternalHandler:
    @pytest.fixture
    def app(self):
        Internal.calls.clear()
        return tornado.web.Application([(r"/admin", Internal)], cluster_token=TOKEN)

    @pytest.mark.gen_test
    async def test_is_guarded_by_json_handler(self, http_client, base_url):
        with capture_logs() as logs:
            resp = await http_client.fetch(base_url + "/admin", raise_error=False)
        assert_refused(resp, MISSING, logs, "GET", "/admin")
        assert Internal.calls == []
        resp = await http_client.fetch(base_url + "/admin", headers=GOOD)
        assert json.loads(resp.body) == {"ok": True} and Internal.calls == ["get"]


def secondary_node(token: str | None = TOKEN) -> SecondaryNode:
    config = SecondaryConfig(
        host="127.0.0.1",
        port=0,
        master_url="http://m:5000",
        secondary_id="s1",
        cluster_token=token,
    )
    return SecondaryNode(config)


class TestSecondary:
    @pytest.fixture
    def node(self):
        node = secondary_node()
        node.sync(7, 0, 0)
        node.apply([Entry(1, 7, "a", "secret message"), Entry(2, 7, None, "y")], 7)
        return node

    @pytest.fixture
    def app(self, node):
        return make_secondary_app(node)

    @pytest.mark.gen_test
    @pytest.mark.parametrize(("headers", "reason"), BAD_HEADERS)
    async def test_log_export_without_the_token_is_401_with_no_entries(
        self, http_client, base_url, headers, reason
    ):
        with capture_logs() as logs:
            resp = await http_client.fetch(
                base_url + "/replication/log?from=1", headers=headers, raise_error=False
            )
        assert_refused(resp, reason, logs, "GET", "/replication/log")
        assert b"entries" not in resp.body and b"secret message" not in resp.body

    @pytest.mark.gen_test
    async def test_log_export_with_the_token(self, http_client, base_url):
        resp = await http_client.fetch(base_url + "/replication/log?from=2", headers=GOOD)
        assert json.loads(resp.body) == {"entries": [[2, 7, None, "y"]]}

    @pytest.mark.gen_test
    @pytest.mark.parametrize(("headers", "reason"), BAD_HEADERS)
    async def test_replication_upgrade_without_the_token_is_401_before_anything_else(
        self, http_client, base_url, node, headers, reason
    ):
        before = (node.follower.contiguous_seq, node.follower.sync_epoch, node.cluster_id)
        # A far-future epoch and another cluster: the token is checked first, so 401.
        url = base_url.replace("http", "ws") + "/replication?epoch=999&cluster=other"
        with capture_logs() as logs, pytest.raises(HTTPClientError) as refused:
            await websocket_connect(HTTPRequest(url, headers=headers))
        assert refused.value.code == 401
        assert_refused(refused.value.response, reason, logs, "GET", "/replication")
        assert (node.follower.contiguous_seq, node.follower.sync_epoch, node.cluster_id) == before
        assert node.stream is None
        assert not any(e["event"] == "stale_master_refused" for e in logs)

    @pytest.mark.gen_test
    async def test_replication_upgrade_with_the_token_goes_on_to_the_other_checks(
        self, http_client, base_url, node
    ):
        resp = await http_client.fetch(
            base_url + "/replication?epoch=3", headers=GOOD, raise_error=False
        )
        assert resp.code == 409  # a newer master epoch is known here
        conn = await websocket_connect(
            HTTPRequest(base_url.replace("http", "ws") + "/replication?epoch=8", headers=GOOD)
        )
        hello = json.loads(await conn.read_message())
        assert hello["type"] == "hello" and hello["contiguous_seq"] == 2
        conn.close()

    @pytest.mark.gen_test
    async def test_client_endpoints_stay_open(self, http_client, base_url):
        page = json.loads((await http_client.fetch(base_url + "/")).body)
        assert [m["seq"] for m in page["messages"]] == [1, 2]
        health = json.loads((await http_client.fetch(base_url + "/health")).body)
        assert health["auth"] is True and health["tls"] is False


class TestSecondaryWithoutToken:
    @pytest.fixture
    def app(self):
        return make_secondary_app(secondary_node(token=None))

    @pytest.mark.gen_test
    async def test_internal_endpoints_are_open_and_health_says_so(self, http_client, base_url):
        health = json.loads((await http_client.fetch(base_url + "/health")).body)
        assert health["auth"] is False and health["tls"] is False
        resp = await http_client.fetch(base_url + "/replication/log")
        assert json.loads(resp.body) == {"entries": []}
