"""The cluster token against real processes: outsiders are refused and change nothing,
members work end to end, and a node without a token says it is open (issue 8)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

import orjson
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from support.cluster import FAST_DETECTION, Cluster, Node
from support.waiting import wait_until
from tools.harness import http

TOKEN = "integration-token-0123456789"


def events(node: Node, name: str) -> list[dict]:
    return [e for e in node.events() if e["event"] == name]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def membership(cluster: Cluster) -> tuple:
    health = cluster.master.health()
    return health["cluster_size"], sorted((s["id"], s["url"]) for s in health["secondaries"])


def token_cluster(cluster_factory, secondaries: int = 1) -> Cluster:
    cluster = cluster_factory(secondaries=secondaries)
    cluster.token = TOKEN
    cluster.start_master()
    for i in range(1, secondaries + 1):
        cluster.add_secondary(f"s{i}")
    return cluster


def assert_unauthorized(resp: http.Response, reason: str) -> None:
    assert resp.status == 401, resp
    assert set(resp.body) == {"error"}
    assert ("wrong" in resp.body["error"]) == (reason == "wrong")
    assert TOKEN.encode() not in resp.raw


def test_register_without_the_token_is_refused_and_changes_nothing(cluster_factory):
    cluster = token_cluster(cluster_factory)
    assert cluster.write("first", w=2).status == 201
    before = membership(cluster)
    for headers, reason in (({}, "missing"), (auth("not-the-token"), "wrong")):
        for body in (
            {"id": "intruder", "url": f"http://{cluster.host}:9"},
            # The real member's id, pointed elsewhere: would steal its stream.
            {"id": "s1", "url": f"http://{cluster.host}:9", "contiguous_seq": 99},
        ):
            resp = http.post(cluster.master_url + "/register", body, headers=headers)
            assert_unauthorized(resp, reason)
    # (The master writes its log lines once per event-loop iteration.)
    refused = wait_until(
        lambda: (
            len(events(cluster.master, "unauthorized")) == 4
            and events(cluster.master, "unauthorized")
        ),
        what="four refusals logged",
    )
    assert {e["reason"] for e in refused} == {"missing", "wrong"}
    for event in refused:
        assert event["peer"].startswith("127.") and event["path"] == "/register"
        assert event["method"] == "POST" and event["level"] == "warning"
    assert "not-the-token" not in cluster.master.log_path.read_text()
    assert membership(cluster) == before
    assert not any(e["secondary"] != "s1" for e in events(cluster.master, "secondary_registered"))
    # The authorised member still works, and is the one counted.
    resp = cluster.write("second", w=2)
    assert resp.status == 201 and resp.body["acked_by"] == ["master", "s1"]
    assert cluster.secondaries["s1"].messages() == cluster.master.messages()


async def forge_replication(url: str, headers: dict[str, str], epoch: int) -> int | None:
    """Dial a secondary's stream as an outsider; if it lets us in, plant entries.

    Returns the HTTP status of the refusal, or None if the upgrade succeeded."""
    try:
        conn = await websocket_connect(HTTPRequest(url, headers=headers, request_timeout=10))
    except HTTPClientError as exc:
        return exc.code
    await conn.read_message()  # hello
    await conn.write_message(orjson.dumps({"type": "sync", "epoch": epoch, "keep": 0}))
    forged = [[seq, epoch, None, f"forged {seq}"] for seq in range(1, 6)]
    await conn.write_message(orjson.dumps({"type": "append", "entries": forged}))
    await asyncio.sleep(0.5)  # give a (wrongly) accepted batch time to be applied
    conn.close()
    return None


def test_replication_upgrade_without_the_token_is_401_and_stores_nothing(cluster_factory):
    cluster = token_cluster(cluster_factory)
    for i in range(3):
        assert cluster.write(f"real {i}", w=2).status == 201
    secondary = cluster.secondaries["s1"]
    health = cluster.master.health()
    query = urlencode(
        {"epoch": health["epoch"], "secondary": "s1", "cluster": health["cluster_id"]}
    )
    url = secondary.url.replace("http://", "ws://") + f"/replication?{query}"
    for headers in ({}, auth("not-the-token")):
        status = asyncio.run(forge_replication(url, headers, health["epoch"]))
        assert status == 401
    reasons = [e["reason"] for e in events(secondary, "unauthorized")]
    assert reasons == ["missing", "wrong"]
    assert all(e["path"] == "/replication" for e in events(secondary, "unauthorized"))
    # The real stream was never disturbed: nothing forged, same log as the master's.
    log = cluster.master.messages()
    assert secondary.messages() == log
    assert not any("forged" in m["message"] for m in log)
    assert len(events(secondary, "stream_attached")) == 1
    resp = cluster.write("after", w=2)
    assert resp.status == 201 and resp.body["acked_by"] == ["master", "s1"]
    assert secondary.messages() == cluster.master.messages()


def test_log_export_without_the_token_is_401_with_no_entries(cluster_factory):
    cluster = token_cluster(cluster_factory)
    assert cluster.write("confidential", w=2).status == 201
    url = cluster.secondaries["s1"].url + "/replication/log?from=1"
    for headers, reason in (({}, "missing"), (auth("nope"), "wrong")):
        resp = http.get(url, headers=headers)
        assert_unauthorized(resp, reason)
        assert b"entries" not in resp.raw and b"confidential" not in resp.raw
    resp = http.get(url, headers=auth(TOKEN))
    assert resp.status == 200 and [e[3] for e in resp.body["entries"]] == ["confidential"]


def test_a_cluster_with_a_token_works_and_a_wrong_token_never_joins(cluster_factory):
    cluster = token_cluster(cluster_factory, secondaries=2)
    for node in cluster.nodes():
        assert node.health()["auth"] is True
        assert events(node, "no_cluster_token") == []
        assert "--cluster-token" not in " ".join(node.argv)  # given through the environment
    resp = cluster.write("all three", w=3)
    assert resp.status == 201 and sorted(resp.body["acked_by"]) == ["master", "s1", "s2"]

    wrong = cluster.add_secondary("wrong", wait=False, token="another-token")
    none = cluster.add_secondary("none", wait=False, token=None)
    wait_until(lambda: len(events(wrong, "register_unauthorized")) >= 2, what="wrong refused")
    wait_until(lambda: len(events(none, "register_unauthorized")) >= 2, what="none refused")
    refusal = events(wrong, "register_unauthorized")[0]
    assert refusal["level"] == "error" and "wrong cluster token" in refusal["error"]
    assert "Traceback" not in wrong.log_path.read_text()
    assert events(none, "no_cluster_token")  # it warned at start, and still cannot join
    assert none.health()["auth"] is False
    reasons = {(e["reason"]) for e in events(cluster.master, "unauthorized")}
    assert reasons == {"missing", "wrong"}
    size, members = membership(cluster)
    assert size == 3 and [m[0] for m in members] == ["s1", "s2"]
    assert wrong.health()["stream"] is False and wrong.messages() == []

    resp = cluster.write("still three", w=3)
    assert resp.status == 201 and sorted(resp.body["acked_by"]) == ["master", "s1", "s2"]
    log = cluster.master.messages()
    for name in ("s1", "s2"):
        wait_until(lambda n=name: cluster.secondaries[n].messages() == log, what=f"{name}")
    assert none.messages() == []


def test_the_master_logs_a_secondary_that_refuses_its_token_and_keeps_retrying(cluster_factory):
    """A member registered (with the token) at a URL whose node has another token: the
    master's link is refused at the upgrade, logs it as an error and retries."""
    cluster = cluster_factory(secondaries=1)
    cluster.token = TOKEN
    cluster.start_master(*FAST_DETECTION)
    cluster.add_secondary("s1")
    other = cluster.add_secondary("s2", wait=False, token="another-token")
    wait_until(lambda: events(other, "register_unauthorized"), what="s2 refused by the master")
    resp = http.post(
        cluster.master_url + "/register",
        {"id": "s2", "url": other.url, "incarnation": other.health()["incarnation"]},
        headers=auth(TOKEN),
    )
    assert resp.status == 200, resp
    wait_until(
        lambda: len(events(cluster.master, "stream_unauthorized")) >= 2,
        what="the master's link refused twice",
    )
    event = events(cluster.master, "stream_unauthorized")[0]
    assert event["secondary"] == "s2" and event["url"] == other.url
    assert event["level"] == "error"
    assert events(cluster.master, "stream_retry")
    assert "Traceback" not in cluster.master.log_path.read_text()
    assert events(other, "unauthorized") and other.messages() == []
    status = {s["id"]: s["status"] for s in cluster.master.health()["secondaries"]}
    assert status == {"s1": "healthy", "s2": "unhealthy"}
    resp = cluster.write("s1 only", w=2)
    assert resp.status == 201 and resp.body["acked_by"] == ["master", "s1"]


def test_recovery_fetches_the_log_with_the_token(cluster_factory):
    """A master rebuilt with --recover reads a secondary's /replication/log: with the token."""
    cluster = token_cluster(cluster_factory)
    for i in range(5):
        assert cluster.write(f"m{i}", w=2, id=i).status == 201
    log = cluster.master.messages()
    port = int(cluster.master_url.rsplit(":", 1)[1])
    assert cluster.master.stop() == 0
    cluster.wipe("master")
    cluster.start_master("--recover", port=port)
    wait_until(lambda: cluster.master.health()["status"] == "ok", timeout=30, what="recovered")
    assert cluster.master.messages() == log
    assert events(cluster.master, "recovered")[-1]["source"] == "s1"
    assert events(cluster.master, "recovery_fetch_failed") == []
    assert events(cluster.secondaries["s1"], "unauthorized") == []


def test_without_a_token_a_node_warns_and_health_says_auth_false(cluster_factory):
    cluster = cluster_factory(secondaries=1)
    cluster.start_master()
    cluster.add_secondary("s1")
    for node in cluster.nodes():
        health = node.health()
        assert health["auth"] is False and health["tls"] is False
        (warning,) = events(node, "no_cluster_token")
        assert warning["level"] == "warning" and "open to anyone" in warning["warning"]
    assert cluster.write("demo", w=2).status == 201
    # Internal endpoints answer as before, without any header.
    resp = http.get(cluster.secondaries["s1"].url + "/replication/log")
    assert resp.status == 200 and [e[3] for e in resp.body["entries"]] == ["demo"]
    assert json.loads(resp.raw)["entries"][0][0] == 1
