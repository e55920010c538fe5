"""GET /ui/events against real processes: ACKs arrive in the feed, and a stopping master
ends it at once."""

from __future__ import annotations

from support.sse_client import EventStream


class SnapshotFeed(EventStream):
    """A blocking reader of `GET /ui/events`."""

    def __init__(self, url: str, timeout: float = 10) -> None:
        super().__init__(url + "/ui/events", timeout=timeout)

    def next(self) -> dict | None:
        """The next snapshot; None once the feed ended."""
        event = self.next_event()
        if event is None:
            return None
        assert event["event"] == "snapshot", event
        return event["data"]

    def until(self, predicate, limit: int = 200) -> dict:
        """The first snapshot for which `predicate` holds (within `limit` snapshots: at
        most one a second when nothing changes, so the socket timeout bounds each)."""
        for _ in range(limit):
            snap = self.next()
            assert snap is not None, "the feed ended"
            if predicate(snap):
                return snap
        raise AssertionError(f"no snapshot matched in {limit}")


def acked(snap: dict) -> dict[str, int]:
    return {n["id"]: n["acked_seq"] for n in snap["nodes"]}


def test_the_feed_shows_acks_and_ends_when_the_master_stops(cluster_factory):
    cluster = cluster_factory(secondaries=1)
    master = cluster.start_master()
    cluster.add_secondary("s1")
    feed = SnapshotFeed(master.url)
    assert feed.response.status == 200
    assert feed.response.getheader("Content-Type") == "text/event-stream"
    first = feed.until(lambda s: len(s["nodes"]) == 2)
    assert acked(first) == {"master": 0, "s1": 0}
    assert first["nodes"][0]["url"] == master.url

    assert cluster.write("hello", w=2).status == 201
    snap = feed.until(lambda s: acked(s) == {"master": 1, "s1": 1})
    assert snap["tail"] == [{"seq": 1, "id": None, "message": "hello", "truncated": False}]
    assert snap["commit_seq"] == 1 and snap["writes"]["rate_per_s"] > 0

    # A stopping master closes the feed (within its 2 s stop) and exits 0.
    assert master.stop(timeout=10) == 0
    while feed.next() is not None:
        pass
    feed.conn.close()
    closed = [e for e in master.events() if e["event"] == "ui_reader_closed"]
    assert closed and closed[0]["sent"] >= 2
