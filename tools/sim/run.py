"""One simulated run: a SimCluster, seeded clients and a seeded fault schedule, the
invariants checked after every step, and the end-of-run properties once everything
is healed and has converged. `simulate(seed, ...)` is a pure function of its
arguments (given a fixed PYTHONHASHSEED): the same seed gives the same trace.

A step is `SimConfig.step_seconds` of virtual time. After each one:

- `seq_unique` on every node's durable prefix (an entry never synced may be lost in
  a crash and its seq reused: only what a node held on disk is its history), and
  `read_rolled_back`: a node's visible log never gets shorter unless it lost its disk;
- reads (by the clients, of every node's visible log) have no gap and are kept
  for `stale_read` (tools.properties.ReadChecker);
- `no_stuck_waiter`: once `stuck_grace` seconds have passed without any fault, no
  waiter may still be pending whose entry `w` nodes durably held `stuck_grace`
  seconds ago (the ACKs had all that time to arrive);
- `bounded_memory`: what the nodes keep for their peers and clients stays within
  fixed bounds, whoever is down, cut off or slow (`memory_sizes`: waiters, batches
  in flight, frames queued towards each secondary, a secondary's out-of-order
  buffer, the loop's tasks); a leak (a task per redial, a frame queued per
  heartbeat to a dead peer) grows past any fixed bound within a run;
- the loop's unhandled errors (a task that died, a callback that raised).

At the end: the clients stop, every fault heals, down nodes restart, and the
cluster has `converge_seconds` of virtual time to converge; then `check_all`
(not_converged/divergence, duplicate, unexpected_status, ack_quorum, ack_answer,
ack_lost, acked_by_lost, phantom, gap, stale_read) and `prefix_of_master`.

A pause is modelled as a two-way hold cut between the node and everyone else (its
frames wait, as a stopped process's would in the kernel's buffers); its own timers
keep running, unlike a stopped process's, so it notices the silence as it lives on.
A clock jump moves one node's clock (`NodeClock.jump`), forwards or backwards.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from replog.common.web import error_status
from replog.core import parse_write
from replog.core.errors import ReplogError
from tools import properties as props
from tools.sim.cluster import MASTER, SimCluster, Timing
from tools.sim.network import FrameFaults

# Fine-grained faults: many per second, each short (well under `stuck_grace`), so they
# do not hold back no_stuck_waiter's quiet period as the coarse ones do.
FINE_FAULTS = frozenset(
    {"frame_delay", "ack_delay", "stall", "frame_reset", "fsync_spike", "clock_jitter"}
)

# Node log events worth a line in the trace (every other event is dropped: speed).
TRACED_EVENTS = frozenset(
    {
        "opened",
        "recovered",
        "recovery_started",
        "recovery_fetch_failed",
        "read_only_entered",
        "read_only_left",
        "secondary_status",
        "write_concern_timeout",
        "stream_failed",
        "master_silent",
        "cluster_mismatch",
        "stale_master_refused",
        "sync_failed",
    }
)


@dataclass
class SimConfig:
    steps: int = 200
    step_seconds: float = 0.05
    secondaries: int = 2
    clients: int = 3
    # Per step, the chance that a fault starts.
    fault_rate: float = 0.08
    network_faults: bool = True
    crashes: bool = True
    # Power cuts of the master (half its crashes; else kills: the kernel keeps what
    # it wrote). Nothing shown or acknowledged may be lost to one: the master streams
    # and shows only what it synced (core.replication_log.visible_seq).
    master_power_cuts: bool = True
    # Which disks crashes may lose, chosen per seed by `disk_losses`: "secondaries"
    # (15% of their crashes), "master" (30% of its crashes; it restarts with
    # --recover, `MasterConfig.recover`, and rebuilds its log from the secondaries'
    # by core.recovery, strict: so then no secondary loses its disk, since strict
    # recovery rightly waits for ever for one that lost its data too), "none", or
    # "mixed": each seed draws "secondaries" or "master", half and half.
    wipes: str = "mixed"
    # Master kills that leave the old process frozen, not dead (80% of them): it
    # resumes beside its replacement for 0.3-3 s in its old epoch and redials the
    # secondaries, who must refuse it (see SimCluster.crash, `linger`).
    stale_masters: bool = True
    clock_jumps: bool = True
    # Fine-grained faults (FINE_FAULTS): per data frame a delay spike, a stall of its
    # direction or a reset (tools.sim.network.FrameFaults); per fsync a slow one; per
    # step a small clock jitter of one node.
    fine_faults: bool = True
    frame_delay_rate: float = 0.2
    frame_stall_rate: float = 0.01
    frame_reset_rate: float = 0.002
    sync_spike_rate: float = 0.3
    sync_spike_max: float = 0.2
    clock_jitter_rate: float = 0.5
    clock_jitter_max: float = 0.03
    # A client gives up on an answer after this long (then may retry the same id).
    client_timeout: float = 3.0
    stuck_grace: float = 5.0
    converge_seconds: float = 120.0
    max_events: int = 20_000_000
    timing: Timing = field(default_factory=Timing)


@dataclass
class SimResult:
    seed: int
    violations: list[props.Violation]
    faults: Counter[str]
    events: int
    virtual_seconds: float
    real_seconds: float
    writes: int
    acked: int
    reads: int
    trace_tail: str
    trace_text: str
    # Every kept trace event as strings, its time as repr(): equal runs, equal lists.
    trace: list[tuple[str, ...]]
    # The largest of each `memory_sizes` measure seen in the run.
    memory_peaks: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations


def faults_only(counts: Counter[str]) -> Counter[str]:
    """The network's fault counts without its heals (a heal ends a fault)."""
    return Counter({k: v for k, v in counts.items() if not k.startswith("heal")})


def _entry(e: Any) -> props.Entry:
    return props.Entry(e.seq, e.id, e.message)


WIPES = ("secondaries", "master", "none", "mixed")


def disk_losses(seed: int, wipes: str) -> str:
    """Whose disks this seed's crashes may lose: `wipes`, or for "mixed" a draw from
    the seed alone (its own rng: choosing changes no other draw)."""
    if wipes not in WIPES:
        raise ValueError(f"wipes must be one of {', '.join(WIPES)}, not {wipes!r}")
    if wipes != "mixed":
        return wipes
    return random.Random(f"disk-losses-{seed}").choice(("secondaries", "master"))


class Simulation:
    def __init__(self, seed: int, config: SimConfig | None = None) -> None:
        self.seed = seed
        self.config = config or SimConfig()
        self.cluster = SimCluster(seed, self.config.secondaries, timing=self.config.timing)
        self.loop = self.cluster.loop
        self.trace = self.cluster.trace
        self.fault_rng = self.cluster._child_rng()
        self.client_rngs = [self.cluster._child_rng() for _ in range(self.config.clients)]
        names = self.cluster.names
        self.history = props.History(nodes=list(names), cluster_size=len(names))
        # Each node's durable prefix over time, recorded as it grows: ack_unheld judges
        # every name in an acknowledgment's acked_by against it.
        self.holdings = {name: props.HoldingLog() for name in names}
        self.cluster.on_durable = self._holding
        self.cluster.on_registered = lambda _name: self._check_counted()
        self.seq_checker = props.SeqUniqueChecker()
        self.rollback_checker = props.RollbackChecker()
        self.read_checker = props.ReadChecker()
        self.violations: list[props.Violation] = []
        self.start_time = self.loop.time()
        # Per node: (process start count, durable entries already fed to seq_checker).
        self._fed: dict[str, tuple[int, int]] = {}
        # (time, faults so far, durable prefixes) per step, for no_stuck_waiter.
        self._prefixes: list[tuple[float, int, dict[str, int]]] = []
        self._last_fault_at = self.loop.time()
        self._master_died: asyncio.Future[None] | None = None
        self._master_recover = False
        self._reads = 0
        self._stopping = False
        self.memory_peaks: dict[str, int] = {}
        self._too_big_seen = 0
        self.wiped_disks = disk_losses(seed, self.config.wipes)
        self.fine_rng: random.Random | None = None
        if self.config.fine_faults:
            self._arm_fine_faults()

    def _arm_fine_faults(self) -> None:
        # Its own rng, from the seed alone: arming fine faults changes no other draw.
        config = self.config
        self.fine_rng = rng = random.Random(f"fine-faults-{self.seed}")
        self.cluster.network.frame_faults = FrameFaults(
            rng,
            delay=config.frame_delay_rate,
            stall=config.frame_stall_rate,
            reset=config.frame_reset_rate,
            towards_master=MASTER,
        )
        self.cluster.sync_spikes = (rng, config.sync_spike_rate, config.sync_spike_max)

    # -- time ---------------------------------------------------------------------

    def now(self) -> float:
        """The history's clock: virtual seconds since the run started."""
        return self.loop.time() - self.start_time

    def _holding(self, name: str) -> None:
        self.holdings[name].holding(self.now(), self.cluster.durable_prefix(name))

    # -- faults -------------------------------------------------------------------

    def fault_total(self) -> int:
        return sum(faults_only(self.cluster.network.faults).values()) + sum(
            self.cluster.faults.values()
        )

    def coarse_fault_total(self) -> int:
        """Faults but the fine-grained ones: what ends a quiet period."""
        counts = faults_only(self.cluster.network.faults)
        counts.update(self.cluster.faults)
        return sum(v for k, v in counts.items() if k not in FINE_FAULTS)

    def jitter_clock(self) -> None:
        """A small step of one node's clock (NTP slewing, a VM's steal), both ways."""
        assert self.fine_rng is not None
        rng = self.fine_rng
        name = rng.choice(self.cluster.names)
        seconds = rng.uniform(-self.config.clock_jitter_max, self.config.clock_jitter_max)
        self.cluster.count("clock_jitter")
        self.cluster.slots[name].clock.jump(seconds, name)

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        self.loop.call_later(delay, action)

    def _restart_later(self, name: str, delay: float) -> None:
        def restart() -> None:
            if not self._stopping and not self.cluster.up(name):
                self._start(name)

        self._later(delay, restart)

    def _start(self, name: str) -> None:
        recover = False
        if name == MASTER:
            self._master_died = self.loop.create_future()
            # The operator's restart after a lost disk: --recover, once.
            recover, self._master_recover = self._master_recover, False
        self.cluster.start(name, recover=recover)

    def _default_latency(self, a: str, b: str) -> None:
        """The end of a latency fault: back to the default, without counting a fault."""
        net = self.cluster.network
        for src, dst in ((a, b), (b, a)):
            net.link(src, dst).latency = net.default_latency
            net.link(src, dst).jitter = net.default_jitter

    def crash(self, name: str, wipe: bool = False, power: bool = True, linger: float = 0.0) -> None:
        if not self.cluster.up(name):
            return
        self.cluster.crash(name, wipe=wipe, power=power, linger=linger)
        if wipe:
            self._master_recover = self._master_recover or name == MASTER
            self.seq_checker.wiped(name)
            self.rollback_checker.wiped(name)
            self.history.wipes.setdefault(name, []).append(self.now())
            self.holdings[name].fresh_disk(self.now())
        if name == MASTER and self._master_died is not None and not self._master_died.done():
            self._master_died.set_result(None)

    def inject_fault(self) -> None:
        rng, cluster, net = self.fault_rng, self.cluster, self.cluster.network
        config = self.config
        kinds = []
        if config.network_faults:
            kinds += ["latency", "cut", "cut", "partition", "reset", "pause"]
        if config.crashes:
            kinds += ["crash_secondary", "crash_secondary", "crash_master"]
        if config.clock_jumps:
            kinds += ["clock_jump"]
        if not kinds:
            return
        kind = rng.choice(kinds)
        names = cluster.names
        secondaries = names[1:]
        duration = rng.choice((0.05, 0.3, 1.0, 3.0))
        if kind == "latency":
            a, b = rng.sample(names, 2)
            latency, jitter = rng.uniform(0.001, 0.2), rng.uniform(0.0, 0.05)
            net.set_latency(a, b, latency, jitter, both=rng.random() < 0.5)
            self._later(duration, lambda: self._default_latency(a, b))
        elif kind == "cut":
            a = rng.choice(secondaries)
            src, dst = (MASTER, a) if rng.random() < 0.5 else (a, MASTER)
            both = rng.random() < 0.5
            net.cut(src, dst, mode=rng.choice(("hold", "drop")), both=both)
            self._later(duration, lambda: net.heal(src, dst, both=both))
        elif kind == "partition":
            shuffled = rng.sample(names, len(names))
            cut_at = rng.randint(1, len(names) - 1)
            groups = (shuffled[:cut_at], shuffled[cut_at:])
            net.partition(*groups, mode=rng.choice(("hold", "drop")))
            self._later(duration, net.heal_all)
        elif kind == "reset":
            net.reset(MASTER, rng.choice(secondaries))
        elif kind == "pause":
            name = rng.choice(names)
            others = [n for n in names if n != name]
            cluster.count("pause")
            self.trace.record("fault", "pause", name, f"for={duration}")
            net.partition([name], others, mode="hold")
            self._later(duration, net.heal_all)
        elif kind == "crash_secondary":
            name = rng.choice(secondaries)
            wipe = rng.random() < 0.15 and self.wiped_disks == "secondaries"
            self.crash(name, wipe=wipe, power=rng.random() < 0.7)
            self._restart_later(name, duration)
        elif kind == "crash_master":
            power = config.master_power_cuts and rng.random() < 0.5
            wipe = rng.random() < 0.3 and self.wiped_disks == "master"
            linger = 0.0
            if config.stale_masters and not (wipe or power) and rng.random() < 0.8:
                linger = rng.uniform(0.3, 3.0)
            self.crash(MASTER, wipe=wipe, power=power, linger=linger)
            self._restart_later(MASTER, duration)
        elif kind == "clock_jump":
            name = rng.choice(names)
            seconds = rng.choice((-1, 1)) * rng.choice((0.1, 1.0, 5.0))
            cluster.count("clock_jump")
            cluster.slots[name].clock.jump(seconds, name)
        self._last_fault_at = self.loop.time()

    # -- clients --------------------------------------------------------------------

    async def client(self, index: int) -> None:
        rng = self.client_rngs[index]
        cluster_size = len(self.cluster.names)
        counter = 0
        retry: dict[str, Any] | None = None
        while not self._stopping:
            await asyncio.sleep(rng.expovariate(20.0))
            if rng.random() < 0.3:
                self.read(rng.choice(self.cluster.names))
                continue
            if retry is not None:
                doc = retry
            else:
                counter += 1
                w: Any = rng.choice([*range(1, cluster_size + 1), "majority"])
                doc = {"w": w}
                if rng.random() < 0.5:
                    doc["wtimeout"] = rng.choice((50, 300, 1000))
                if rng.random() < 0.2:
                    doc["messages"] = [
                        {"id": f"c{index}-{counter}-{i}", "message": f"m{index}.{counter}.{i}"}
                        for i in range(rng.randint(2, 4))
                    ]
                else:
                    doc["id"] = f"c{index}-{counter}"
                    doc["message"] = f"m{index}.{counter}"
            status = await self.write(index, doc)
            retry = doc if status in (None, 503, 504) and rng.random() < 0.6 else None
            if status in (None, 503):
                # The master is down or read-only: back off as a real client would,
                # rather than pile up refused attempts while it comes back.
                await asyncio.sleep(rng.uniform(0.1, 0.4))

    async def write(self, client: int, doc: dict[str, Any]) -> int | None:
        """One `POST /` to the master; records one WriteAttempt per message."""
        sent = self.now()
        master = self.cluster.master
        status: int | None = None
        error: str | None = None
        answer: Any = None
        if master is None:
            error = "refused"
        else:
            died = self._master_died
            request = parse_write(doc, master.log.cluster_size)
            waiters: list[asyncio.Future[Any]] = []
            task = self.loop.create_task(master.write(request, track=waiters.append))
            watch: set[asyncio.Future[Any]] = {task} if died is None else {task, died}
            try:
                done, _ = await asyncio.wait(
                    watch, timeout=self.config.client_timeout, return_when=asyncio.FIRST_COMPLETED
                )
            except asyncio.CancelledError:
                # The run is over and this client with it: the write's fate is unknown.
                for waiter in waiters:
                    waiter.cancel()
                task.cancel()
                self._record(client, doc, sent, None, "client_stopped", None)
                raise
            if task in done and not task.cancelled():
                exc = task.exception()
                if exc is None:
                    outcome = task.result()
                    status = 200 if outcome.all_duplicates else 201
                    answer = outcome.to_json()
                elif isinstance(exc, ReplogError):
                    status = error_status(exc)
                    answer = exc.to_json()
                else:
                    raise exc
            else:
                # The client went away (as the handler does: stop waiting, the entry
                # stays), or the master died under the request.
                error = (
                    "timeout"
                    if task not in done and (died is None or died not in done)
                    else "crash"
                )
                for waiter in waiters:
                    waiter.cancel()
                task.cancel()
        self._record(client, doc, sent, status, error, answer)
        return status

    def _record(
        self,
        client: int,
        doc: dict[str, Any],
        sent: float,
        status: int | None,
        error: str | None,
        answer: Any,
    ) -> None:
        answered = self.now()
        for item, item_answer in self._per_item(doc, answer):
            self.history.writes.append(
                props.WriteAttempt(
                    id=item["id"],
                    message=item["message"],
                    w=doc["w"],
                    sent=sent,
                    answered=answered if status is not None else None,
                    status=status,
                    error=error,
                    answer=item_answer,
                    client=client,
                )
            )

    @staticmethod
    def _per_item(doc: dict[str, Any], answer: Any) -> list[tuple[dict[str, Any], Any]]:
        """A batch is judged as one attempt per message, each with its own seq."""
        if "messages" not in doc:
            return [(doc, answer)]
        items = doc["messages"]
        if not isinstance(answer, dict) or "seqs" not in answer:
            return [(item, answer) for item in items]
        common = {k: answer[k] for k in ("w", "acks", "acked_by") if k in answer}
        return [
            (item, {"seq": seq, "id": item["id"], "message": item["message"], **common})
            for item, seq in zip(items, answer["seqs"], strict=True)
        ]

    def read(self, name: str) -> None:
        entries = self.cluster.visible_log(name)
        if entries is None:
            return
        self._reads += 1
        # The core entries as they are: observe reads only seq, id and message, and a
        # copy of the whole log per read was a tenth of a run's time.
        self.violations += self.read_checker.observe(name, self.now(), entries)  # type: ignore[arg-type]

    # -- checks ---------------------------------------------------------------------

    def check_step(self) -> None:
        cluster = self.cluster
        prefixes = {}
        for name in cluster.names:
            slot = cluster.slots[name]
            durable = cluster.durable_prefix(name)
            prefixes[name] = durable
            if slot.node is None:
                continue
            starts, fed = self._fed.get(name, (0, 0))
            if starts != slot.starts or durable < fed:
                fed = 0  # a new process, or a log cut back: feed it all again
            visible, length = cluster.visible_range(name, fed, durable)
            new = [_entry(e) for e in visible]
            self.violations += self.seq_checker.observe(name, new)
            if cluster.visible_log_served(name):
                self.violations += self.rollback_checker.observe(name, self.now(), length)
            self._fed[name] = (slot.starts, max(fed, min(durable, length)))
        now = self.loop.time()
        self._prefixes.append((now, self.coarse_fault_total(), prefixes))
        grace = self.config.stuck_grace
        while len(self._prefixes) > 1 and self._prefixes[1][0] <= now - grace:
            self._prefixes.pop(0)
        then, faults_then, old = self._prefixes[0]
        master = cluster.master
        quiet = faults_then == self.coarse_fault_total() and self._last_fault_at <= then
        if master is not None and then <= now - grace and quiet and self._all_healed():
            pending = [
                props.PendingWaiter(i, waiter.seq, waiter.w)
                for i, waiter in enumerate(master.log.commit_waiters.values())
            ]
            self.violations += props.no_stuck_waiter(old, pending)
        self._check_counted()
        self._check_memory()
        self._check_frames()
        self._unhandled()

    def _check_frames(self) -> None:
        """No frame larger than its receiver reads: Tornado would close the stream
        with 1009 and the same batch would be resent, and refused, for ever."""
        too_big = self.cluster.network.stats["too_big"]
        if too_big > self._too_big_seen:
            self._too_big_seen = too_big
            self.violations.append(
                props.Violation("frame_too_big", f"{too_big} frame(s) over the receiver's limit")
            )

    def _check_memory(self) -> None:
        sizes, limits = self.memory_sizes()
        peaks = self.memory_peaks
        for name, size in sizes.items():
            kind = name.split("[", 1)[0]
            if size > peaks.get(kind, -1):
                peaks[kind] = size
        self.violations += props.bounded_memory(sizes, limits)

    def memory_sizes(self) -> tuple[dict[str, int], dict[str, int]]:
        """(sizes, their bounds) by name, now. The bounds are the product's own
        (core.limits, the health timings), not figures measured from runs."""
        cluster, config, timing = self.cluster, self.config, self.config.timing
        sizes: dict[str, int] = {}
        limits: dict[str, int] = {}
        master = cluster.master
        if master is not None:
            log = master.log
            # One write at a time per client; a cancelled wait is gone before the
            # client's next step.
            sizes["commit_waiters"], limits["commit_waiters"] = (
                len(log.commit_waiters),
                config.clients,
            )
            # Frames a secondary may have queued towards it (on every connection of
            # it: one still draining beside a new one): the batches in flight, the
            # heartbeats of the time before it is judged unhealthy and dropped, its
            # sync and close.
            per_connection = (
                log.max_inflight_batches
                + int(timing.unhealthy_after / timing.heartbeat_interval)
                + 3
            )
            queued = self._frames_queued_from(MASTER)
            for name in cluster.names[1:]:
                if log.is_member(name):
                    key = f"inflight_batches[{name}]"
                    sizes[key] = len(log.progress(name).inflight)
                    limits[key] = log.max_inflight_batches
                key = f"frames_queued[{name}]"
                sizes[key], limits[key] = queued.get(name, 0), 2 * per_connection
        for name in cluster.names[1:]:
            node = cluster.slots[name].node
            if node is not None:
                key = f"out_of_order_bytes[{name}]"
                sizes[key] = node.follower.buffered_bytes
                limits[key] = node.follower.max_buffered_bytes
        sizes["loop_tasks"] = self.loop.live_tasks()
        limits["loop_tasks"] = self._task_bound()
        return sizes, limits

    def _task_bound(self) -> int:
        """The tasks the processes and clients may have at once, counted: a master
        (a lingering old one too) has its health monitor and, per secondary link, its
        run loop, session, ACK reader and a dial; a secondary its registrar and a
        reader per connection (an old one closing beside a new one); a client its
        loop and one write; and the simulation's main task."""
        secondaries = len(self.cluster.names) - 1
        masters = 1 + len(self.cluster.lingering)
        return masters * (1 + 4 * secondaries) + secondaries * (1 + 2) + 2 * self.config.clients + 1

    def _frames_queued_from(self, sender: str) -> Counter[str]:
        """Frames `sender` wrote that its peers have not read yet, by peer."""
        queued: Counter[str] = Counter()
        for conn in self.cluster.network.connections(sender):
            if conn.local == sender:
                queued[conn.remote] += conn.pending_frames()
        return queued

    def _check_counted(self) -> None:
        self.violations += self.counted_unheld()

    def counted_unheld(self) -> list[props.Violation]:
        """The master counts each secondary as holding no more than its disk durably
        holds (`acked_seq`, what w is judged by). Checked every step and after every
        accepted registration (a registration must lower the count to what the node
        reports). The one excuse, as for ack_unheld: a wiped node not yet registered
        again (the master cannot know of the wipe)."""
        master = self.cluster.master
        if master is None:
            return []
        now = self.now()
        out = []
        for progress in master.log.secondaries:
            name = progress.secondary_id
            if name not in self.holdings or self._wipe_unknown(name, now):
                continue
            if self.cluster.up(name):
                held = self.cluster.durable_prefix(name)
            else:
                held = self.holdings[name].held(now)
            if progress.acked_seq > held:
                out.append(
                    props.Violation(
                        "counted_unheld",
                        f"the master counts {name} as holding 1..{progress.acked_seq}, "
                        f"its disk holds 1..{held}",
                        {"node": name, "acked_seq": progress.acked_seq, "held": held},
                    )
                )
        return out

    def _all_healed(self) -> bool:
        net = self.cluster.network
        names = self.cluster.names
        return all(self.cluster.up(n) for n in names) and all(
            net.link(a, b).cut is None for a in names for b in names if a != b
        )

    def _unhandled(self) -> None:
        for context in self.loop.unhandled_errors:
            self.violations.append(
                props.Violation(
                    "unhandled_error", str(context.get("message")), {"error": repr(context)}
                )
            )
        self.loop.unhandled_errors.clear()

    def _wipe_unknown(self, name: str, t: float) -> bool:
        """At history time `t`, was `name` wiped without having registered since?
        (Never the master: it knows its own disk was lost.)"""
        if name == MASTER:
            return False
        wiped = [w for w in self.history.wipes.get(name, []) if w <= t]
        if not wiped:
            return False
        registered = [r - self.start_time for r in self.cluster.registered.get(name, [])]
        return not any(wiped[-1] < r <= t for r in registered)

    def converged(self) -> bool:
        cluster = self.cluster
        master = cluster.master
        if master is None or master.log.epoch is None or master.log.commit_waiters:
            return False
        last = master.log.last_seq
        reference = cluster.visible_log(MASTER)
        for name in cluster.names:
            if cluster.durable_prefix(name) != last or cluster.visible_log(name) != reference:
                return False
        return True

    async def finish(self) -> None:
        """Heal everything, restart what is down, let the cluster converge, judge."""
        self._stopping = True
        cluster, net = self.cluster, self.cluster.network
        net.heal_all()
        net.frame_faults = None
        cluster.sync_spikes = None
        for a in cluster.names:
            for b in cluster.names:
                if a < b:
                    self._default_latency(a, b)
        for name in cluster.names:
            if not cluster.up(name):
                self._start(name)
        deadline = self.loop.time() + self.config.converge_seconds
        while not self.converged() and self.loop.time() < deadline:
            await asyncio.sleep(0.1)
        self.check_step()
        final = {
            name: [_entry(e) for e in cluster.visible_log(name) or []] for name in cluster.names
        }
        history = self.history
        history.final_logs = dict(final)
        history.shown = self.read_checker.shown
        self.violations += props.check_all(history)
        # ack_unheld without slack, so that an ACK a node sent before its entry was on
        # its disk shows; the one excuse: the node was wiped and its new disk had not
        # registered yet when the answer came (the master counted the ACKs of its
        # previous disk and cannot know).
        judged = [
            w
            for w in history.writes
            if w.answered is not None
            and not any(self._wipe_unknown(holder, w.answered) for holder in w.acked_by)
        ]
        self.violations += props.ack_unheld(judged, self.holdings, 0.0, 0.0)
        self.violations += props.prefix_of_master(final)

    async def main(self) -> None:
        config = self.config
        for name in reversed(self.cluster.names):
            self._start(name)
        clients = [self.loop.create_task(self.client(i)) for i in range(config.clients)]
        for _ in range(config.steps):
            await asyncio.sleep(config.step_seconds)
            if self.fault_rng.random() < config.fault_rate:
                self.inject_fault()
            if self.fine_rng is not None and self.fine_rng.random() < config.clock_jitter_rate:
                self.jitter_clock()
            self.check_step()
            if self.violations:
                break
        self._stopping = True
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        if not self.violations:
            await self.finish()
        await self.cluster.stop_all()


def _trace_logs(trace: Any) -> Callable[..., Any]:
    def processor(_logger: Any, _method: str, event: dict[str, Any]) -> Any:
        name = event.get("event")
        if name in TRACED_EVENTS:
            rest = " ".join(f"{k}={v}" for k, v in event.items() if k != "event")
            trace.record("log", name, rest)
        raise structlog.DropEvent

    return processor


def simulate(seed: int, config: SimConfig | None = None) -> SimResult:
    """Run one seed to its end; never raises for a violation (see `violations`)."""
    sim = Simulation(seed, config)
    saved = structlog.get_config()
    structlog.configure(processors=[_trace_logs(sim.trace)], cache_logger_on_first_use=False)
    started = time.perf_counter()
    try:
        try:
            sim.loop.run_until_complete(sim.main(), max_events=sim.config.max_events)
        except Exception as exc:  # a budget or a deadlock: report it as a violation
            sim.violations.append(props.Violation("simulation_error", repr(exc)))
        gc.collect()  # "exception never retrieved" comes from finalizers: look now
        sim._unhandled()
        sim.loop.shutdown()
        sim.loop.close()
    finally:
        structlog.configure(**saved)
    faults = faults_only(sim.cluster.network.faults)
    faults.update(sim.cluster.faults)
    writes = sim.history.writes
    return SimResult(
        seed=seed,
        violations=sim.violations,
        faults=faults,
        events=sim.loop.events,
        virtual_seconds=sim.now(),
        real_seconds=time.perf_counter() - started,
        writes=len(writes),
        acked=sum(w.outcome == "acked" for w in writes),
        reads=sim._reads,
        trace_tail=sim.trace.format(last=80),
        trace_text="" if not sim.violations else sim.trace.format(),
        trace=[(repr(t), kind, *map(str, parts)) for t, kind, parts in sim.trace.entries()],
        memory_peaks=sim.memory_peaks,
    )


def random_seed() -> int:
    return random.SystemRandom().randrange(2**31)
