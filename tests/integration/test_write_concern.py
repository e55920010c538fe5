"""Write concern against real processes: who waits, who does not, and convergence."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.cluster import BIN, Node, free_port
from support.waiting import wait_until
from tools.harness import http

# Tests that check the slow secondary is behind at some moment need a wide margin over a
# loaded machine's round trips; tests that only wait for it to hold a write do not.
SLOW_DELAY = 3.0
BRIEF_DELAY = 0.3


def fast_and_slow(cluster_factory, delay: float):
    cluster = cluster_factory(secondaries=2)
    cluster.start_master()
    cluster.add_secondary("fast")
    cluster.add_secondary("slow", delay=delay)
    return cluster


@pytest.fixture
def cluster(cluster_factory):
    return fast_and_slow(cluster_factory, SLOW_DELAY)


@pytest.fixture
def briefly_slow_cluster(cluster_factory):
    return fast_and_slow(cluster_factory, BRIEF_DELAY)


def test_w1_w2_w3_with_a_slow_secondary(cluster):
    master, fast, slow = cluster.master, cluster.secondaries["fast"], cluster.secondaries["slow"]

    one = cluster.write("Msg1", w=1, id=1)
    assert one.status == 201
    # Answered once the master's own copy is on disk; the fast secondary may have
    # synced its copy meanwhile (acks may exceed w), the delayed one cannot have.
    assert one.body["acked_by"][0] == "master" and "slow" not in one.body["acked_by"]
    assert one.body["acks"] == len(one.body["acked_by"])

    two = cluster.write("Msg2", w=2, id=2)
    assert two.status == 201
    assert two.body["acks"] == 2 and two.body["acked_by"] == ["master", "fast"]
    # The slow secondary lags: the master and the fast one show more than it does.
    assert [m["seq"] for m in fast.messages()] == [1, 2]
    assert len(slow.messages()) < len(master.messages())

    three = cluster.write("Msg3", w=3, id=3)
    assert three.status == 201
    assert three.body["acked_by"] == ["master", "fast", "slow"]
    # w=3 only answered once the slow node held Msg3, so it holds it now.
    assert [m["message"] for m in slow.messages()] == ["Msg1", "Msg2", "Msg3"]
    expected = master.messages()
    for node in (fast, slow):
        assert node.messages() == expected


def test_a_waiting_write_never_blocks_other_clients(cluster):
    slow = cluster.secondaries["slow"]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(cluster.write, "needs all three", w=3)
        wait_until(lambda: len(cluster.master.messages()) == 1, what="the w=3 write appended")
        quick = cluster.write("quick", w=1)
        assert quick.status == 201 and quick.body["seq"] == 2
        assert not waiting.done(), "the w=3 write cannot be done before the slow node holds it"
        fast_write = cluster.write("two nodes", w=2)
        assert fast_write.status == 201 and "slow" not in fast_write.body["acked_by"]
        assert not waiting.done()
        result = waiting.result(timeout=30)
    assert result.status == 201 and "slow" in result.body["acked_by"]
    wait_until(lambda: len(slow.messages()) == 3, what="slow secondary converges")


def test_majority_and_default_w(briefly_slow_cluster):
    cluster = briefly_slow_cluster
    majority = cluster.write("m", w="majority")
    assert majority.status == 201 and majority.body["w"] == 2
    everyone = cluster.write("all")  # default: every node
    assert everyone.status == 201 and everyone.body["w"] == 3 and everyone.body["acks"] == 3


def test_retry_with_same_id_is_deduplicated_and_honours_its_w(briefly_slow_cluster):
    cluster = briefly_slow_cluster
    first = cluster.write("once", w=1, id="req-1")
    assert first.status == 201 and not first.body["duplicate"]
    retry = cluster.write("once", w=3, id="req-1")
    assert retry.status == 200 and retry.body["duplicate"] is True
    assert retry.body["seq"] == first.body["seq"] and retry.body["acks"] == 3
    conflict = cluster.write("different", w=1, id="req-1")
    assert conflict.status == 409 and "error" in conflict.body
    numeric = cluster.write("once", w=1, id=1)  # 1 and "req-1" / "1" are different keys
    assert numeric.status == 201
    expected = [
        {"seq": 1, "id": "req-1", "message": "once"},
        {"seq": 2, "id": 1, "message": "once"},
    ]
    for node in cluster.nodes():
        wait_until(lambda node=node: node.messages() == expected, what=f"{node.name} converged")


def gap_free(snapshot: list[dict]) -> bool:
    return [m["seq"] for m in snapshot] == list(range(1, len(snapshot) + 1))


def test_300_concurrent_writers_converge_without_gaps(cluster_factory):
    cluster = cluster_factory(secondaries=2)
    cluster.start_master()
    cluster.add_secondary("s1")
    cluster.add_secondary("s2", delay=0.05)  # a little lag so reads can catch partial states
    stop = threading.Event()
    snapshots: dict[str, list[list[dict]]] = {name: [] for name in cluster.secondaries}

    def sample(name: str) -> None:
        node = cluster.secondaries[name]
        for _ in range(2000):  # bounded: stops by itself even if the writers hang
            if stop.is_set():
                return
            snapshots[name].append(node.messages())

    ws = [1, 2, 3, "majority"]

    def writer(n: int) -> list:
        results = []
        for k in range(3):
            body_id = f"w{n}-{k}"
            resp = cluster.write(f"message {n}.{k}", w=ws[(n + k) % 4], id=body_id)
            results.append((body_id, resp.status, resp.body))
            if k == 1:  # a client retry: must not append twice
                again = cluster.write(f"message {n}.{k}", w=1, id=body_id)
                results.append((body_id, again.status, again.body))
        return results

    samplers = [threading.Thread(target=sample, args=(name,)) for name in snapshots]
    for t in samplers:
        t.start()
    try:
        with ThreadPoolExecutor(300) as pool:
            outcomes = [r for rs in pool.map(writer, range(300)) for r in rs]
    finally:
        stop.set()
        for t in samplers:
            t.join(30)

    seq_of = {}
    for body_id, status, body in outcomes:
        assert status in (200, 201), (status, body)
        assert body["acks"] >= body["w"]
        seq_of.setdefault(body_id, body["seq"])
        assert seq_of[body_id] == body["seq"], "a retry must answer with the original seq"
    final = cluster.master.messages()
    assert len(final) == 900 and gap_free(final)
    assert {m["id"] for m in final} == set(seq_of)
    for node in cluster.secondaries.values():
        wait_until(lambda node=node: node.messages() == final, what=f"{node.name} converged")
    for name, snaps in snapshots.items():
        assert snaps, f"no reads sampled on {name}"
        for snap in snaps:
            assert gap_free(snap), f"{name} exposed a gap"
            assert snap == final[: len(snap)], f"{name} showed a different order"


def test_secondary_started_before_master_registers_once_it_is_up(cluster_factory):
    cluster = cluster_factory(secondaries=1)
    port = free_port(cluster.host)
    master_port = free_port(cluster.host)
    master_url = f"http://{cluster.host}:{master_port}"
    # Start the secondary pointing at a master that does not exist yet.
    secondary = Node(
        "early",
        [
            str(BIN / "replog-secondary"),
            "--host",
            cluster.host,
            "--port",
            str(port),
            "--master",
            master_url,
            "--id",
            "early",
            *cluster.storage_args("early"),
        ],
        f"http://{cluster.host}:{port}",
        cluster.tmp_path / "early.log",
    ).start()
    cluster.secondaries["early"] = secondary
    wait_until(
        lambda: any(e["event"] == "register_failed" for e in secondary.events()),
        what="a failed registration attempt",
    )
    master = Node(
        "master",
        [
            str(BIN / "replog-master"),
            "--host",
            cluster.host,
            "--port",
            str(master_port),
            "--secondaries",
            "1",
            *cluster.storage_args("master"),
        ],
        master_url,
        cluster.tmp_path / "master.log",
    ).start()
    cluster.master = master
    cluster.wait_connected("early")
    resp = http.post(master_url + "/", {"message": "late", "w": 2})
    assert resp.status == 201 and resp.body["acked_by"] == ["master", "early"]
