"""Failure handling against real processes: health, wtimeout, quorum, master restart."""

import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.cluster import FAST_DETECTION
from support.waiting import wait_until


def status_of(cluster, name: str) -> str | None:
    for s in cluster.master.health()["secondaries"]:
        if s["id"] == name:
            return s["status"]
    return None


@pytest.fixture
def cluster(cluster_factory):
    cluster = cluster_factory(secondaries=2)
    cluster.start_master(*FAST_DETECTION)
    cluster.add_secondary("s1")
    cluster.add_secondary("s2")
    return cluster


def test_health_reports_every_secondary(cluster):
    assert cluster.write("m", w=3).status == 201
    health = wait_until(
        lambda: (
            (h := cluster.master.health())
            and h["secondaries"][0]["acked_seq"] == 1
            and h["secondaries"][1]["acked_seq"] == 1
            and h
        ),
        what="acks",
    )
    assert health["role"] == "master" and health["status"] == "ok"
    assert health["quorum"] is True and health["read_only"] is False and health["last_seq"] == 1
    for s in health["secondaries"]:
        assert set(s) >= {"id", "url", "status", "acked_seq", "lag", "last_heartbeat_ms_ago"}
        assert s["status"] == "healthy" and s["lag"] == 0 and s["last_heartbeat_ms_ago"] < 1000
    secondary = cluster.secondaries["s1"].health()
    assert secondary["role"] == "secondary" and secondary["id"] == "s1"
    assert secondary["contiguous_seq"] == 1 and secondary["buffered"] == 0
    assert secondary["master"] == cluster.master_url


def test_hung_secondary_goes_suspected_then_unhealthy_and_recovers(cluster):
    s2 = cluster.secondaries["s2"]
    s2.signal(signal.SIGSTOP)
    try:
        wait_until(lambda: status_of(cluster, "s2") == "unhealthy", what="s2 unhealthy")
        # Quorum holds with 2 of 3: writes with w <= 2 go on.
        resp = cluster.write("while s2 hangs", w=2)
        assert resp.status == 201 and resp.body["acked_by"] == ["master", "s1"]
    finally:
        s2.signal(signal.SIGCONT)
    wait_until(lambda: status_of(cluster, "s2") == "healthy", what="s2 healthy again")
    wait_until(lambda: s2.messages() == cluster.master.messages(), what="s2 caught up")
    transitions = [
        (e["before"], e["after"])
        for e in cluster.master.events()
        if e["event"] == "secondary_status" and e["secondary"] == "s2"
    ]
    assert ("healthy", "suspected") in transitions or ("healthy", "unhealthy") not in transitions
    assert ("suspected", "unhealthy") in transitions
    assert transitions[-1][1] == "healthy"


def test_wtimeout_answers_504_and_the_message_stays(cluster):
    s2 = cluster.secondaries["s2"]
    s2.kill()
    resp = cluster.write("needs everyone", w=3, id="t1", wtimeout=300)
    assert resp.status == 504
    assert resp.body["seq"] == 1 and resp.body["w"] == 3
    assert resp.body["acks"] == 2 and resp.body["acked_by"] == ["master", "s1"]
    assert "error" in resp.body
    wait_until(lambda: len(cluster.secondaries["s1"].messages()) == 1, what="still replicates")
    s2.start()
    wait_until(lambda: len(s2.messages()) == 1, what="the returning node gets it too")
    retry = cluster.write("needs everyone", w=3, id="t1", wtimeout=5000)
    assert retry.status == 200 and retry.body["duplicate"] and retry.body["acks"] == 3


def test_w_above_cluster_size_is_400_at_once_and_w_above_reachable_waits(cluster):
    too_big = cluster.write("m", w=4)
    assert too_big.status == 400 and "between 1 and 3" in too_big.body["error"]
    cluster.secondaries["s2"].kill()
    waits = cluster.write("m", w=3, wtimeout=200)
    assert waits.status == 504


def test_no_quorum_is_read_only_and_recovers_by_itself(cluster):
    assert cluster.write("before", w=3, id="b").status == 201
    cluster.secondaries["s1"].kill()
    cluster.secondaries["s2"].kill()
    wait_until(lambda: cluster.master.health()["read_only"], what="read-only")
    refused = cluster.write("during", w=1, id="d")
    assert refused.status == 503 and refused.body["error"].startswith("read-only: no quorum")
    duplicate = cluster.write("before", w=1, id="b")
    assert duplicate.status == 200 and duplicate.body["duplicate"] is True
    assert [m["id"] for m in cluster.master.messages()] == ["b"]  # reads work, nothing appended
    health = cluster.master.health()
    assert health["quorum"] is False and health["status"] == "read_only"

    cluster.secondaries["s1"].start()
    wait_until(lambda: not cluster.master.health()["read_only"], what="quorum back")
    assert cluster.write("during", w=2, id="d").status == 201
    events = [e["event"] for e in cluster.master.events()]
    assert "read_only_entered" in events and "read_only_left" in events


def test_a_waiting_write_does_not_delay_others(cluster):
    cluster.secondaries["s2"].kill()
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(cluster.write, "w3", w=3, wtimeout=20000)
        wait_until(lambda: cluster.master.health()["last_seq"] == 1, what="w=3 appended")
        for i in range(20):
            assert cluster.write(f"quick {i}", w=1).status == 201
        assert not waiting.done()
        cluster.secondaries["s2"].start()
        assert waiting.result(30).status == 201


def test_acceptance_sequence(cluster_factory):
    """The course's self-check: M + S1; Msg1..Msg4; start S2; Msg3 completes."""
    cluster = cluster_factory(secondaries=2)
    cluster.start_master()
    cluster.add_secondary("S1")
    assert cluster.write("Msg1", w=1).status == 201
    assert cluster.write("Msg2", w=2).status == 201
    with ThreadPoolExecutor(1) as pool:
        msg3 = pool.submit(cluster.write, "Msg3", w=3)
        wait_until(lambda: cluster.master.health()["last_seq"] == 3, what="Msg3 appended")
        assert not msg3.done()
        msg4 = cluster.write("Msg4", w=1)
        assert msg4.status == 201 and msg4.body["seq"] == 4
        assert not msg3.done()
        s2 = cluster.add_secondary("S2", wait=False)
        result = msg3.result(30)
    assert result.status == 201 and result.body["acked_by"] == ["master", "S1", "S2"]
    wait_until(
        lambda: [m["message"] for m in s2.messages()] == ["Msg1", "Msg2", "Msg3", "Msg4"],
        what="S2 holds all four",
    )


def test_master_killed_under_load_keeps_every_majority_write(cluster):
    stop = threading.Event()
    acked: dict[str, int] = {}
    lock = threading.Lock()

    def writer(n: int) -> None:
        for k in range(10_000):  # bounded; stops at the kill
            if stop.is_set():
                return
            key = f"w{n}-{k}"
            try:
                resp = cluster.write(key, w="majority", id=key, timeout=5)
            except OSError:
                return
            if resp.status == 201:
                with lock:
                    acked[key] = resp.body["seq"]

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(writer, n) for n in range(8)]
        wait_until(lambda: len(acked) >= 200, timeout=30, what="some acknowledged writes")
        cluster.master.kill()
        stop.set()
        for f in futures:
            f.result(30)
    before = dict(acked)
    cluster.master.start()
    wait_until(lambda: cluster.master.health()["status"] == "ok", what="master recovered")
    log = {m["id"]: m for m in cluster.master.messages()}
    for key, seq in before.items():
        assert key in log and log[key]["seq"] == seq and log[key]["message"] == key
    # New writes go on after the recovered log, never reusing a seq.
    after = cluster.write("after restart", w=3, id="after")
    assert after.status == 201 and after.body["seq"] == len(log) + 1
    final = cluster.master.messages()
    for node in cluster.secondaries.values():
        wait_until(lambda node=node: node.messages() == final, what=f"{node.name} converged")
    # It reopened with its own log from disk, in a higher epoch.
    opened = [e for e in cluster.master.events() if e["event"] == "opened"]
    assert len(opened) == 2 and opened[1]["epoch"] > opened[0]["epoch"]
    assert opened[1]["last_seq"] >= max(before.values())


def test_secondary_with_a_conflicting_suffix_has_it_replaced(cluster_factory):
    """An in-memory master recovers from its secondaries (a durable one has its own log)."""
    cluster = cluster_factory(secondaries=2, in_memory=True)
    cluster.start_master(*FAST_DETECTION, "--recovery-grace", "0.5")
    s1 = cluster.add_secondary("s1")
    s2 = cluster.add_secondary("s2")
    for i in range(1, 4):
        assert cluster.write(f"m{i}", w=3, id=i).status == 201
    s1.signal(signal.SIGSTOP)  # s1 misses what follows
    # Once unhealthy, the master drops s1's stream: nothing more reaches its socket.
    wait_until(lambda: status_of(cluster, "s1") == "unhealthy", what="s1 unhealthy")
    for i in range(4, 7):
        assert cluster.write(f"m{i}", w=2, id=i).status == 201  # held by master and s2 only
    wait_until(lambda: len(s2.messages()) == 6, what="s2 has 1..6")
    s2.signal(signal.SIGSTOP)  # s2 will come back after the new master wrote
    cluster.master.kill()
    s1.signal(signal.SIGCONT)
    try:
        cluster.master.start()
        # The new master adopts s1's log (1..3) after the grace period and writes on.
        wait_until(lambda: cluster.master.health()["status"] == "ok", what="new master open")
        assert [m["seq"] for m in cluster.master.messages()] == [1, 2, 3]
        resp = cluster.write("new4", w=2, id="n4")
        assert resp.status == 201 and resp.body["seq"] == 4
    finally:
        s2.signal(signal.SIGCONT)
    final = cluster.master.messages()
    wait_until(lambda: s2.messages() == final, what="s2's suffix replaced by the master's log")
    warnings = [e for e in s2.events() if e["event"] == "log_truncated"]
    assert warnings and warnings[-1]["discarded_seqs"] == [4, 5, 6]
    assert warnings[-1]["level"] == "warning"
