"""A deterministic asyncio event loop on a virtual clock.

`SimLoop` is asyncio's own `BaseEventLoop` (so Futures, Tasks, `asyncio.sleep`,
`call_later`, `asyncio.timeout` and `wait_for` are the real ones) with two things
replaced:

- `time()` reads a virtual clock, a float that only the loop moves;
- the selector: `BaseEventLoop._run_once` asks `selector.select(timeout)` for I/O,
  with `timeout` the time until the next timer (0 when a callback is ready, None
  when there is neither). Our selector never blocks: it moves the virtual clock
  to the next timer (exactly to its `when`, so no float drift) and reports no I/O.
  A None timeout means nothing can ever happen again: that is a deadlock, raised.

Why this and not overriding `_run_once`: `select()` and `_process_events()` are
the loop's only seams to the outside world, and they have kept their shape from
Python 3.4 to 3.13; `_run_once` itself changes between versions (cancelled-timer
pruning, debug timing). Everything asyncio schedules still goes through its own
ready queue and timer heap, in its own order.

Determinism: no wall-clock read, no thread (`run_in_executor`, hence
`getaddrinfo`, raise; `call_soon_threadsafe` from another thread raises), no
real I/O (the selector refuses registrations). Callbacks then run in an order
fixed by the program alone, given a fixed PYTHONHASHSEED (set iteration order of
strings) and no iteration over sets of objects hashed by identity (their order
follows memory addresses). See `require_fixed_hash_seed`.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import os
import random
import sys
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# A virtual clock that starts at 0 would make "0 means never" in node code look like
# "just now"; real monotonic clocks are far from 0 too.
DEFAULT_START = 1_000_000.0
# Where a node's wall clock (`NodeClock.wall`) puts virtual time 0: 2026-01-01 UTC.
WALL_EPOCH = 1_767_225_600.0


class SimulationError(Exception):
    """The simulated program did something the simulation cannot run deterministically."""


class SimDeadlock(SimulationError):
    """No callback ready and no timer armed: whatever is awaited can never happen."""


class SimBudgetExceeded(SimulationError):
    """More loop events than the budget allowed: a livelock, or a budget too small."""


class SimTimeLimit(SimulationError):
    """The virtual clock would pass the run's time limit before it finished."""


class _OrderedTimer(asyncio.TimerHandle):
    """A timer that, at an equal time, fires after the ones scheduled before it.

    asyncio's heap compares `when` only, so timers due at the same instant come out
    in heap order. Real clocks rarely tie (the later call_later reads a later time);
    virtual time ties all the time. Breaking ties by scheduling order keeps what a
    real loop would do, and is deterministic.
    """

    __slots__ = ("_order",)

    def __init__(self, order: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._order = order

    def __lt__(self, other: object) -> bool:
        if isinstance(other, _OrderedTimer):
            return (self._when, self._order) < (other._when, other._order)
        return NotImplemented


class _VirtualSelector:
    """The loop's selector: no I/O; `select` advances the virtual clock."""

    def __init__(self, loop: SimLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None) -> list[Any]:
        self._loop._advance(timeout)
        return []

    def register(self, *args: Any, **kwargs: Any) -> Any:
        raise SimulationError("real file descriptors are not simulated: use the sim network")

    modify = unregister = register

    def get_map(self) -> dict[Any, Any]:
        return {}

    def close(self) -> None:
        pass


class SimLoop(asyncio.BaseEventLoop):
    """An asyncio loop whose clock is virtual and which never waits for real time."""

    def __init__(self, start: float = DEFAULT_START) -> None:
        super().__init__()
        self._now = float(start)
        self._selector = _VirtualSelector(self)
        self._owner_thread = threading.get_ident()
        # Counters (cumulative): loop iterations, and events = callbacks dequeued,
        # cancelled ones included (asyncio skips those).
        self.steps = 0
        self.events = 0
        # Limits of the current run_* call, checked on every iteration.
        self._max_events: int | None = None
        self._time_limit: float | None = None
        # Creation order of tasks: asyncio keeps them in a WeakSet, whose iteration
        # order follows memory addresses; shutdown must not.
        self._task_order: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks_created = 0
        self._timers_created = 0
        self.set_task_factory(self._make_task)
        # Exceptions nobody retrieved ("Task exception was never retrieved", a
        # callback that raised): kept for the runner to judge, not just logged.
        self.unhandled_errors: list[dict[str, Any]] = []
        self.set_exception_handler(self._record_unhandled)
        _tornado_reads_the_loop_clock()

    # --- the clock -------------------------------------------------------------

    def time(self) -> float:
        return self._now

    def _advance(self, timeout: float | None) -> None:
        """Called once per loop iteration, where a real loop would wait for I/O."""
        self.steps += 1
        if timeout is None:
            raise SimDeadlock(
                f"at t={self._now!r}: no callback ready and no timer armed; every task "
                "waits for something nothing will do"
            )
        if timeout > 0:
            # _run_once computed timeout as head.when - now, capped at one day: go to
            # the head timer's exact time unless the cap cut the wait short.
            head = self._scheduled[0].when()
            target = head if head - self._now <= timeout else self._now + timeout
            if self._time_limit is not None and target > self._time_limit:
                raise SimTimeLimit(
                    f"the next timer is at t={target!r}, past the run's limit "
                    f"t={self._time_limit!r}"
                )
            self._now = target
        self.events += len(self._ready) + self._count_due_timers()
        if self._max_events is not None and self.events > self._max_events:
            raise SimBudgetExceeded(
                f"over {self._max_events} loop events by t={self._now!r}: a livelock?"
            )

    def _count_due_timers(self) -> int:
        # The timers _run_once will pop right after select(): heap entries due by now
        # (its test: when < time() + clock_resolution). A heap's due entries form a
        # subtree at the root, so this visits only them and their direct children.
        heap = self._scheduled
        end = self._now + self._clock_resolution
        count = 0
        stack = [0] if heap else []
        while stack:
            i = stack.pop()
            if heap[i].when() < end:
                count += 1
                for child in (2 * i + 1, 2 * i + 2):
                    if child < len(heap):
                        stack.append(child)
        return count

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        # BaseEventLoop.call_at, with the tie-breaking timer.
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
        self._timers_created += 1
        timer = _OrderedTimer(self._timers_created, when, callback, args, self, context=context)
        if timer._source_traceback:
            del timer._source_traceback[-1]
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    # --- what a simulation must not do -----------------------------------------

    def _process_events(self, event_list: list[Any]) -> None:
        pass  # the selector never reports I/O

    def _write_to_self(self) -> None:
        pass  # call_soon_threadsafe's wake-up: this loop never sleeps

    def call_soon_threadsafe(  # type: ignore[override]
        self, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> asyncio.Handle:
        # Tornado's add_callback uses this from the loop's own thread, which is fine.
        if threading.get_ident() != self._owner_thread:
            raise SimulationError("a thread scheduled a callback: threads are not simulated")
        return super().call_soon_threadsafe(callback, *args, context=context)

    def run_in_executor(self, executor: Any, func: Callable[..., T], *args: Any) -> Any:
        raise SimulationError(
            f"run_in_executor({getattr(func, '__qualname__', func)!r}): threads (and "
            "getaddrinfo, which uses them) are not simulated"
        )

    # --- tasks and errors ------------------------------------------------------

    def _make_task(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        self._task_order[task] = self._tasks_created
        self._tasks_created += 1
        return task

    def live_tasks(self) -> int:
        """How many of this loop's tasks are not done. Cheaper than all_tasks(), which
        walks every task of every loop the process still holds (earlier seeds' too)."""
        return sum(not task.done() for task in list(self._task_order))

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """The tasks not done yet, in creation order."""
        pending = [task for task in asyncio.all_tasks(self) if not task.done()]
        return sorted(pending, key=lambda task: self._task_order.get(task, -1))

    def _record_unhandled(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.unhandled_errors.append({"time": self._now, **context})

    # --- running ---------------------------------------------------------------

    def run_until(self, when: float, *, max_events: int | None = None) -> None:
        """Run every callback due up to virtual time `when`, then return with the
        clock at `when` (callbacks scheduled for later stay scheduled)."""
        if when < self._now:
            raise ValueError(f"t={when!r} is in the past (now t={self._now!r})")
        stopper = self.call_at(when, self.stop)
        try:
            with self._limits(max_events, None):
                self.run_forever()
        finally:
            stopper.cancel()

    def run_for(self, seconds: float, *, max_events: int | None = None) -> None:
        self.run_until(self._now + seconds, max_events=max_events)

    def run_until_complete(
        self,
        future: Any,
        *,
        max_events: int | None = None,
        time_limit: float | None = None,
    ) -> Any:
        """asyncio's run_until_complete, failing instead of hanging: `SimDeadlock`
        if nothing can happen any more, `SimBudgetExceeded` after `max_events`
        events, `SimTimeLimit` if it needs more than `time_limit` virtual seconds."""
        deadline = None if time_limit is None else self._now + time_limit
        with self._limits(max_events, deadline):
            return super().run_until_complete(future)

    def _limits(self, max_events: int | None, deadline: float | None) -> _Limits:
        return _Limits(self, None if max_events is None else self.events + max_events, deadline)

    def shutdown(self, *, max_events: int | None = 100_000) -> None:
        """Cancel every pending task (in creation order) and let them finish."""
        pending = self.pending_tasks()
        for task in pending:
            task.cancel()
        if pending:
            self.run_until_complete(
                asyncio.gather(*pending, return_exceptions=True), max_events=max_events
            )


def _tornado_reads_the_loop_clock() -> None:
    """Make Tornado's IOLoop.time() this loop's virtual time when it wraps a SimLoop.

    Tornado's IOLoop.time() is time.time(), the wall clock, even on asyncio: its
    call_at, add_timeout, PeriodicCallback and timeouts would mix real and virtual
    time. Patched once, at class level; an IOLoop on any other loop is unchanged.
    """
    try:
        from tornado.platform.asyncio import BaseAsyncIOLoop
    except ImportError:  # pragma: no cover - tornado is a dependency of replog
        return
    real_time = BaseAsyncIOLoop.time
    if getattr(real_time, "reads_sim_loop", False):
        return

    def time(self: Any) -> float:
        if isinstance(self.asyncio_loop, SimLoop):
            return self.asyncio_loop.time()
        return real_time(self)

    time.reads_sim_loop = True  # type: ignore[attr-defined]
    BaseAsyncIOLoop.time = time  # type: ignore[method-assign]


class _Limits:
    def __init__(self, loop: SimLoop, max_events: int | None, deadline: float | None) -> None:
        self._loop = loop
        self._limits = (max_events, deadline)

    def __enter__(self) -> None:
        self._saved = (self._loop._max_events, self._loop._time_limit)
        self._loop._max_events, self._loop._time_limit = self._limits

    def __exit__(self, *exc: object) -> None:
        self._loop._max_events, self._loop._time_limit = self._saved


class NodeClock:
    """One node's clock: the loop's virtual time plus an offset the simulator moves.

    A node is given this as its injected clock: `clock` is a `common.sources.Clock`
    (seconds, monotonic), `clock.wall_ms` a `WallClockMs`. Jumping it moves
    only what the node reads, forwards or backwards; the node's asyncio timers stay
    on the loop's virtual time, which never goes back (as a real monotonic timer
    would not, while the wall clock can).
    """

    def __init__(self, loop: SimLoop, offset: float = 0.0, trace: Any = None) -> None:
        self._loop = loop
        self.offset = offset
        self._trace = trace

    def __call__(self) -> float:
        return self._loop.time() + self.offset

    monotonic = __call__

    def wall(self) -> float:
        return WALL_EPOCH + self._loop.time() - DEFAULT_START + self.offset

    def wall_ms(self) -> int:
        """`wall()` in whole milliseconds (a node's `wall_clock_ms`)."""
        return int(self.wall() * 1000)

    def jump(self, seconds: float, node: str = "") -> None:
        """Move this node's clock by `seconds` (negative: backwards)."""
        self.offset += seconds
        if self._trace is not None:
            self._trace.record("clock_jump", node, f"{seconds:+.6f}s", f"offset={self.offset:+.6f}")


# --- determinism of the interpreter ---------------------------------------------


def hash_seed_is_fixed() -> bool:
    """Whether str/bytes hashes (hence set iteration order) are the same every run."""
    # Read at interpreter start; a runner checks it before anything else runs.
    return os.environ.get("PYTHONHASHSEED", "random").isdigit()


def require_fixed_hash_seed(reexec: bool = True) -> None:
    """Make sure this interpreter hashes strings the same way on every run.

    With `reexec`, an interpreter started without a fixed PYTHONHASHSEED runs itself
    again (same argv) with PYTHONHASHSEED=0; otherwise that raises.
    """
    if hash_seed_is_fixed():
        return
    if not reexec:
        raise SimulationError(
            "PYTHONHASHSEED is not fixed: set iteration order would differ between runs; "
            "run with PYTHONHASHSEED=0"
        )
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


# --- a throughput benchmark (python -m tools.sim.loop --bench) ------------------


def _bench_busy(loop: SimLoop, tasks: int, rounds: int) -> None:
    async def spin() -> None:
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(spin() for _ in range(tasks)))

    loop.run_until_complete(main())


def _bench_timers(
    loop: SimLoop, timers: int, periods: tuple[float, float], virtual_seconds: float, seed: int
) -> None:
    rng = random.Random(seed)

    async def heartbeat(period: float) -> None:
        while True:
            await asyncio.sleep(period)

    for _ in range(timers):
        loop.create_task(heartbeat(rng.uniform(*periods)))
    loop.run_for(virtual_seconds)
    loop.shutdown()


def _bench_network(loop: SimLoop, seconds: float, seed: int) -> str:
    from tools.sim.network import SimConnection, SimNetwork  # network imports this module

    rng = random.Random(seed)
    network = SimNetwork(loop, rng, latency=0.001, jitter=0.002)
    nodes = ["master", "s1", "s2"]

    async def talk(end: SimConnection) -> None:
        while not end.closed:
            end.write_message(b"x" * 100)
            await asyncio.sleep(0.001)

    async def drain(end: SimConnection) -> None:
        while await end.read_message() is not None:
            pass

    def accept(end: SimConnection, request: object) -> None:
        loop.create_task(drain(end))

    async def dial(dst: str) -> None:
        while True:
            try:
                end = await network.connect("master", dst, timeout=0.5)
            except (ConnectionError, TimeoutError):
                await asyncio.sleep(0.01)
                continue
            await talk(end)

    async def faults() -> None:
        while True:
            await asyncio.sleep(rng.expovariate(100))
            dst = rng.choice(nodes[1:])
            kind = rng.randrange(4)
            if kind == 0:
                network.cut("master", dst, mode=rng.choice(["hold", "drop"]), both=True)
            elif kind == 1:
                network.heal("master", dst, both=True)
            elif kind == 2:
                network.reset("master", dst)
            else:
                network.set_latency("master", dst, rng.uniform(0.0005, 0.01))

    for node in nodes[1:]:
        network.listen(node, accept)
        loop.create_task(dial(node))
    loop.create_task(faults())
    loop.run_for(seconds)
    loop.shutdown()
    return (
        f"{network.stats['delivered']:,} frames delivered, "
        f"{sum(network.faults.values()):,} faults injected"
    )


def _measure(name: str, run: Callable[[SimLoop], str | None]) -> None:
    loop = SimLoop()
    start_virtual = loop.time()
    start = time.perf_counter()
    note = run(loop)
    real = time.perf_counter() - start
    virtual = loop.time() - start_virtual
    loop.close()
    print(
        f"{name:<7} {loop.events:>9,} events in {real:6.3f} s real, {virtual:9.1f} s virtual: "
        f"{loop.events / real:>10,.0f} events/s, {virtual / real:>10,.1f} virtual s per real s"
        + (f"\n        ({note}: {_per_second(note, real)})" if note else "")
    )


def _per_second(note: str, real: float) -> str:
    counts = [int(word.replace(",", "")) for word in note.split() if word[:1].isdigit()]
    return ", ".join(f"{count / real:,.0f}/s" for count in counts)


def _bench() -> None:
    _measure("busy", lambda loop: _bench_busy(loop, tasks=100, rounds=2_000))
    # Idle: a few nodes' heartbeats and timeouts, seconds apart, for a virtual day.
    _measure("idle", lambda loop: _bench_timers(loop, 10, (1.0, 10.0), 86_400.0, seed=1))
    # Busy timers: a thousand timers 50 ms to 1 s apart (a loaded cluster's clients).
    _measure("timers", lambda loop: _bench_timers(loop, 1_000, (0.05, 1.0), 60.0, seed=1))
    # The network: a master streaming to two secondaries, 100 faults per virtual second.
    _measure("network", lambda loop: _bench_network(loop, 30.0, seed=1))


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.sim.loop")
    parser.add_argument("--bench", action="store_true", help="measure the loop's throughput")
    args = parser.parse_args(argv)
    if args.bench:
        require_fixed_hash_seed()
        _bench()
    else:
        parser.print_help()


if __name__ == "__main__":
    _main()
