"""A fault campaign: a cluster under concurrent writes, faults injected and healed
on a seeded random schedule (or by hand, step by step), then healing, waiting
for convergence and checking.

Bounded: faults stop after `duration` seconds (or `max_faults`), each lasts
`fault_length` seconds at most, writes stop `settle` seconds after the last
heal, and convergence is waited for at most `converge_timeout` seconds.

Fault kinds (a fault is injected on a target and healed later):

| kind             | target    | inject                               | heal                |
|------------------|-----------|--------------------------------------|---------------------|
| kill             | secondary | SIGKILL (its data dir stays)         | start it again      |
| wipe             | secondary | SIGKILL, delete its data dir         | start it empty      |
| pause            | secondary | SIGSTOP (a hung node)                | SIGCONT             |
| cut              | secondary | cut its link to the master only      | heal the link       |
| isolate          | secondary | cut all its links, clients' too      | heal them           |
| partition_master | master    | cut every master<->secondary link    | heal them           |
| kill_master      | master    | SIGKILL the master                   | start it again      |
| pause_master     | master    | SIGSTOP the master                   | SIGCONT             |
| kill_all         | all       | SIGKILL every node at the same time  | start them all      |

Every node keeps its log in its own data directory under the work dir (see
`tools.chaos.cluster`), kept across restarts, so a SIGKILL loses nothing a node
acknowledged; `wipe` is the only fault that loses a disk (a secondary's
only: a wiped secondary comes back with a new incarnation, is refilled from
scratch and must not count as a holder of what it lost). A wiped node is down
for the fault's length, like a killed one. At most one process fault
(`kill`, `wipe`, `pause`, `*_master`, `kill_all`) touches a node at a time;
`kill_all` waits until no process fault is active and blocks the others
while it is.

`cut`, `isolate` and `partition_master` need network namespaces. The master
kinds (`kill_master`, `pause_master`, `kill_all`) are off unless
`master_faults` is set. The checker requires every acknowledged write to
survive unless every node in its `acked_by` (the master included) had its
disk wiped after it was sent, which a campaign never does to the master: so
a lost acknowledged write is always a violation here.

Nodes run with `--retry-max` = `retry_max` (1 s) so reconnections after a heal
are quick; everything else is each node's default.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools.chaos import netns
from tools.chaos.checker import Report, check, load_node_events
from tools.chaos.clients import Recorder, Samplers, Writers
from tools.chaos.cluster import MASTER, Cluster, FaultUnsupported
from tools.harness import http

PROCESS_KINDS = {"kill", "wipe", "pause", "kill_master", "pause_master", "kill_all"}
NETWORK_KINDS = {"cut", "isolate", "partition_master"}
MASTER_KINDS = {"kill_master", "pause_master", "kill_all"}
SECONDARY_KINDS = ("kill", "wipe", "pause", "cut", "isolate", "partition_master")
ALL_KINDS = (*SECONDARY_KINDS, "kill_master", "pause_master", "kill_all")
ALL_NODES = "all"  # the target of kill_all


@dataclass
class CampaignConfig:
    duration: float = 20.0
    seed: int = 1
    mode: str = "auto"  # netns, loopback, or auto (netns when possible)
    secondaries: int = 2
    writers: int = 6
    master_faults: bool = False  # adds kill_master, pause_master and kill_all
    kinds: tuple[str, ...] | None = None  # None: every kind the mode supports
    workdir: Path | None = None
    client_timeout: float = 5.0
    wtimeout_ms: int | None = 3000
    pace: float = 0.02
    w_choices: tuple[int | str, ...] | None = None  # None: 1..N and "majority"
    fault_gap: tuple[float, float] = (0.5, 2.0)  # quiet time between rounds
    fault_length: tuple[float, float] = (0.5, 3.0)
    max_concurrent: int = 2
    max_faults: int | None = None
    settle: float = 1.0
    converge_timeout: float = 60.0
    sample_interval: float = 0.1
    retry_max: float = 1.0


@dataclass
class Fault:
    kind: str
    target: str
    t: float  # when the fault was in place (after SIGKILL returned, say)
    started: float = 0.0  # just before it was injected
    heal_at: float = 0.0  # monotonic; for the random schedule
    number: int = 0


@dataclass
class Outcome:
    report: Report
    workdir: Path
    mode: str
    mode_reason: str
    converged: bool
    converge_detail: str
    converge_seconds: float
    elapsed: float
    info: dict = field(default_factory=dict)


class Campaign:
    """Use as a context manager (teardown always runs) or call `run()`."""

    def __init__(self, config: CampaignConfig) -> None:
        self.config = config
        self.mode, self.mode_reason = self._resolve_mode(config.mode)
        self.workdir = Path(
            config.workdir or tempfile.mkdtemp(prefix=f"replog-chaos-{config.seed}-")
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster = Cluster(
            self.workdir,
            secondaries=config.secondaries,
            mode=self.mode,
            retry_max=config.retry_max,
        )
        self.recorder = Recorder(self.workdir / "results.jsonl")
        self.writers: Writers | None = None
        self.samplers: Samplers | None = None
        self.active: list[Fault] = []
        self.injected = 0
        self._started = time.monotonic()

    @staticmethod
    def _resolve_mode(mode: str) -> tuple[str, str]:
        if mode == "loopback":
            return "loopback", "asked for"
        ok, reason = netns.availability()
        if mode == "netns":
            if not ok:
                raise RuntimeError(f"--mode netns: {reason}")
            return "netns", "asked for"
        if mode != "auto":
            raise ValueError(f"unknown mode {mode!r}")
        return ("netns", "available") if ok else ("loopback", reason)

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> Campaign:
        try:
            self.setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def setup(self) -> None:
        if self.mode == "netns":
            netns.cleanup_stale()
        self.cluster.build()
        self.recorder.add(
            {
                "type": "meta",
                "nodes": self.cluster.names,
                "cluster_size": 1 + self.config.secondaries,
                "mode": self.mode,
                "config": {
                    k: (str(v) if isinstance(v, Path) else v)
                    for k, v in asdict(self.config).items()
                },
                "topology": self.cluster.describe(),
                "wall_start": self.recorder.wall_started,
            }
        )
        self.cluster.start()
        self._check_storage()

    def _check_storage(self) -> None:
        """Every node keeps its log on disk, in the data dir the campaign gave it."""
        for name in self.cluster.names:
            health = self.cluster.health(name)
            where = health.get("data_dir")
            want = self.cluster.data_dir(name)
            if health.get("storage") != "disk" or where is None or Path(where).resolve() != want:
                raise RuntimeError(
                    f"{name} runs with storage {health.get('storage')!r} in {where!r}, "
                    f"not on disk in {want}"
                )

    def start_load(self) -> None:
        cfg = self.config
        self.writers = Writers(
            lambda: self.cluster.url(MASTER),
            self.recorder,
            count=cfg.writers,
            seed=cfg.seed,
            timeout=cfg.client_timeout,
            wtimeout_ms=cfg.wtimeout_ms,
            pace=cfg.pace,
            w_choices=cfg.w_choices or (*range(1, cfg.secondaries + 2), "majority"),
        ).start()
        self.samplers = Samplers(
            {name: (lambda n=name: self.cluster.url(n)) for name in self.cluster.names},
            self.recorder,
            interval=cfg.sample_interval,
        ).start()

    def teardown(self) -> None:
        try:
            if self.writers is not None:
                self.writers.stop(timeout=self.config.client_timeout + 5)
            if self.samplers is not None:
                self.samplers.stop()
        finally:
            try:
                self.cluster.shutdown()
            finally:
                self.recorder.close()

    # -- faults ------------------------------------------------------------

    def kinds(self) -> list[str]:
        cfg = self.config
        kinds = list(cfg.kinds or SECONDARY_KINDS)
        if cfg.master_faults and not cfg.kinds:
            kinds += sorted(MASTER_KINDS)
        if not cfg.master_faults:
            kinds = [k for k in kinds if k not in MASTER_KINDS]
        if self.mode != "netns":
            kinds = [k for k in kinds if k not in NETWORK_KINDS]
        return kinds

    def inject(self, kind: str, target: str | None = None) -> Fault:
        c = self.cluster
        if kind == "kill_all":
            target = ALL_NODES
        elif kind in MASTER_KINDS or kind == "partition_master":
            target = MASTER
        if target is None:
            raise ValueError(f"{kind} needs a target")
        if kind == "wipe" and target == MASTER:
            raise ValueError("wipe is for secondaries (a wiped master needs --recover)")
        if kind in NETWORK_KINDS and self.mode != "netns":
            raise FaultUnsupported(f"{kind} needs network namespaces ({self.mode_reason})")
        started = self.recorder.now()
        if kind in ("kill", "kill_master"):
            c.kill(target)
        elif kind == "wipe":
            c.wipe(target)
        elif kind == "kill_all":
            c.kill_all()
        elif kind in ("pause", "pause_master"):
            c.pause(target)
        elif kind == "cut":
            c.cut(MASTER, target)
        elif kind == "isolate":
            c.isolate(target)
        elif kind == "partition_master":
            for name in c.secondary_names:
                c.cut(MASTER, name)
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        self.injected += 1
        fault = Fault(kind, target, self.recorder.now(), started=started, number=self.injected)
        self.active.append(fault)
        self._record("inject", fault)
        return fault

    def heal(self, fault: Fault) -> None:
        c = self.cluster
        kind, target = fault.kind, fault.target
        if kind in ("kill", "kill_master", "wipe"):
            c.restart(target)  # a wiped node starts with an empty data dir
        elif kind == "kill_all":
            c.restart_all()
        elif kind in ("pause", "pause_master"):
            c.resume(target)
        elif kind == "cut":
            c.heal(MASTER, target)
        elif kind == "isolate":
            c.rejoin(target)
        elif kind == "partition_master":
            for name in c.secondary_names:
                c.heal(MASTER, name)
        self.active.remove(fault)
        self._record("heal", fault)

    def heal_all(self) -> None:
        for fault in list(self.active):
            self.heal(fault)

    def _record(self, action: str, fault: Fault) -> None:
        record = {
            "type": "fault",
            "action": action,
            "fault": fault.kind,
            "target": fault.target,
            "number": fault.number,
            "t": self.recorder.now(),
        }
        if action == "inject":
            record["started"] = fault.started  # the checker dates a wipe from here
        if fault.kind == "kill_all":
            record["targets"] = self.cluster.names
        self.recorder.add(record)

    def _eligible_targets(self, kind: str) -> list[str]:
        busy_process = {f.target for f in self.active if f.kind in PROCESS_KINDS}
        if ALL_NODES in busy_process:
            busy_process |= set(self.cluster.names)
        same_kind = {f.target for f in self.active if f.kind == kind}
        if kind == "kill_all":
            return [] if busy_process else [ALL_NODES]
        if kind in MASTER_KINDS:
            return [] if MASTER in busy_process else [MASTER]
        if kind == "partition_master":
            return [] if same_kind else [MASTER]
        pool = self.cluster.secondary_names
        if kind in PROCESS_KINDS:
            return [n for n in pool if n not in busy_process]
        return [n for n in pool if n not in same_kind]

    def run_schedule(self, duration: float | None = None) -> None:
        """Random (seeded) fault rounds for `duration` seconds, then heal everything.

        A round injects 1..max_concurrent faults at staggered times, heals each
        after its own random length, and is followed by a quiet gap, so the
        cluster spends time both under faults and healed with writes flowing.
        """
        cfg = self.config
        rng = random.Random(cfg.seed)
        kinds = self.kinds()
        end = time.monotonic() + (cfg.duration if duration is None else duration)

        def budget() -> bool:
            return cfg.max_faults is None or self.injected < cfg.max_faults

        def sleep_until(moment: float) -> None:
            time.sleep(max(0.0, min(moment, end) - time.monotonic()))

        try:
            while time.monotonic() < end and kinds and budget():
                for _ in range(rng.randint(1, max(1, cfg.max_concurrent))):
                    kind = rng.choice(kinds)
                    targets = self._eligible_targets(kind)
                    if not targets or not budget() or time.monotonic() >= end:
                        continue
                    fault = self.inject(kind, rng.choice(targets))
                    fault.heal_at = time.monotonic() + rng.uniform(*cfg.fault_length)
                    sleep_until(time.monotonic() + rng.uniform(0, cfg.fault_gap[0]))
                while self.active:
                    first = min(self.active, key=lambda f: f.heal_at)
                    sleep_until(first.heal_at)
                    self.heal(first)
                sleep_until(time.monotonic() + rng.uniform(*cfg.fault_gap))
        finally:
            self.heal_all()

    # -- the end -------------------------------------------------------------

    def finish(self) -> Outcome:
        """Heal, let writes run `settle` s more, stop them, wait for convergence, check."""
        cfg = self.config
        self.heal_all()
        time.sleep(cfg.settle)  # pacing: writes also land on the healed cluster
        if self.writers is not None:
            self.writers.stop()
        converged, detail, waited = self.cluster.wait_converged(cfg.converge_timeout)
        if self.samplers is not None:
            self.samplers.stop()
        final_logs = self.cluster.final_logs()
        final_health = {}
        for name in self.cluster.names:
            try:
                final_health[name] = self.cluster.health(name)
            except http.RequestFailed as exc:
                final_health[name] = {"unreachable": str(exc)}
        (self.workdir / "logs.json").write_text(json.dumps(final_logs), encoding="utf-8")
        report = check(
            self.recorder.records,
            final_logs,
            nodes=self.cluster.names,
            cluster_size=1 + cfg.secondaries,
            node_events=load_node_events(self.workdir, self.cluster.secondary_names),
        )
        outcome = Outcome(
            report=report,
            workdir=self.workdir,
            mode=self.mode,
            mode_reason=self.mode_reason,
            converged=converged,
            converge_detail=detail,
            converge_seconds=round(waited, 2),
            elapsed=round(time.monotonic() - self._started, 2),
            info=self.cluster.describe(),
        )
        (self.workdir / "report.json").write_text(
            json.dumps(
                {
                    **report.to_json(),
                    "mode": self.mode,
                    "converge": {"ok": converged, "detail": detail, "seconds": waited},
                    "final_health": final_health,
                    "elapsed": outcome.elapsed,
                },
                indent=1,
                default=str,
            ),
            encoding="utf-8",
        )
        return outcome

    def run(self) -> Outcome:
        """The whole campaign: setup, load, random faults, heal, converge, check, teardown."""
        with self:
            self.start_load()
            self.run_schedule()
            return self.finish()
