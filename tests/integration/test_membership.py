"""Membership against real processes: an id is bound to its node, removal, and quorum
counted from replication streams only (issue 8)."""

from __future__ import annotations

import dataclasses
import shutil
import signal

from support.cluster import BIN, FAST_DETECTION, Cluster, Node
from support.waiting import wait_until
from tools.harness import http
from tools.harness.net import free_port


def events(node: Node, name: str) -> list[dict]:
    return [e for e in node.events() if e["event"] == name]


def member(cluster: Cluster, name: str) -> dict | None:
    return next((s for s in cluster.master.health()["secondaries"] if s["id"] == name), None)


def impostor(cluster: Cluster, of: str, name: str) -> Node:
    """Another process, with its own data directory, started with `of`'s --id."""
    original = cluster.secondaries[of]
    port = free_port(cluster.host)
    argv = [*original.argv]
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--data-dir") + 1] = str(cluster.data_dir(name))
    node = dataclasses.replace(
        original,
        name=name,
        argv=argv,
        url=f"http://{cluster.host}:{port}",
        log_path=cluster.tmp_path / f"{name}.log",
        proc=None,
    )
    cluster.secondaries[name] = node.start()
    return node


def test_a_second_node_with_the_same_id_is_refused_while_the_first_is_up(cluster_factory):
    cluster = cluster_factory(secondaries=2)
    cluster.start_master(*FAST_DETECTION)
    cluster.add_secondary("s1")
    cluster.add_secondary("s2")
    original = cluster.secondaries["s1"]
    twin = impostor(cluster, "s1", "s1-twin")
    wait_until(lambda: len(events(twin, "id_conflict")) >= 2, what="the twin refused twice")
    refused = events(cluster.master, "registration_refused")
    assert refused and refused[-1]["secondary"] == "s1" and refused[-1]["url"] == twin.url
    # The running node kept its id, its URL and its stream: it gets every write.
    assert member(cluster, "s1")["url"] == original.url
    assert member(cluster, "s1")["status"] == "healthy"
    resp = cluster.write("kept", w=3)
    assert resp.status == 201 and resp.body["acked_by"] == ["master", "s1", "s2"]
    assert [m["message"] for m in original.messages()] == ["kept"]
    assert twin.messages() == [] and twin.health()["stream"] is False
    # Once the first node is down, the other one may take the id: counted as
    # empty (a new incarnation), and refilled.
    original.kill()
    wait_until(lambda: member(cluster, "s1")["url"] == twin.url, what="the twin took the id")
    wait_until(lambda: [m["message"] for m in twin.messages()] == ["kept"], what="twin refilled")
    assert cluster.write("after", w=3).status == 201


def test_a_restarted_node_takes_its_id_back_at_once(cluster_factory):
    cluster = cluster_factory(secondaries=1)
    cluster.start_master(*FAST_DETECTION)
    cluster.add_secondary("s1")
    assert cluster.write("a", w=2).status == 201
    node = cluster.secondaries["s1"]
    node.kill()
    port = free_port(cluster.host)
    node.argv[node.argv.index("--port") + 1] = str(port)
    node.url = f"http://{cluster.host}:{port}"
    node.start()  # same data directory, another port: the same node
    cluster.wait_connected("s1")
    assert not events(cluster.master, "registration_refused")
    assert member(cluster, "s1")["url"] == node.url
    assert cluster.write("b", w=2).status == 201


def test_delete_secondary_shrinks_the_cluster_for_good(cluster_factory):
    # No --secondaries: N is 1 + the members, which the master persists.
    cluster = cluster_factory()
    cluster.start_master(*FAST_DETECTION)
    cluster.add_secondary("s1")
    cluster.add_secondary("s2")
    assert cluster.write("both", w=3).status == 201
    missing = http.request("DELETE", cluster.master_url + "/secondaries/nobody")
    assert missing.status == 404 and "nobody" in missing.body["error"]
    resp = http.request("DELETE", cluster.master_url + "/secondaries/s2")
    assert resp.status == 200 and resp.body == {"removed": "s2", "cluster_size": 2}
    s2 = cluster.secondaries["s2"]
    wait_until(lambda: s2.health()["stream"] is False, what="s2's stream stopped")
    wait_until(lambda: events(s2, "removed_from_cluster"), what="s2 told it was removed")
    ready = http.get(s2.url + "/readyz")  # not ready, and saying why
    assert ready.status == 503
    assert "removed_from_cluster: " in ready.body["reason"], ready.body
    health = cluster.master.health()
    assert [s["id"] for s in health["secondaries"]] == ["s1"] and health["cluster_size"] == 2
    assert cluster.write("w=3 no longer fits", w=3).status == 400
    resp = cluster.write("s1 only", w=2)
    assert resp.status == 201 and resp.body["acked_by"] == ["master", "s1"]
    assert [m["message"] for m in s2.messages()] == ["both"]
    # A restarted master remembers: s2 stays out, N stays 2.
    cluster.master.stop()
    cluster.master.start()
    wait_until(lambda: cluster.master.health()["status"] == "ok", what="master open")
    wait_until(lambda: len(events(s2, "removed_from_cluster")) >= 2, what="s2 refused again")
    health = cluster.master.health()
    assert [s["id"] for s in health["secondaries"]] == ["s1"] and health["cluster_size"] == 2


def test_a_secondary_the_master_cannot_reach_never_counts_for_quorum(cluster_factory):
    cluster = cluster_factory(secondaries=1)
    cluster.start_master(*FAST_DETECTION)
    dead = f"http://{cluster.host}:{free_port(cluster.host)}"  # nobody listens there
    port = free_port(cluster.host)
    argv = [
        str(BIN / "replog-secondary"),
        *("--host", cluster.host, "--port", str(port), "--master", cluster.master_url),
        *("--id", "s1", "--advertise", dead, *cluster.storage_args("s1")),
    ]
    node = Node("s1", argv, f"http://{cluster.host}:{port}", cluster.tmp_path / "s1.log")
    cluster.secondaries["s1"] = node.start()
    # It registers again and again (every few seconds without a stream)...
    wait_until(lambda: len(events(node, "registered")) >= 2, timeout=30, what="re-registrations")
    # ...yet the master never heard from it on a stream: 1 of 2 nodes, read-only.
    health = cluster.master.health()
    assert member(cluster, "s1")["status"] == "unhealthy"
    assert health["quorum"] is False and health["read_only"] is True
    resp = cluster.write("refused", w=1)
    assert resp.status == 503 and cluster.master.messages() == []


def test_dead_registrations_can_be_removed_and_writes_resume(cluster_factory):
    """Registrations at dead URLs raise N until the master is read-only (only members
    can do that once a token is set); removing them makes it writable again."""
    cluster = cluster_factory()
    cluster.start_master(*FAST_DETECTION)
    cluster.add_secondary("s1")
    for i in range(4):
        dead = f"http://{cluster.host}:{free_port(cluster.host)}"
        resp = http.post(cluster.master_url + "/register", {"id": f"ghost{i}", "url": dead})
        assert resp.status == 200
    health = wait_until(lambda: (h := cluster.master.health())["read_only"] and h, what="read-only")
    assert health["cluster_size"] == 6 and health["nodes_up"] == 2
    assert cluster.write("refused", w=1).status == 503
    for i in range(4):
        resp = http.request("DELETE", f"{cluster.master_url}/secondaries/ghost{i}")
        assert resp.status == 200 and resp.body["cluster_size"] == 5 - i
    wait_until(lambda: not cluster.master.health()["read_only"], what="writable again")
    resp = cluster.write("accepted", w=2)
    assert resp.status == 201 and resp.body["acked_by"] == ["master", "s1"]


def test_a_paused_secondarys_id_taken_elsewhere_is_never_named_as_a_holder(cluster_factory):
    """The attack from the issue: re-register a paused secondary's id at another URL,
    then ask for w=3. Refused while it is up; once it is down, whoever takes the id
    counts as holding nothing, so no answer names it until it really holds the entry."""
    cluster = cluster_factory(secondaries=2)
    cluster.start_master(*FAST_DETECTION)
    cluster.add_secondary("s1")
    cluster.add_secondary("s2")
    assert cluster.write("before", w=3).status == 201
    s2 = cluster.secondaries["s2"]
    elsewhere = f"http://{cluster.host}:{free_port(cluster.host)}"  # nobody answers there
    s2.signal(signal.SIGSTOP)
    try:
        resp = http.post(cluster.master_url + "/register", {"id": "s2", "url": elsewhere})
        assert resp.status == 409 and resp.body["conflict"] == "id"
        wait_until(lambda: member(cluster, "s2")["status"] == "unhealthy", what="s2 down")
        resp = http.post(
            cluster.master_url + "/register", {"id": "s2", "url": elsewhere, "contiguous_seq": 5}
        )
        assert resp.status == 200  # the id is free now; its claim of 5 entries is not believed
        assert member(cluster, "s2")["acked_seq"] == 0
        resp = cluster.write("after", w=3, wtimeout=500)
        assert resp.status == 504 and resp.body["acked_by"] == ["master", "s1"]
    finally:
        s2.signal(signal.SIGCONT)
    # The real s2 comes back (same incarnation) and takes its id back: refilled, counted.
    wait_until(lambda: member(cluster, "s2")["url"] == s2.url, timeout=20, what="s2 back")
    cluster.wait_connected("s2")
    resp = cluster.write("again", w=3)
    assert resp.status == 201 and resp.body["acked_by"] == ["master", "s1", "s2"]
    assert [m["message"] for m in s2.messages()] == ["before", "after", "again"]


def test_a_copy_of_a_secondarys_data_directory_cannot_take_its_id(cluster_factory):
    cluster = cluster_factory(secondaries=1)
    cluster.start_master(*FAST_DETECTION)
    cluster.add_secondary("s1")
    assert cluster.write("a", w=2).status == 201
    original = cluster.secondaries["s1"]
    original.stop()
    shutil.copytree(cluster.data_dir("s1"), cluster.data_dir("s1-copy"))
    original.start()
    cluster.wait_connected("s1")
    copy = impostor(cluster, "s1", "s1-copy")
    wait_until(lambda: len(events(copy, "id_conflict")) >= 2, what="the copy refused twice")
    opened = [e for e in events(cluster.master, "stream_opened") if e["secondary"] == "s1"]
    assert member(cluster, "s1")["url"] == original.url and len(opened) <= 2
    assert cluster.write("b", w=2).status == 201
    assert [m["message"] for m in original.messages()] == ["a", "b"]
