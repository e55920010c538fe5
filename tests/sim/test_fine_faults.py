"""Fine-grained faults (tools.sim.network.FrameFaults, slow fsyncs, clock jitter): each
is a real fault yet keeps TCP's guarantees; runs of many seeds in worker processes
total the same whatever the number of workers."""

import asyncio
import random
from collections import defaultdict

import pytest

from tools.sim.loop import SimLoop
from tools.sim.network import FrameFaults, SimConnection, SimNetwork
from tools.sim.parallel import simulate_many
from tools.sim.run import FINE_FAULTS, SimConfig, simulate


class Scripted:
    """An rng whose `random()` answers are given in order (then 0.99: no fault) and
    whose `uniform(a, b)` is always `extra`."""

    def __init__(self, draws: list[float], extra: float = 0.0) -> None:
        self.draws = list(draws)
        self.extra = extra

    def random(self) -> float:
        return self.draws.pop(0) if self.draws else 0.99

    def uniform(self, low: float, high: float) -> float:
        return self.extra


@pytest.fixture
def loop():
    sim = SimLoop()
    yield sim
    sim.close()


def connected(loop: SimLoop, network: SimNetwork):
    """A master->s1 connection; s1's server end reads into `got` (time, frame)."""
    got: dict[str, list[tuple[float, bytes]]] = defaultdict(list)
    ends: list[SimConnection] = []

    def accept(end: SimConnection, request: object) -> None:
        ends.append(end)

        async def read() -> None:
            while (frame := await end.read_message()) is not None:
                got["s1"].append((loop.time(), frame))

        loop.create_task(read())

    network.listen("s1", accept)
    conn = loop.run_until_complete(network.connect("master", "s1"), max_events=10_000)
    return conn, ends[0], got


def test_a_delay_spike_holds_the_frames_behind_it_and_not_the_other_direction(loop):
    network = SimNetwork(loop, random.Random(1), latency=0.01)
    conn, server, got = connected(loop, network)
    # The first data frame draws a delay (0.0 < delay chance), the rest draw nothing.
    network.frame_faults = FrameFaults(Scripted([0.0], extra=0.5), delay=0.5, stall=0, reset=0)

    async def main():
        start = loop.time()
        for n in range(3):
            conn.write_message(b"frame%d" % n)
        server.write_message(b"ack")
        assert await conn.read_message() == b"ack"
        replied = loop.time() - start
        await asyncio.sleep(1)
        return start, replied

    start, replied = loop.run_until_complete(main(), max_events=10_000)
    assert replied == pytest.approx(0.01)  # the other direction is not held
    arrivals = [(round(t - start, 6), frame) for t, frame in got["s1"]]
    assert arrivals == [(0.51, b"frame0"), (0.51, b"frame1"), (0.51, b"frame2")]
    assert network.faults["frame_delay"] == 1
    assert "ack_delay" not in network.faults  # the reply was not delayed


def test_a_delay_towards_the_master_counts_as_an_ack_delay(loop):
    network = SimNetwork(loop, random.Random(1), latency=0.01)
    conn, server, _ = connected(loop, network)
    network.frame_faults = FrameFaults(Scripted([0.0], extra=0.2), delay=0.5, stall=0, reset=0)

    async def main():
        start = loop.time()
        server.write_message(b"ack 1")
        server.write_message(b"ack 2")
        first = await conn.read_message()
        second = await conn.read_message()
        return first, second, loop.time() - start

    first, second, took = loop.run_until_complete(main(), max_events=10_000)
    assert (first, second) == (b"ack 1", b"ack 2")
    assert took == pytest.approx(0.21)
    assert dict(network.faults) == {"ack_delay": 1}


def test_a_reset_at_a_frame_loses_it_and_closes_both_ends(loop):
    network = SimNetwork(loop, random.Random(1), latency=0.01)
    conn, server, got = connected(loop, network)
    # The first frame passes, the second draws a reset (below the reset chance).
    network.frame_faults = FrameFaults(Scripted([0.99, 0.0]), delay=0, stall=0, reset=0.01)

    async def main():
        conn.write_message(b"kept")
        await asyncio.sleep(0.1)
        conn.write_message(b"lost")
        await asyncio.sleep(0.1)

    loop.run_until_complete(main(), max_events=10_000)
    assert [frame for _, frame in got["s1"]] == [b"kept"]
    assert conn.closed and conn.reset and server.closed and server.reset
    assert network.faults["frame_reset"] == 1
    assert network.stats["lost"] == 1


def test_a_seeded_run_injects_every_fine_fault_and_still_passes():
    result = simulate(7, SimConfig(steps=200))
    assert result.ok, [f"{v.property}: {v.detail}" for v in result.violations[:5]]
    assert FINE_FAULTS - {"frame_reset"} <= set(result.faults)
    fine = sum(n for kind, n in result.faults.items() if kind in FINE_FAULTS)
    assert fine > sum(result.faults.values()) / 2


def test_without_fine_faults_the_coarse_schedule_is_the_same():
    """Fine faults draw from their own rng: the coarse faults of a seed stay the same."""
    plain = simulate(8, SimConfig(steps=120, fine_faults=False))
    fine = simulate(8, SimConfig(steps=120))
    assert plain.ok and fine.ok
    assert not FINE_FAULTS & set(plain.faults)
    coarse = {k: v for k, v in fine.faults.items() if k not in FINE_FAULTS}
    assert coarse == dict(plain.faults) and sum(coarse.values()) > 0


def test_the_totals_do_not_depend_on_the_number_of_workers():
    config = SimConfig(steps=60)
    alone = simulate_many(300, 4, config, jobs=1)
    split = simulate_many(300, 4, config, jobs=2)
    assert alone.seeds == split.seeds == 4
    assert not alone.failed and not split.failed
    assert alone.faults == split.faults and alone.events == split.events
    assert (alone.writes, alone.acked) == (split.writes, split.acked)
    assert alone.fault_total > 0
