"""GET /metrics, /livez and /readyz on real nodes: values after writes, failures, restarts."""

from prometheus_client.parser import text_string_to_metric_families

from support.cluster import FAST_DETECTION
from support.waiting import wait_until
from tools.harness import http


def scrape(node) -> dict:
    resp = http.get(node.url + "/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, *(v for _, v in sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.raw.decode())
        for s in family.samples
    }


def readyz(node) -> tuple[int, dict]:
    resp = http.get(node.url + "/readyz")
    return resp.status, resp.body


def test_metrics_and_probes_follow_the_cluster(cluster_factory):
    cluster = cluster_factory(secondaries=2)
    # Failure detection in 1 s rather than the default 2 s: the test waits for it twice.
    master = cluster.start_master(*FAST_DETECTION)
    s1 = cluster.add_secondary("s1")
    s2 = cluster.add_secondary("s2")
    for i in range(3):
        assert cluster.write(f"m{i}", w=3, id=i).status == 201
    assert cluster.write("m0", w=1, id=0).status == 200
    assert cluster.write("other", w=1, id=0).status == 409

    health = master.health()
    m = scrape(master)
    assert m[("replog_log_last_seq",)] == health["last_seq"] == 3
    assert m[("replog_commit_seq",)] == health["commit_seq"] == 3
    assert m[("replog_writes_total", "ok")] == 3
    assert m[("replog_writes_total", "duplicate")] == 1
    assert m[("replog_writes_total", "conflict")] == 1
    assert m[("replog_write_latency_seconds_count", "3")] == 3
    assert m[("replog_write_latency_seconds_count", "1")] == 1
    assert m[("replog_read_only",)] == 0
    for name in ("s1", "s2"):
        assert m[("replog_secondary_acked_seq", name)] == 3  # w=3: both hold all three
        assert m[("replog_secondary_lag", name)] == 0
        assert m[("replog_secondary_status", name, "healthy")] == 1
        assert m[("replog_secondary_status", name, "unhealthy")] == 0
        assert m[("replog_stream_reconnects_total", name)] == 0
    assert m[("replog_replication_batch_entries_sum",)] >= 6  # 3 entries to each
    assert m[("replog_fsync_seconds_count",)] >= 1  # on disk, --fsync always
    assert readyz(master) == (200, {"ready": True})

    for secondary in (s1, s2):
        s = scrape(secondary)
        assert s[("replog_log_last_seq",)] == secondary.health()["contiguous_seq"] == 3
        assert s[("replog_stream_connected",)] == 1
        assert s[("replog_replication_batch_entries_sum",)] == 3
        assert s[("replog_fsync_seconds_count",)] >= 1
        assert readyz(secondary) == (200, {"ready": True})
        assert http.get(secondary.url + "/livez").status == 200

    # s2 down: its status and lag show it, and a w=3 write times out.
    s2.kill()
    wait_until(lambda: scrape(master)[("replog_secondary_status", "s2", "unhealthy")] == 1)
    assert cluster.write("m3", w=3, wtimeout=200).status == 504
    m = scrape(master)
    assert m[("replog_writes_total", "timeout")] == 1
    assert m[("replog_secondary_lag", "s2")] == 1 and m[("replog_secondary_acked_seq", "s2")] == 3
    assert m[("replog_secondary_status", "s2", "healthy")] == 0
    assert readyz(master) == (200, {"ready": True})  # 2 of 3 nodes: still a quorum

    # Back: its stream opens again, counted as a reconnect, and it catches up.
    s2.start()
    cluster.wait_connected("s2")
    wait_until(lambda: scrape(master)[("replog_secondary_lag", "s2")] == 0)
    assert scrape(master)[("replog_stream_reconnects_total", "s2")] == 1

    # No quorum: the master is read-only, and not ready.
    s1.kill()
    s2.kill()
    wait_until(lambda: readyz(master)[0] == 503)
    status, body = readyz(master)
    assert body["ready"] is False and body["error"].startswith("no quorum")
    assert cluster.write("m4", w=1).status == 503
    m = scrape(master)
    assert m[("replog_read_only",)] == 1 and m[("replog_writes_total", "read_only")] == 1
    assert http.get(master.url + "/livez").status == 200

    # A secondary without a master has no stream: alive, not ready.
    master.kill()
    s1.start()
    wait_until(lambda: http.get(s1.url + "/livez").status == 200)
    status, body = readyz(s1)
    assert status == 503 and body["error"].startswith("no replication stream from the master")
    assert scrape(s1)[("replog_stream_connected",)] == 0
