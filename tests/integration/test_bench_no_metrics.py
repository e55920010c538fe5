"""bench.no_metrics_node, the "off" side of `make bench --parts metrics`: real nodes, no metrics."""

import inspect
from collections.abc import Iterator
from contextlib import contextmanager

from bench.cluster import MEMORY, Cluster, Proc, http_json, wait_for
from bench.no_metrics_node import NoMetrics
from replog.common.metrics import NodeMetrics
from tools.harness import http


def public(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


def params(function) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_stand_in_answers_everything_the_nodes_use_of_node_metrics():
    for role in ("master", "secondary"):
        real, stand_in = NodeMetrics(role), NoMetrics(role)
        assert public(NodeMetrics) <= public(NoMetrics)
        for name in ("batch_entries", "fsync_seconds"):
            assert hasattr(getattr(real, name), "observe")
            getattr(stand_in, name).observe(0.5)
        for name in public(NodeMetrics):  # the same parameters, called the same way
            assert params(getattr(NoMetrics, name)) == params(getattr(NodeMetrics, name))


@contextmanager
def two_nodes(cluster: Cluster) -> Iterator[tuple[Proc, Proc]]:
    """A master and one secondary of `cluster`, up, stopped after; none may crash."""
    try:
        master = cluster.master(1)
        secondary = cluster.secondary("s1", master)
        wait_for(
            lambda: http_json("GET", master.url + "/health")["status"] == "ok",
            what="the master has quorum",
        )
        yield master, secondary
    finally:
        cluster.stop()
    assert cluster.crashed == []


def test_a_cluster_without_metrics_replicates_and_serves_an_empty_metrics(tmp_path):
    cluster = Cluster(tmp_path, MEMORY, metrics=False)
    with two_nodes(cluster) as (master, secondary):
        answer = http.post(master.url + "/", {"message": "m", "w": 2, "id": 1})
        assert answer.status == 201 and answer.body["acked_by"] == ["master", "s1"]
        for node in (master, secondary):
            scraped = http.get(node.url + "/metrics")
            assert scraped.status == 200 and scraped.raw == b""
        assert http_json("GET", secondary.url + "/")["messages"][0]["message"] == "m"
    assert [i for i in cluster.log_issues() if i["level"] != "warning"] == []


def test_switchable_nodes_count_only_while_switched_on(tmp_path):
    from bench.__main__ import switch_metrics, writes_ok_counted

    with two_nodes(Cluster(tmp_path, MEMORY, switchable=True)) as (master, secondary):
        assert http.post(master.url + "/", {"message": "on", "w": 2, "id": 1}).status == 201
        assert writes_ok_counted(master) == 1
        switch_metrics([master, secondary], on=False)
        assert http.post(master.url + "/", {"message": "off", "w": 2, "id": 2}).status == 201
        assert writes_ok_counted(master) == 1  # not counted while off
        switch_metrics([master, secondary], on=True)
        assert http.post(master.url + "/", {"message": "on", "w": 2, "id": 3}).status == 201
        assert writes_ok_counted(master) == 2
