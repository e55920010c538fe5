"""A whole replog cluster in one process: the real MasterNode and K real SecondaryNodes
on one SimLoop, talking over one SimNetwork, each on its own simulated disk.

What is real: the nodes, their core state machines, the master's SecondaryLinks, the
secondaries' ReplicationSessions and Registrars, the stores (storage.node_store on a
`LossyFileSystem` with an `InlineSyncer`). What stands in for the rest:

- the replication WebSocket: a `SimConnection` (the link dials through `_dial`, the
  secondary accepts through `_acceptor`);
- `POST /register`: `_register`, which parses the report exactly as the handler
  does (`master.handlers.parse_report`) and answers as it would (200, or the
  error's status and body), after a network round trip; a cut path is a timeout;
- the recovery fetch (`GET /replication/log`): `_fetch`, reading the secondary's
  log in process after a round trip; a cut path or a node down is a FetchError;
- fsync: the InlineSyncer's sync runs on the loop a seeded delay after it is asked
  for, and only if the node was not crashed meanwhile.

Every id and every jitter comes from the cluster's seeded Random: one seed, one run.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from replog.common.web import error_status
from replog.common.ws import FrameLimit
from replog.core.entry import Entry
from replog.core.errors import ReplogError
from replog.core.stream import RefusalKind
from replog.master.config import MasterConfig
from replog.master.handlers import parse_report
from replog.master.node import MasterNode
from replog.master.recovery_fetch import FetchError
from replog.master.replicator import SecondaryLink
from replog.secondary.config import SecondaryConfig
from replog.secondary.node import SecondaryNode
from replog.secondary.registrar import RegisterAnswer, Registrar
from replog.secondary.replication import ReplicationSession
from replog.storage.group_commit import InlineSyncer
from replog.storage.node_store import open_store
from tools.sim.disk import LossyFileSystem
from tools.sim.loop import NodeClock, SimLoop
from tools.sim.network import DialRefused, SimConnection, SimNetwork
from tools.sim.trace import Trace

MASTER = "master"
PORT = 1
# The register transport's request timeout (HttpRegister's request_timeout).
REGISTER_TIMEOUT = 5.0


@dataclass
class Timing:
    """The nodes' timeouts, shortened so that a few virtual seconds see failures
    detected and healed (the defaults are tuned for people watching)."""

    heartbeat_interval: float = 0.2
    suspect_after: float = 0.6
    unhealthy_after: float = 1.5
    master_timeout: float = 2.0
    retry_initial: float = 0.05
    retry_max: float = 1.0
    wtimeout_ms: int = 0  # the master's default (none: wait for ever)
    recovery_grace: float = 2.0
    fsync_min: float = 0.0005
    fsync_max: float = 0.004


@dataclass
class NodeSlot:
    """One machine: its name, its clock and disk (which outlive its processes), and the
    process now running there (None while down). `generation` counts its starts:
    callbacks of an earlier process (a sync, a reader) check it and do nothing."""

    name: str
    clock: NodeClock
    fs: LossyFileSystem
    generation: int = 0
    node: Any = None  # MasterNode | SecondaryNode | None
    registrar: Registrar | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    wipes: list[float] = field(default_factory=list)
    starts: int = 0


class SimCluster:
    def __init__(
        self,
        seed: int,
        secondaries: int = 2,
        *,
        timing: Timing | None = None,
        trace_capacity: int = 20_000,
        latency: float = 0.001,
        jitter: float = 0.002,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.loop = SimLoop()
        self.trace = Trace(self.loop.time, trace_capacity)
        self.network = SimNetwork(
            self.loop, self._child_rng(), self.trace, latency=latency, jitter=jitter
        )
        self.timing = timing or Timing()
        self.names = [MASTER, *(f"s{i}" for i in range(1, secondaries + 1))]
        self.slots = {
            name: NodeSlot(name, NodeClock(self.loop, trace=self.trace), LossyFileSystem())
            for name in self.names
        }
        # Faults the cluster itself injected (wipes, pauses, clock jumps; the network
        # counts crashes).
        self.faults: dict[str, int] = {}
        # Called with a node's name whenever its durable prefix may have grown (a sync
        # completed, the process started on its disk): the runner's holding evidence.
        self.on_durable: Callable[[str], None] | None = None
        # Per secondary, the loop times the master accepted its registration.
        self.registered: dict[str, list[float]] = {name: [] for name in self.names}
        # Called with a secondary's name once the master accepted its registration.
        self.on_registered: Callable[[str], None] | None = None
        # Old master processes still running beside their replacement (`crash(linger=)`).
        self.lingering: list[MasterNode] = []
        # Slow fsyncs: (rng, chance per sync, longest extra delay); None: none. Its own
        # rng, so that a cluster without spikes draws exactly what it drew before.
        self.sync_spikes: tuple[random.Random, float, float] | None = None

    def _child_rng(self) -> random.Random:
        return random.Random(self.rng.getrandbits(64))

    # -- what the runner reads ---------------------------------------------------

    @property
    def master(self) -> MasterNode | None:
        return self.slots[MASTER].node  # type: ignore[no-any-return]

    def up(self, name: str) -> bool:
        return self.slots[name].node is not None

    def visible_log(self, name: str) -> list[Entry] | None:
        """What `GET /` of the node shows, as core entries; None while it is down."""
        node = self.slots[name].node
        if node is None:
            return None
        if name == MASTER:
            if node.log.epoch is None:
                return None  # recovering: GET / answers 503
            return list(node.log.entries(1, node.log.visible_seq))
        return list(node.follower.entries(1, node.follower.visible_seq))

    def visible_log_served(self, name: str) -> bool:
        """Whether `GET /` of the node answers with its log now (up, and not a
        master still recovering)."""
        node = self.slots[name].node
        return node is not None and (name != MASTER or node.log.epoch is not None)

    def visible_range(self, name: str, start: int, stop: int) -> tuple[list[Entry], int]:
        """`visible_log(name)[start:stop]` and the visible log's length, without building
        the whole log (the runner looks at only the new part of it every step)."""
        node = self.slots[name].node
        if node is None:
            return [], 0
        if name == MASTER:
            if node.log.epoch is None:
                return [], 0
            log: Any = node.log
            length = int(log.visible_seq)
        else:
            log = node.follower
            length = int(log.visible_seq)
        stop = min(stop, length)
        if stop <= start:
            return [], length
        return list(log.entries(start + 1, stop - start)), length

    def durable_prefix(self, name: str) -> int:
        node = self.slots[name].node
        if node is None:
            return 0
        return int(node.log.durable_seq if name == MASTER else node.follower.durable_seq)

    def count(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    # -- starting and stopping processes -------------------------------------------

    def start(self, name: str, *, recover: bool = False) -> None:
        """Start a process on the machine `name`, on whatever its disk holds;
        `recover`: the master rebuilds its log from the secondaries (--recover)."""
        slot = self.slots[name]
        assert slot.node is None, f"{name} is running"
        slot.generation += 1
        slot.starts += 1
        gen = slot.generation
        rng = self._child_rng()

        def tokens(nbytes: int) -> str:
            return f"{rng.getrandbits(8 * nbytes):0{2 * nbytes}x}"

        sync_rng = self._child_rng()
        t = self.timing

        def schedule_sync(sync: Callable[[], None]) -> None:
            def run() -> None:
                if slot.generation == gen:  # a crashed process's sync never happens
                    sync()

            delay = sync_rng.uniform(t.fsync_min, t.fsync_max)
            if self.sync_spikes is not None:
                spike_rng, chance, longest = self.sync_spikes
                if spike_rng.random() < chance:
                    # A slow fsync (a busy disk, a journal commit): the entries it
                    # covers stay undeclared durable, and unacknowledged, for longer.
                    delay += spike_rng.uniform(0.005, longest)
                    self.count("fsync_spike")
                    self.trace.record("fault", "fsync_spike", name, f"{delay:.4f}")
            self.loop.call_later(delay, run)

        store = open_store(
            data_dir=Path(f"/disk/{name}"),
            node=name,
            role="master" if name == MASTER else "secondary",
            fs=slot.fs,
            syncer=InlineSyncer.factory(schedule_sync, clock=slot.clock),
            tokens=tokens,
        )
        self.trace.record("start", name, f"gen={gen}")
        if name == MASTER:
            config = MasterConfig(
                secondaries=len(self.names) - 1,
                retry_initial=t.retry_initial,
                retry_max=t.retry_max,
                heartbeat_interval=t.heartbeat_interval,
                suspect_after=t.suspect_after,
                unhealthy_after=t.unhealthy_after,
                wtimeout_ms=t.wtimeout_ms,
                recovery_grace=t.recovery_grace,
                recover=recover,
            )
            master = MasterNode(
                config,
                store,
                link_factory=partial(SecondaryLink, dial=self._dial),
                fetcher=self._fetch,
                clock=slot.clock,
                wall_clock_ms=slot.clock.wall_ms,
                tokens=tokens,
                rng=rng,
            )
            slot.node = master
            self._watch_durable(name, store)
            master.start()
            return
        config = SecondaryConfig(
            host=name,
            port=PORT,
            master_url=f"http://{MASTER}:{PORT}",
            secondary_id=name,
            retry_initial=t.retry_initial,
            retry_max=t.retry_max,
            master_timeout=t.master_timeout,
        )
        node = SecondaryNode(config, store, clock=slot.clock, tokens=tokens, rng=rng)
        slot.node = node
        self._watch_durable(name, store)
        self.network.listen(name, self._acceptor(slot, gen))
        slot.registrar = Registrar(node, register=partial(self._register, name, gen))
        slot.registrar.start()

    def _watch_durable(self, name: str, store: Any) -> None:
        node_durable = store.on_durable  # the node's own handler, set by the node

        def durable(seq: int) -> None:
            node_durable(seq)
            if self.on_durable is not None:
                self.on_durable(name)

        store.on_durable = durable
        if self.on_durable is not None:
            self.on_durable(name)
        # A recovering master installs the log it fetched with `reset`, synced there and
        # then, without an on_durable; the node takes it as durable when it opens, in
        # the same callback: report it just after, before anyone can be answered.
        reset = store.reset

        def reset_and_report(entries: Any) -> None:
            reset(entries)
            if self.on_durable is not None:
                self.loop.call_soon(self.on_durable, name)

        store.reset = reset_and_report

    def crash(
        self, name: str, *, wipe: bool = False, power: bool = True, linger: float = 0.0
    ) -> None:
        """The process is gone at once. `power`: a power cut, its disk keeps what was
        synced (the last write possibly torn); otherwise a killed process, the kernel
        keeps everything written. `wipe`: the disk is lost.

        `linger` (the master, killed, not wiped): the old process is not dead but
        frozen (a paused VM, SIGSTOP), and it is replaced all the same; its
        connections are reset, and for `linger` seconds after the crash it lives on
        in its old epoch beside its replacement: its links redial the secondaries,
        who must refuse a master older than the one they follow. It syncs nothing
        more (its disk is its replacement's now) and takes no client write."""
        slot = self.slots[name]
        node = slot.node
        if node is None:
            return
        slot.generation += 1
        slot.node = None
        self.network.crash(name)
        # The crash itself the network counts; these say what it cost.
        if wipe:
            self.count("wipe")
        elif power:
            self.count("power_cut")
        self.trace.record("fault", "crash", name, "wiped" if wipe else "power" if power else "kill")
        if wipe:
            slot.fs = LossyFileSystem()
            slot.wipes.append(self.loop.time())
        elif power:
            slot.fs = slot.fs.crash(self._child_rng())
        else:
            slot.fs = slot.fs.kill()
        # The dead process's tasks: cancelled now; their clean-up reaches nothing
        # (its connections are reset, its syncs skipped, its disk already imaged).
        tasks, slot.tasks = slot.tasks, []
        for task in tasks:
            task.cancel()
        if name == MASTER:
            if linger > 0 and not (wipe or power):
                self.trace.record("fault", "linger", name, f"for={linger}")
                self.count("linger")
                self.lingering.append(node)
                self.loop.call_later(linger, self._stop_lingering, node)
            else:
                self.loop.create_task(node.stop())
        else:
            node.stop()
            registrar, slot.registrar = slot.registrar, None
            if registrar is not None:
                self.loop.create_task(registrar.stop())

    def _stop_lingering(self, node: MasterNode) -> None:
        if node in self.lingering:
            self.lingering.remove(node)
            self.trace.record("stop", "lingering master")
            self.loop.create_task(node.stop())

    async def stop_all(self) -> None:
        """The end of a run: stop every process (gracefully: nothing left pending)."""
        for node in list(self.lingering):
            self.lingering.remove(node)
            await node.stop()
        for name in self.names:
            slot = self.slots[name]
            node, slot.node = slot.node, None
            slot.generation += 1
            for task in slot.tasks:
                task.cancel()
            if node is None:
                continue
            if name == MASTER:
                await node.stop()
            else:
                node.stop()
                if slot.registrar is not None:
                    await slot.registrar.stop()

    # -- the seams' simulated transports -------------------------------------------

    def _cut(self, a: str, b: str) -> bool:
        return self.network.link(a, b).cut is not None or self.network.link(b, a).cut is not None

    async def _round_trip(self, a: str, b: str) -> None:
        await asyncio.sleep(self.network.link(a, b).latency + self.network.link(b, a).latency)

    async def _dial(self, url: str, timeout: float, limit: object, peers: object) -> SimConnection:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        assert parts.hostname is not None
        end = await self.network.connect(MASTER, parts.hostname, query, timeout=timeout)
        end.max_message_size = limit if isinstance(limit, int) else None
        return end

    def _acceptor(self, slot: NodeSlot, gen: int) -> Callable[[SimConnection, Any], None]:
        def accept(end: SimConnection, query: dict[str, str]) -> None:
            node = slot.node
            if node is None or slot.generation != gen:
                raise DialRefused(503, "down")
            end.max_message_size = FrameLimit(node.config.max_frame_bytes)
            session = ReplicationSession(node, end)
            refused = session.accept(
                epoch=query.get("epoch", ""),
                secondary=query.get("secondary"),
                cluster=query.get("cluster", ""),
                max_frame=query.get("max_frame"),
            )
            if refused is not None:
                code = 409 if refused.kind is RefusalKind.CONFLICT else 400
                raise DialRefused(code, refused.reason)
            session.open()

            async def read() -> None:
                while (frame := await end.read_message()) is not None:
                    if slot.generation != gen:
                        return
                    session.receive(frame)
                session.closed()

            slot.tasks.append(self.loop.create_task(read()))

        return accept

    async def _register(self, name: str, gen: int, report: dict[str, Any]) -> RegisterAnswer:
        """`POST /register` from `name` to the master, as HttpRegister would see it."""
        if self._cut(name, MASTER):
            await asyncio.sleep(REGISTER_TIMEOUT)
            return RegisterAnswer(599, None, "HTTP 599: Timeout")
        await self._round_trip(name, MASTER)
        master = self.master
        if master is None:
            raise ConnectionRefusedError(f"nobody listens on {MASTER}")
        if self.slots[name].generation != gen:
            raise ConnectionResetError("the registering process is gone")
        try:
            parsed = parse_report(orjson.loads(orjson.dumps(report)), https_only=False)
            master.register(parsed)
        except ReplogError as exc:
            return RegisterAnswer(error_status(exc), orjson.dumps(exc.to_json()), "refused")
        self.registered[name].append(self.loop.time())
        if self.on_registered is not None:
            self.on_registered(name)
        log = master.log
        body = {
            "registered": name,
            "cluster_size": log.cluster_size,
            "last_seq": log.last_seq,
            "epoch": log.epoch,
            "cluster_id": master.cluster_id,
        }
        return RegisterAnswer(200, orjson.dumps(body), "OK")

    async def _fetch(self, url: str) -> list[Entry]:
        """`GET /replication/log` of the secondary at `url`, every page at once."""
        host = urlsplit(url).hostname or ""
        if host not in self.slots or self._cut(MASTER, host):
            raise FetchError(f"{url}: timeout")
        await self._round_trip(MASTER, host)
        node = self.slots[host].node
        if node is None:
            raise FetchError(f"{url}: connection refused")
        # As the handler serves it: the whole contiguous log, synced or not.
        return list(node.follower.entries(1, None))
