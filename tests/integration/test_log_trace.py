"""The master's JSON log traces one message from append to write concern met."""

from support.waiting import wait_until


def mentions(event: dict, seq: int) -> bool:
    """The issue's jq filter: .seq==N or (.seq_from<=N and .seq_to>=N)."""
    if event.get("seq") == seq:
        return True
    return "seq_from" in event and event["seq_from"] <= seq <= event["seq_to"]


def test_one_message_ack_trace_in_the_master_log(cluster_factory):
    cluster = cluster_factory(secondaries=2)
    master = cluster.start_master()
    cluster.add_secondary("s1")
    cluster.add_secondary("s2")
    for i in range(1, 10):
        assert cluster.write(f"m{i}", w=3, id=i).status == 201

    def trace() -> list[dict]:
        return [e for e in master.events() if mentions(e, 7)]

    # Every event is one JSON object per line (Node.events parses each line).
    events = wait_until(
        lambda: (t := trace()) and any(e["event"] == "write_concern_met" for e in t) and t,
        what="trace of seq 7",
    )
    names = [e["event"] for e in events]
    assert names[0] == "append" and events[0]["seq"] == 7
    for secondary in ("s1", "s2"):
        sends = [
            e for e in events if e["event"] == "replication_send" and e["secondary"] == secondary
        ]
        acks = [e for e in events if e["event"] == "ack" and e["secondary"] == secondary]
        assert sends and acks, f"missing send or ack for {secondary}: {names}"
    met = [e for e in events if e["event"] == "write_concern_met"]
    assert met[-1]["w"] == 3 and met[-1]["acks"] == 3
    assert met[-1]["latency_ms"] >= 0
    assert all(e["node"] == "master" and "timestamp" in e for e in events)
