"""The simulator's event loop: virtual time, asyncio's semantics, failing instead of hanging."""

import asyncio
import random
import time
from pathlib import Path

import pytest

from tools.sim import loop as sim_loop
from tools.sim.loop import (
    DEFAULT_START,
    NodeClock,
    SimBudgetExceeded,
    SimDeadlock,
    SimLoop,
    SimTimeLimit,
    SimulationError,
)
from tools.sim.trace import Trace


@pytest.fixture
def loop():
    sim = SimLoop()
    yield sim
    sim.close()


def test_an_hour_of_sleeping_costs_milliseconds(loop):
    rng = random.Random(3)
    woke: list[float] = []

    async def sleeper(delay: float) -> None:
        await asyncio.sleep(delay)
        woke.append(loop.time() - DEFAULT_START)

    async def main() -> None:
        delays = [rng.uniform(0, 3600) for _ in range(1_000)] + [3600.0]
        await asyncio.gather(*(sleeper(delay) for delay in delays))

    started = time.perf_counter()
    loop.run_until_complete(main())
    elapsed = time.perf_counter() - started

    assert loop.time() == DEFAULT_START + 3600.0  # exactly: the clock jumps to each timer
    assert woke == sorted(woke)
    assert len(woke) == 1_001
    assert elapsed < 1.0, f"an hour of virtual sleeping took {elapsed:.3f} s of real time"


def test_timers_and_tasks_run_in_time_order_and_fifo_at_equal_times(loop):
    order: list[tuple[str, float]] = []

    def note(name: str) -> None:
        order.append((name, loop.time() - DEFAULT_START))

    async def task(name: str, delays: list[float]) -> None:
        for delay in delays:
            await asyncio.sleep(delay)
            note(name)

    loop.call_later(2.0, note, "timer2")
    loop.call_later(0.5, note, "timer0.5")
    loop.call_later(2.0, note, "timer2-second")  # same time: after the first one
    loop.call_soon(note, "soon")
    loop.create_task(task("A", [1.0, 1.0]))
    loop.create_task(task("B", [1.5]))
    loop.run_until(DEFAULT_START + 10)

    assert order == [
        ("soon", 0.0),
        ("timer0.5", 0.5),
        ("A", 1.0),
        ("B", 1.5),
        ("timer2", 2.0),
        ("timer2-second", 2.0),
        ("A", 2.0),
    ]


def test_run_until_stops_at_that_time_and_later_timers_wait(loop):
    fired: list[float] = []
    loop.call_later(5.0, lambda: fired.append(loop.time()))
    loop.call_later(15.0, lambda: fired.append(loop.time()))

    loop.run_until(DEFAULT_START + 10)
    assert loop.time() == DEFAULT_START + 10
    assert fired == [DEFAULT_START + 5]

    loop.run_for(10)
    assert fired == [DEFAULT_START + 5, DEFAULT_START + 15]
    with pytest.raises(ValueError, match="in the past"):
        loop.run_until(DEFAULT_START)


def test_asyncio_timeout_and_wait_for_fire_at_the_virtual_deadline(loop):
    async def main() -> list[tuple[str, float]]:
        seen = []
        start = loop.time()
        never = loop.create_future()
        try:
            async with asyncio.timeout(30):
                await never
        except TimeoutError:
            seen.append(("timeout", loop.time() - start))
        try:
            await asyncio.wait_for(asyncio.sleep(100), 7.5)
        except TimeoutError:
            seen.append(("wait_for", loop.time() - start))
        result = await asyncio.wait_for(asyncio.sleep(1, result="done"), 60)
        seen.append((result, loop.time() - start))
        return seen

    assert loop.run_until_complete(main()) == [
        ("timeout", 30.0),
        ("wait_for", 37.5),
        ("done", 38.5),
    ]


def test_waiting_for_what_never_happens_is_a_deadlock_not_a_hang(loop):
    async def stuck() -> None:
        await loop.create_future()

    with pytest.raises(SimDeadlock, match="no callback ready and no timer"):
        loop.run_until_complete(stuck())


def test_a_livelock_exceeds_the_event_budget(loop):
    async def spin() -> None:
        while True:
            await asyncio.sleep(0)

    with pytest.raises(SimBudgetExceeded, match="over 10000 loop events"):
        loop.run_until_complete(spin(), max_events=10_000)
    assert loop.time() == DEFAULT_START  # it never waited


def test_a_run_needing_more_virtual_time_than_allowed_fails(loop):
    async def slow() -> None:
        while True:
            await asyncio.sleep(60)

    with pytest.raises(SimTimeLimit):
        loop.run_until_complete(slow(), time_limit=3600)
    assert loop.time() == DEFAULT_START + 3600  # its last timer before the limit
    # The limits belonged to that run only.
    loop.run_for(7200)
    assert loop.time() == DEFAULT_START + 3600 + 7200


def test_threads_and_real_io_are_refused(loop):
    async def resolve() -> None:
        await loop.getaddrinfo("example.org", 80)

    with pytest.raises(SimulationError, match="threads"):
        loop.run_until_complete(resolve())
    with pytest.raises(SimulationError, match="threads"):
        loop.run_in_executor(None, print)


def test_unretrieved_task_exceptions_are_kept_for_the_runner(loop):
    async def boom() -> None:
        raise RuntimeError("lost")

    async def main() -> None:
        task = loop.create_task(boom())
        await asyncio.sleep(1)
        del task

    loop.run_until_complete(main())
    import gc

    gc.collect()
    assert [str(error["exception"]) for error in loop.unhandled_errors] == ["lost"]


def test_shutdown_cancels_pending_tasks_in_creation_order(loop):
    cancelled: list[int] = []

    async def waiter(n: int) -> None:
        try:
            await asyncio.sleep(1e9)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise

    for n in range(50):
        loop.create_task(waiter(n))
    loop.run_for(1)
    loop.shutdown()
    assert cancelled == list(range(50))
    assert loop.pending_tasks() == []


def test_a_node_clock_jumps_both_ways_without_moving_the_loop_timers(loop):
    trace = Trace(loop.time)
    clock = NodeClock(loop, trace=trace)
    readings: list[float] = []
    loop.call_later(10, lambda: readings.append(clock()))

    loop.run_for(4)
    clock.jump(-100, node="master")
    assert clock() == loop.time() - 100
    assert clock.wall() == sim_loop.WALL_EPOCH + 4 - 100
    assert clock.wall_ms() == (sim_loop.WALL_EPOCH + 4 - 100) * 1000
    loop.run_for(6)  # the timer still fires 10 virtual seconds in
    assert readings == [DEFAULT_START + 10 - 100]
    clock.jump(250, node="master")
    assert clock.monotonic() == loop.time() + 150
    assert [line.split()[1:] for line in trace.lines()] == [
        ["clock_jump", "master", "-100.000000s", "offset=-100.000000"],
        ["clock_jump", "master", "+250.000000s", "offset=+150.000000"],
    ]


def test_the_hash_seed_check(monkeypatch):
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    sim_loop.require_fixed_hash_seed(reexec=False)  # fixed: nothing to do
    monkeypatch.delenv("PYTHONHASHSEED")
    assert not sim_loop.hash_seed_is_fixed()
    with pytest.raises(SimulationError, match="PYTHONHASHSEED"):
        sim_loop.require_fixed_hash_seed(reexec=False)
    monkeypatch.setenv("PYTHONHASHSEED", "random")
    assert not sim_loop.hash_seed_is_fixed()


def test_the_trace_keeps_only_the_newest_events():
    now = [0.0]
    trace = Trace(lambda: now[0], capacity=3)
    for n in range(5):
        now[0] = float(n)
        trace.record("tick", n)
    assert trace.total == 5
    assert [entry[2] for entry in trace.entries()] == [(2,), (3,), (4,)]
    assert trace.format().splitlines()[0] == "... 2 earlier events not kept"
    assert trace.format(last=1).splitlines()[-1].split() == ["4.000000", "tick", "4"]


def test_tornado_on_the_loop_reads_virtual_time(loop):
    from tornado.ioloop import IOLoop, PeriodicCallback

    seen: list[tuple[str, float]] = []

    async def main() -> None:
        io = IOLoop.current()
        assert io.time() == loop.time()
        start = io.time()
        io.call_later(5, lambda: seen.append(("call_later", io.time() - start)))
        io.add_callback(lambda: seen.append(("add_callback", io.time() - start)))
        ticks = PeriodicCallback(lambda: seen.append(("tick", io.time() - start)), 1000)
        ticks.start()
        await asyncio.sleep(3.5)
        ticks.stop()
        await asyncio.sleep(2)

    loop.run_until_complete(main())
    assert seen == [
        ("add_callback", 0.0),
        ("tick", 1.0),
        ("tick", 2.0),
        ("tick", 3.0),
        ("call_later", 5.0),
    ]


def test_a_runner_without_a_fixed_hash_seed_runs_itself_again_with_one():
    import os
    import subprocess
    import sys

    program = (
        "import os, sys\n"
        "from tools.sim.loop import require_fixed_hash_seed\n"
        "require_fixed_hash_seed()\n"
        "print(os.environ['PYTHONHASHSEED'], sys.flags.hash_randomization, hash('replog'))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONHASHSEED"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", program],
            env=env,
            cwd=Path(__file__).parents[2],  # the repository root, where tools/ is
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert runs[0].split()[:2] == ["0", "0"]
