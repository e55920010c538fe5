"""Frame limits between real processes: a secondary refuses frames over its own
bound, both ends say so, and the stream resumes once the flag is raised (issue 8)."""

from __future__ import annotations

from support.cluster import Node
from support.waiting import wait_until

BIG_BODY = str(4 << 20)


def events(node: Node, name: str) -> list[dict]:
    return [e for e in node.events() if e["event"] == name]


def test_a_frame_over_a_secondarys_limit_is_refused_until_its_flag_is_raised(cluster_factory):
    cluster = cluster_factory(secondaries=1)
    master = cluster.start_master("--max-body-bytes", BIG_BODY)
    secondary = cluster.add_secondary("s1")  # --max-entry-bytes: the default 1 MiB
    (warned,) = events(secondary, "frame_limit_below_master")[:1]
    assert warned["master_frame_bytes"] == (4 << 20) + 1024
    assert cluster.write("small", w=2).status == 201
    big = "x" * (2 << 20)
    answer = cluster.write(big, w=1)
    assert answer.status == 201 and answer.body["seq"] == 2

    refused = wait_until(
        lambda: [e for e in events(secondary, "bad_replication_message") if e.get("limit")],
        what="the secondary refusing the frame",
    )
    assert refused[0]["limit"] == (1 << 20) + 1024 and "--max-entry-bytes" in refused[0]["reason"]
    named = wait_until(
        lambda: events(master, "stream_refused_by_secondary"), what="the master naming the fix"
    )
    assert named[0]["code"] == 1009 and "--max-entry-bytes" in named[0]["reason"]
    # It keeps what it had and still serves it; it never holds half a frame.
    assert [m["message"] for m in secondary.messages()] == ["small"]

    assert secondary.stop() == 0
    warnings = len(events(secondary, "frame_limit_below_master"))
    secondary.argv += ["--max-entry-bytes", BIG_BODY]
    secondary.start()
    wait_until(lambda: len(secondary.messages()) == 2, what="the big entry replicated")
    assert secondary.messages()[1]["message"] == big
    assert len(events(secondary, "frame_limit_below_master")) == warnings  # none since
