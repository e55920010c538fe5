"""The simulated network: TCP's guarantees within a connection, and every fault it injects."""

import asyncio
import random
from collections import defaultdict

import pytest

from replog.common.ws import TOO_BIG, FrameLimit
from tools.sim.loop import SimLoop
from tools.sim.network import ConnectionClosed, DialRefused, SimConnection, SimNetwork


@pytest.fixture
def loop():
    sim = SimLoop()
    yield sim
    sim.close()


class Server:
    """A listener that keeps every end it accepted and reads them into `got`."""

    def __init__(self, loop: SimLoop, network: SimNetwork, name: str) -> None:
        self.loop = loop
        self.ends: list[SimConnection] = []
        self.got: dict[int, list[tuple[float, bytes]]] = defaultdict(list)
        network.listen(name, self.accept)

    def accept(self, end: SimConnection, request: object) -> None:
        self.ends.append(end)
        self.loop.create_task(self.read(end))

    async def read(self, end: SimConnection) -> None:
        while (frame := await end.read_message()) is not None:
            self.got[end.id].append((self.loop.time(), frame))


def run(loop: SimLoop, coro):
    return loop.run_until_complete(coro, max_events=1_000_000, time_limit=10_000)


def test_frames_arrive_after_the_latency_in_order_both_ways(loop):
    network = SimNetwork(loop, random.Random(1), latency=0.25)
    server = Server(loop, network, "s1")

    async def main():
        start = loop.time()
        conn = await network.connect("master", "s1")
        assert loop.time() - start == 0.5  # a round trip
        for n in range(3):
            conn.write_message(b"frame%d" % n)
        server.ends[0].write_message(b"hello")
        reply = await conn.read_message()
        assert (reply, loop.time() - start) == (b"hello", 0.75)
        await asyncio.sleep(1)
        return start

    start = run(loop, main())
    assert [(t - start, f) for t, f in server.got[1]] == [
        (0.75, b"frame0"),
        (0.75, b"frame1"),
        (0.75, b"frame2"),
    ]
    assert network.stats["sent"] == network.stats["delivered"] == 4


def test_jitter_never_reorders_a_connection(loop):
    network = SimNetwork(loop, random.Random(2), latency=0.01, jitter=0.5)
    server = Server(loop, network, "s1")

    async def main():
        conn = await network.connect("master", "s1")
        for n in range(200):
            conn.write_message(b"%d" % n)
            await asyncio.sleep(0.001)
        await asyncio.sleep(1)

    run(loop, main())
    times, frames = zip(*server.got[1], strict=True)
    assert list(frames) == [b"%d" % n for n in range(200)]
    assert list(times) == sorted(times)
    # The jitter spread arrivals, and a late frame held back those behind it
    # (head-of-line blocking, as in TCP): they arrive together.
    assert 5 < len(set(times)) < 200


def test_an_old_connection_can_deliver_after_a_new_one_opened(loop):
    network = SimNetwork(loop, random.Random(3), latency=1.0)
    server = Server(loop, network, "s1")
    order: list[tuple[int, bytes]] = []

    async def main():
        old = await network.connect("master", "s1")
        old.write_message(b"old frame")
        old.close(1000, "bye")
        network.set_latency("master", "s1", 0.01)
        network.set_latency("s1", "master", 0.01)
        new = await network.connect("master", "s1")
        new.write_message(b"new frame")
        await asyncio.sleep(2)
        return old, new

    old, new = run(loop, main())
    for conn_id, frames in server.got.items():
        order.extend((conn_id, frame) for _, frame in frames)
    arrivals = sorted((t, conn_id, f) for conn_id, fs in server.got.items() for t, f in fs)
    assert [(conn_id, f) for _, conn_id, f in arrivals] == [
        (new.id, b"new frame"),
        (old.id, b"old frame"),
    ]
    # The old connection's close came behind its frame, with its code.
    old_server_end = next(end for end in server.ends if end.id == old.id)
    assert (old_server_end.closed, old_server_end.close_code, old_server_end.reset) == (
        True,
        1000,
        False,
    )
    assert network.faults["latency"] == 2


def test_a_held_cut_is_silent_then_delivers_everything_in_order(loop):
    network = SimNetwork(loop, random.Random(4), latency=0.1)
    server = Server(loop, network, "s1")

    async def main():
        conn = await network.connect("master", "s1")
        conn.write_message(b"a")
        network.cut("master", "s1", mode="hold", both=True)
        conn.write_message(b"b")
        server.ends[0].write_message(b"ack")
        await asyncio.sleep(60)
        silent = (list(server.got[conn.id]), conn.closed, server.ends[0].closed)
        pending = conn.read_message()
        assert not pending.done()
        network.heal("master", "s1", both=True)
        healed_at = loop.time()
        conn.write_message(b"c")
        assert await pending == b"ack"
        await asyncio.sleep(1)
        return silent, healed_at

    (silent, healed_at) = run(loop, main())
    assert silent == ([], False, False)
    assert [f for _, f in server.got[1]] == [b"a", b"b", b"c"]
    assert all(t >= healed_at + 0.1 for t, _ in server.got[1])
    assert network.faults == {"cut": 1, "heal": 1}


def test_a_dropping_cut_loses_frames_silently_and_heal_resets_the_connection(loop):
    network = SimNetwork(loop, random.Random(5), latency=0.1)
    server = Server(loop, network, "s1")

    async def main():
        conn = await network.connect("master", "s1")
        conn.write_message(b"before")
        await asyncio.sleep(1)
        network.cut("master", "s1", mode="drop")  # one way: s1 -> master still flows
        conn.write_message(b"lost")
        server.ends[0].write_message(b"still flows")
        assert await conn.read_message() == b"still flows"
        await asyncio.sleep(30)
        silent = (conn.closed, server.ends[0].closed)
        network.heal("master", "s1")
        assert await conn.read_message() is None
        return conn, silent

    conn, silent = run(loop, main())
    assert silent == (False, False)
    assert [f for _, f in server.got[conn.id]] == [b"before"]
    assert conn.reset and server.ends[0].reset
    assert network.stats["lost"] == 1
    assert network.faults == {"cut_one_way": 1, "heal": 1}


def test_a_reset_closes_both_ends_at_once_and_loses_what_was_in_flight(loop):
    network = SimNetwork(loop, random.Random(6), latency=0.5)
    server = Server(loop, network, "s1")

    async def main():
        conn = await network.connect("master", "s1")
        pending = conn.read_message()
        conn.write_message(b"in flight")
        assert network.reset("master", "s1") == 1
        assert await pending is None
        with pytest.raises(ConnectionClosed):
            conn.write_message(b"after")
        await asyncio.sleep(5)
        return conn

    conn = run(loop, main())
    assert server.got[conn.id] == []
    assert conn.reset and server.ends[0].reset and server.ends[0].closed
    assert network.stats["lost"] == 1
    assert network.connections() == []


def test_a_crash_resets_the_peers_one_latency_later_and_refuses_new_dials(loop):
    network = SimNetwork(loop, random.Random(7), latency=0.2)
    Server(loop, network, "s1")

    async def main():
        conn = await network.connect("master", "s1")
        start = loop.time()
        network.crash("s1")
        assert await conn.read_message() is None
        seen_after = loop.time() - start
        with pytest.raises(ConnectionRefusedError):
            await network.connect("master", "s1")
        return conn, seen_after

    conn, seen_after = run(loop, main())
    assert conn.reset and seen_after == pytest.approx(0.2, abs=1e-9)
    assert network.faults == {"crash": 1}


def test_a_crash_behind_a_cut_leaves_the_peer_silent(loop):
    network = SimNetwork(loop, random.Random(8), latency=0.2)
    Server(loop, network, "s1")

    async def main():
        conn = await network.connect("master", "s1")
        network.cut("s1", "master", mode="drop")
        network.crash("s1")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(60):
                await conn.read_message()
        return conn

    conn = run(loop, main())
    assert not conn.closed  # only its own timeout told it


def test_a_dial_across_a_cut_waits_for_the_heal_or_times_out(loop):
    network = SimNetwork(loop, random.Random(9), latency=0.1)
    Server(loop, network, "s1")

    async def main():
        network.cut("s1", "master", mode="drop")
        start = loop.time()
        with pytest.raises(TimeoutError):
            await network.connect("master", "s1", timeout=5)
        assert loop.time() - start == 5
        loop.call_later(2, network.heal, "s1", "master")
        conn = await network.connect("master", "s1", timeout=5)
        return conn, loop.time() - start

    conn, took = run(loop, main())
    assert not conn.closed and took == pytest.approx(5 + 2 + 0.2)


def test_a_listener_can_refuse_a_dial(loop):
    network = SimNetwork(loop, random.Random(10), latency=0.1)

    def refuse(end, request):
        raise DialRefused(409, f"not me: {request}")

    network.listen("s1", refuse)

    async def main():
        with pytest.raises(DialRefused) as refused:
            await network.connect("master", "s1", {"secondary": "s2"})
        return refused.value

    refused = run(loop, main())
    assert (refused.code, refused.reason) == (409, "not me: {'secondary': 's2'}")
    assert network.connections() == []


def test_a_partition_isolates_groups_until_it_heals(loop):
    network = SimNetwork(loop, random.Random(12), latency=0.1)
    s1 = Server(loop, network, "s1")
    Server(loop, network, "s2")

    async def main():
        to_s1 = await network.connect("master", "s1")
        network.partition(["master"], ["s1", "s2"])
        to_s1.write_message(b"held")
        with pytest.raises(TimeoutError):
            await network.connect("master", "s2", timeout=10)
        inside = await network.connect("s1", "s2", timeout=10)  # same side: fine
        await asyncio.sleep(10)
        during = list(s1.got[to_s1.id])
        network.heal_all()
        await asyncio.sleep(1)
        return to_s1, inside, during

    to_s1, inside, during = run(loop, main())
    assert during == []
    assert [f for _, f in s1.got[to_s1.id]] == [b"held"]
    assert not to_s1.closed and not inside.closed
    assert network.faults == {"partition": 1, "heal_all": 1}


# --- random faults: the ordering property, and determinism -----------------------------

NODES = ("master", "s1", "s2", "s3")


def chaos_workload(seed: int, duration: float = 30.0) -> dict:
    """Every node dials every other, sends numbered frames and redials when closed,
    while random faults hit the network. Returns what was sent and delivered per
    connection direction, the trace and the fault counts."""
    loop = SimLoop()
    rng = random.Random(seed)
    network = SimNetwork(loop, rng, latency=0.005, jitter=0.02)
    sent: dict[tuple[int, str], list[bytes]] = defaultdict(list)
    received: dict[tuple[int, str], list[bytes]] = defaultdict(list)
    callbacks: list[str] = []

    async def pump(end: SimConnection) -> None:
        n = 0
        while not end.closed:
            frame = b"%d:%s:%d" % (end.id, end.local.encode(), n)
            end.write_message(frame)
            sent[(end.id, end.local)].append(frame)
            n += 1
            await asyncio.sleep(rng.expovariate(50))

    async def drain(end: SimConnection) -> None:
        while (frame := await end.read_message()) is not None:
            received[(end.id, end.remote)].append(frame)
            callbacks.append(f"{loop.time()!r} {end.local} {frame!r}")

    def serve(end: SimConnection) -> None:
        loop.create_task(pump(end))
        loop.create_task(drain(end))

    def accept(end: SimConnection, request: object) -> None:
        serve(end)

    async def dialer(src: str, dst: str) -> None:
        while True:
            try:
                end = await network.connect(src, dst, timeout=1.0)
            except (ConnectionError, TimeoutError):
                await asyncio.sleep(rng.uniform(0.05, 0.5))
                continue
            serve(end)
            while not end.closed:
                await asyncio.sleep(0.1)
                if rng.random() < 0.01:
                    end.close(1000, "done")
            await asyncio.sleep(rng.uniform(0.0, 0.2))

    async def faults() -> None:
        while True:
            await asyncio.sleep(rng.expovariate(4))
            a, b = rng.sample(NODES, 2)
            kind = rng.choice(["cut", "cut1", "heal", "heal_all", "reset", "crash", "latency"])
            if kind == "cut":
                network.cut(a, b, mode=rng.choice(["hold", "drop"]), both=True)
            elif kind == "cut1":
                network.cut(a, b, mode=rng.choice(["hold", "drop"]))
            elif kind == "heal":
                network.heal(a, b, both=True)
            elif kind == "heal_all":
                network.heal_all()
            elif kind == "reset":
                network.reset(a, b)
            elif kind == "crash":
                network.crash(a)
                loop.call_later(rng.uniform(0.1, 2.0), network.listen, a, accept)
            else:
                network.set_latency(a, b, rng.uniform(0.001, 0.5), rng.uniform(0, 0.3))

    for node in NODES:
        network.listen(node, accept)
    for src in NODES:
        for dst in NODES:
            if src != dst:
                loop.create_task(dialer(src, dst))
    fault_task = loop.create_task(faults())
    loop.run_until(loop.time() + duration, max_events=5_000_000)
    fault_task.cancel()
    network.heal_all()
    for node in NODES:
        if node not in network._listeners:
            network.listen(node, accept)
    loop.run_for(5.0, max_events=5_000_000)
    result = {
        "sent": dict(sent),
        "received": dict(received),
        "callbacks": callbacks,
        "trace": [
            (repr(t), kind, tuple(map(str, parts))) for t, kind, parts in network.trace.entries()
        ],
        "trace_total": network.trace.total,
        "faults": dict(network.faults),
        "stats": dict(network.stats),
        "events": loop.events,
    }
    loop.shutdown()
    loop.close()
    return result


@pytest.mark.parametrize("seed", range(5))
def test_under_random_faults_each_direction_delivers_a_prefix_of_what_was_sent(seed):
    result = chaos_workload(seed)
    sent, received = result["sent"], result["received"]
    assert sum(result["faults"].values()) > 100
    assert {"crash", "reset", "cut", "cut_one_way"} <= result["faults"].keys()
    assert result["stats"]["lost"] > 0 and result["stats"]["delivered"] > 1000
    for key, frames in received.items():
        assert frames == sent[key][: len(frames)], f"connection {key} broke TCP order"
    # Some connections delivered everything, others were cut short.
    complete = sum(received.get(key, []) == frames for key, frames in sent.items())
    assert 0 < complete < len(sent)


def test_the_same_seed_replays_bit_for_bit_and_another_seed_does_not():
    first = chaos_workload(42, duration=10.0)
    again = chaos_workload(42, duration=10.0)
    other = chaos_workload(43, duration=10.0)
    assert first["trace_total"] > 1000
    for key in ("trace", "trace_total", "callbacks", "faults", "stats", "events"):
        assert first[key] == again[key], key
    assert first["trace"] != other["trace"]


def test_the_trace_reads_as_lines(loop):
    network = SimNetwork(loop, random.Random(11), latency=0.1)
    Server(loop, network, "s1")

    async def main():
        conn = await network.connect("master", "s1")
        conn.write_message(b'{"type": "hello"}')
        await asyncio.sleep(1)
        network.cut("master", "s1", both=True)

    run(loop, main())
    lines = [line.split(None, 1)[1] for line in network.trace.lines()]
    assert lines == [
        "listen       s1",
        "dial         master->s1",
        "accept       s1<-master conn=1",
        "connected    master->s1 conn=1",
        'send         master->s1 conn=1 len=17 \'{"type": "hello"}\'',
        'deliver      master->s1 conn=1 len=17 \'{"type": "hello"}\'',
        "fault        cut master<->s1 hold",
    ]


def test_a_frame_over_the_receivers_limit_closes_the_connection_with_1009_unread(loop):
    network = SimNetwork(loop, random.Random(3), latency=0.01)
    server = Server(loop, network, "s1")
    limit = FrameLimit(10)

    async def main():
        conn = await network.connect("master", "s1")
        server.ends[0].max_message_size = limit
        conn.write_message(b"x" * 10)  # at the limit: read
        conn.write_message(b"x" * 11)  # over it: refused, the connection closed
        conn.write_message(b"after")
        assert await conn.read_message() is None
        return conn

    conn = run(loop, main())
    assert [frame for _, frame in server.got[1]] == [b"x" * 10]
    assert (conn.close_code, network.stats["too_big"], limit.exceeded) == (TOO_BIG, 1, 11)
