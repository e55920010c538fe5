"""A secondary killed with SIGKILL catches up: in memory it comes back empty, on disk with
its log."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from support.waiting import wait_until


@pytest.mark.parametrize("in_memory", [True, False], ids=["memory", "disk"])
def test_killed_secondary_restarts_and_catches_up(cluster_factory, in_memory):
    cluster = cluster_factory(secondaries=2, in_memory=in_memory)
    cluster.start_master()
    cluster.add_secondary("s1")
    victim = cluster.add_secondary("s2")
    for i in range(50):
        assert cluster.write(f"before {i}", w=3, id=f"b{i}").status == 201

    victim.kill()
    wait_until(
        lambda: any(
            s["id"] == "s2" and s["status"] == "unhealthy"
            for s in cluster.master.health()["secondaries"]
        ),
        what="master noticed s2 is gone",
    )
    # While s2 is down: w=2 writes succeed, a w=3 write waits for it.
    for i in range(50):
        resp = cluster.write(f"during {i}", w=2, id=f"d{i}")
        assert resp.status == 201 and "s2" not in resp.body["acked_by"]
    with ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(cluster.write, "needs s2", w=3, id="x")
        wait_until(lambda: len(cluster.master.messages()) == 101, what="w=3 write appended")
        assert not blocked.done()

        victim.start()  # a new process: empty log (or its log from disk), registers again
        result = blocked.result(timeout=30)
    assert result.status == 201 and "s2" in result.body["acked_by"]
    expected = cluster.master.messages()
    assert len(expected) == 101
    wait_until(lambda: victim.messages() == expected, what="s2 caught up")
    registrations = [
        e
        for e in cluster.master.events()
        if e["event"] == "secondary_registered" and e["secondary"] == "s2"
    ]
    # It reported what it held: nothing in memory, everything it held before on disk.
    assert registrations[-1]["contiguous_seq"] == (0 if in_memory else 50)
