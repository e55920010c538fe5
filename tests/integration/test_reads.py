"""Reading against real processes: long polls, Server-Sent Event streams, read concern."""

from __future__ import annotations

import http.client as httpclient
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from support.cluster import messages
from support.sse_client import EventStream
from support.waiting import wait_until
from tools.harness import http

# A slow secondary applies each batch this long after it arrives.
SLOW_DELAY = 1.0
# Long enough that no test waits it out when it should be woken.
LONG_WAIT = 20
# Master flags that keep a paused secondary counted for quorum for as long as a test runs.
PATIENT = ["--suspect-after", "20", "--unhealthy-after", "60"]


def seqs(events: list[dict]) -> list[int]:
    assert all(int(e["id"]) == e["data"]["seq"] for e in events), events
    return [e["data"]["seq"] for e in events]


@pytest.fixture
def slow_cluster(cluster_factory):
    """A master, a secondary that applies at once and one that waits SLOW_DELAY."""
    cluster = cluster_factory(secondaries=2)
    cluster.start_master()
    cluster.add_secondary("fast")
    cluster.add_secondary("slow", delay=SLOW_DELAY)
    return cluster


def long_poll(url: str, **query: object) -> tuple[http.Response, float]:
    """GET with the query; the answer and how long it took."""
    started = time.monotonic()
    text = "&".join(f"{k}={v}" for k, v in query.items())
    resp = http.get(f"{url}/?{text}", timeout=LONG_WAIT + 10)
    return resp, time.monotonic() - started


def test_a_long_poll_is_woken_by_a_write_on_the_master_and_on_a_slow_secondary(slow_cluster):
    master, slow = slow_cluster.master, slow_cluster.secondaries["slow"]
    with ThreadPoolExecutor(2) as pool:
        on_master = pool.submit(long_poll, master.url, **{"from": 1, "wait": LONG_WAIT})
        on_slow = pool.submit(long_poll, slow.url, **{"from": 1, "wait": LONG_WAIT})
        written = slow_cluster.write("hello", w=1)
        assert written.status == 201
        for poll in (on_master, on_slow):
            resp, took = poll.result(timeout=LONG_WAIT + 15)
            assert resp.status == 200 and took < LONG_WAIT
            assert resp.body["messages"] == [{"seq": 1, "id": None, "message": "hello"}]
    # The slow secondary only holds it SLOW_DELAY after the write's answer: that poll
    # was waiting when the entry arrived, and answered with it then.
    resp, _ = long_poll(slow.url, **{"from": 1, "wait": 0})
    assert [m["seq"] for m in resp.body["messages"]] == [1]


def test_a_long_poll_answers_at_once_when_the_entry_is_there_with_limit(slow_cluster):
    for i in range(3):
        assert slow_cluster.write(f"m{i}", w=3).status == 201
    resp, _ = long_poll(slow_cluster.master.url, **{"from": 2, "limit": 1, "wait": LONG_WAIT})
    assert [m["message"] for m in resp.body["messages"]] == ["m1"]


def test_a_long_poll_that_times_out_answers_an_empty_list(cluster_factory):
    cluster = cluster_factory(secondaries=0)
    master = cluster.start_master("--max-wait", "0.5")
    resp, took = long_poll(master.url, **{"from": 1, "wait": 0.2})
    assert resp.status == 200 and resp.body == {"messages": []} and took >= 0.2
    # Asked for more than --max-wait: waits that long, not what it asked.
    for huge in ("3600", "99999999999", "0.12345678912345"):
        resp, took = long_poll(master.url, **{"from": 1, "wait": huge})
        assert resp.status == 200 and resp.body == {"messages": []}, huge
        assert 0.1 <= took < LONG_WAIT


BAD_READS = [
    ("/?wait=-1", "wait"),
    ("/?wait=abc", "wait"),
    ("/?wait=nan", "wait"),
    ("/?wait=inf", "wait"),
    ("/?wait=1e3", "wait"),
    ("/?read=linearizable", 'read must be "local" or "majority", not'),
    ("/?from=0&wait=1", "from"),
    ("/stream?read=all", 'read must be "local" or "majority", not'),
    ("/stream?from=0", "from"),
    ("/stream?from=x", "from"),
]


def test_bad_wait_read_from_and_last_event_id_are_400_on_both_roles(slow_cluster):
    for node in (slow_cluster.master, slow_cluster.secondaries["fast"]):
        for path, says in BAD_READS:
            resp = http.get(node.url + path, timeout=5)
            assert resp.status == 400, (node.name, path, resp.raw)
            assert resp.headers["Content-Type"] == "application/json"
            assert says in resp.body["error"], (path, resp.body)
        for last_id in ("-1", "abc", "1.5"):
            resp = http.get(node.url + "/stream", headers={"Last-Event-ID": last_id}, timeout=5)
            assert resp.status == 400 and "Last-Event-ID" in resp.body["error"], resp.raw


def test_a_stream_survives_a_secondary_restart_and_resumes_with_last_event_id(slow_cluster):
    fast = slow_cluster.secondaries["fast"]
    for i in range(1, 4):
        assert slow_cluster.write(f"m{i}", w=3).status == 201
    stream = EventStream(fast.url + "/stream?from=1")
    assert stream.response.status == 200
    assert stream.response.headers["Content-Type"] == "text/event-stream"
    assert stream.response.headers["Cache-Control"] == "no-cache"
    first = stream.take(3)
    assert seqs(first) == [1, 2, 3]
    assert [e["data"]["message"] for e in first] == ["m1", "m2", "m3"]
    # Live: an entry written now arrives on the open stream.
    assert slow_cluster.write("m4", w=2).status == 201
    assert seqs(stream.take(1)) == [4]

    fast.kill()
    assert stream.next_event() is None  # the stream ends with the process
    stream.close()
    # Written while it is down: it catches up from the master after the restart.
    assert slow_cluster.write("m5", w=1).status == 201
    assert slow_cluster.write("m6", w=1).status == 201
    fast.start()
    slow_cluster.wait_connected("fast")

    resumed = EventStream(fast.url + "/stream?from=1", last_event_id=4)
    assert resumed.response.status == 200
    got = resumed.take(2)
    assert slow_cluster.write("m7", w=2).status == 201
    got += resumed.take(1)
    # After 4, and nothing twice: Last-Event-ID wins over ?from=1.
    assert seqs(got) == [5, 6, 7]
    assert [e["data"]["message"] for e in got] == ["m5", "m6", "m7"]
    resumed.close()


def test_a_stream_without_from_starts_at_the_next_new_entry(slow_cluster):
    master = slow_cluster.master
    assert slow_cluster.write("old", w=1).status == 201
    stream = EventStream(master.url + "/stream")
    assert stream.response.status == 200  # headers at once, before any event
    assert slow_cluster.write("new", w=1).status == 201
    (event,) = stream.take(1)
    assert event["data"] == {"seq": 2, "id": None, "message": "new"}
    stream.close()
    wait_until(
        lambda: any(e["event"] == "stream_reader_closed" for e in master.events()),
        what="the closed stream logged",
    )
    opened = [e for e in master.events() if e["event"] == "stream_reader_opened"]
    assert opened[-1]["from"] == 2 and opened[-1]["read"] == "local"


def test_a_message_with_newlines_is_one_data_line(slow_cluster):
    assert slow_cluster.write("two\nlines\r\nhere", w=1).status == 201
    stream = EventStream(slow_cluster.master.url + "/stream?from=1")
    raw = b""
    while not raw.endswith(b"\n\n"):
        raw += stream.response.read1(4096)
    stream.close()
    assert raw.decode().splitlines()[:2] == [
        "id: 1",
        'data: {"seq":1,"id":null,"message":"two\\nlines\\r\\nhere"}',
    ]


def test_read_majority_hides_an_entry_fewer_than_a_majority_hold_on_both_roles(cluster_factory):
    # N = 4 (majority 3): the master, fast, paused, and one that never comes.
    cluster = cluster_factory(secondaries=3)
    master = cluster.start_master(*PATIENT)
    fast = cluster.add_secondary("fast")
    paused = cluster.add_secondary("paused")
    assert cluster.write("a", w=3).status == 201
    wait_until(lambda: master.health()["commit_seq"] == 1, what="the master's commit point at 1")
    wait_until(lambda: fast.health()["commit_seq"] == 1, what="fast told commit point 1")

    paused.signal(signal.SIGSTOP)
    try:
        # Held by the master and fast: 2 of 4 nodes, not a majority.
        assert cluster.write("b", w=2).status == 201
        assert [m["message"] for m in master.messages()] == ["a", "b"]
        assert [m["message"] for m in fast.messages()] == ["a", "b"]
        for node in (master, fast):
            shown = messages(node.url + "/?read=majority")
            assert [m["message"] for m in shown] == ["a"], node.name
            assert node.health()["commit_seq"] == 1, node.name
        # A majority read of entry 2 waits, on both roles; a local one does not.
        resp, _ = long_poll(fast.url, **{"from": 2, "read": "local", "wait": LONG_WAIT})
        assert [m["message"] for m in resp.body["messages"]] == ["b"]
        with ThreadPoolExecutor(3) as pool:
            polls = [
                pool.submit(long_poll, node.url, **{"from": 2, "read": "majority", "wait": 60})
                for node in (master, fast)
            ]
            stream = EventStream(fast.url + "/stream?from=1&read=majority", timeout=30)
            assert seqs(stream.take(1)) == [1]
            assert not any(poll.done() for poll in polls)
            paused.signal(signal.SIGCONT)
            for poll in polls:
                resp, took = poll.result(timeout=45)
                assert [m["message"] for m in resp.body["messages"]] == ["b"]
                assert took < 60
            assert seqs(stream.take(1)) == [2]
            stream.close()
    finally:
        paused.signal(signal.SIGCONT)
    assert master.health()["commit_seq"] == 2
    wait_until(lambda: fast.health()["commit_seq"] == 2, what="fast told commit point 2")
    assert [m["message"] for m in messages(fast.url + "/?read=majority")] == ["a", "b"]


def test_a_stream_reader_that_does_not_read_is_disconnected(cluster_factory):
    cluster = cluster_factory(secondaries=0)
    master = cluster.start_master("--stream-buffer-bytes", "65536")
    parts = urlsplit(master.url)
    reader = socket.socket()
    # A tiny receive window: the master's writes pile up on its side.
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect((parts.hostname, parts.port))
    reader.sendall(b"GET /stream?from=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        wait_until(
            lambda: any(e["event"] == "stream_reader_opened" for e in master.events()),
            what="the stream open",
        )
        big = "x" * (256 << 10)

        def slow_logged() -> bool:
            return any(e["event"] == "stream_reader_slow" for e in master.events())

        written = 0
        while not slow_logged():
            assert written < 400, "40+ MiB written and the reader never judged slow"
            assert cluster.write(big, w=1).status == 201
            written += 1
        (slow,) = [e for e in master.events() if e["event"] == "stream_reader_slow"]
        assert slow["buffered_bytes"] > 65536 and slow["seq"] >= 1 and slow["peer"]
        wait_until(
            lambda: any(
                e["event"] == "stream_reader_closed" and e["reason"] == "slow"
                for e in master.events()
            ),
            what="the slow stream closed",
        )
        # The master goes on serving.
        assert cluster.write("after", w=1).status == 201
    finally:
        reader.close()


def test_a_node_stops_at_once_with_readers_waiting_and_streaming(slow_cluster):
    fast = slow_cluster.secondaries["fast"]
    with ThreadPoolExecutor(1) as pool:
        for node in (fast, slow_cluster.master):
            stream = EventStream(node.url + "/stream")
            assert stream.response.status == 200
            poll = pool.submit(long_poll, node.url, **{"from": 1, "wait": LONG_WAIT})
            wait_until(
                lambda node=node: any(e["event"] == "stream_reader_opened" for e in node.events()),
                what="the stream open",
            )
            assert node.stop(timeout=10) == 0
            assert stream.next_event() is None
            stream.close()
            with pytest.raises((ConnectionError, httpclient.HTTPException)):
                poll.result(timeout=10)


def test_a_bad_from_is_refused_even_beside_a_good_last_event_id(slow_cluster):
    resp = http.get(
        slow_cluster.master.url + "/stream?from=x", headers={"Last-Event-ID": "1"}, timeout=5
    )
    assert resp.status == 400 and '"from"' in resp.body["error"]


def test_a_reader_catching_up_on_much_more_than_the_buffer_is_not_cut_off(cluster_factory):
    cluster = cluster_factory(secondaries=0)
    master = cluster.start_master("--stream-buffer-bytes", "65536")
    body = {"messages": [f"{i:04d}" + "y" * 20_000 for i in range(40)], "w": 1}
    for _ in range(8):  # 320 entries, 6.4 MB: about a hundred times the buffer
        assert http.post(master.url + "/", body).status == 201
    stream = EventStream(master.url + "/stream?from=1")
    events = stream.take(320)
    stream.close()
    assert seqs(events) == list(range(1, 321))
    assert not any(e["event"] == "stream_reader_slow" for e in master.events())


def test_read_majority_hides_a_w1_write_while_both_secondaries_are_paused(cluster_factory):
    """Three nodes: a w=1 write the master alone holds is local, not majority, until a
    secondary holds it too."""
    cluster = cluster_factory(secondaries=2)
    master = cluster.start_master(*PATIENT)
    one = cluster.add_secondary("one")
    two = cluster.add_secondary("two")
    assert cluster.write("a", w=3).status == 201
    wait_until(lambda: master.health()["commit_seq"] == 1, what="the commit point at 1")
    for node in (one, two):
        node.signal(signal.SIGSTOP)
    try:
        assert cluster.write("b", w=1).status == 201
        assert [m["message"] for m in master.messages()] == ["a", "b"]
        assert [m["message"] for m in messages(master.url + "/?read=majority")] == ["a"]
        health = master.health()
        assert (health["last_seq"], health["commit_seq"]) == (2, 1)
        one.signal(signal.SIGCONT)
        wait_until(lambda: master.health()["commit_seq"] == 2, what="the commit point at 2")
        shown = messages(master.url + "/?read=majority")
        assert [m["message"] for m in shown] == ["a", "b"]
    finally:
        for node in (one, two):
            node.signal(signal.SIGCONT)
