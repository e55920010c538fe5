"""The node processes of one cluster, and the faults that can be done to them.

Two modes:

- `netns`: each node in its own network namespace (see `tools.chaos.netns`),
  listening on 0.0.0.0 there. A secondary registers with the master at the
  master's address on their replication link and advertises its own address
  on that link, so replication uses only that link; clients reach every node
  over its client link. Supports every fault.
- `loopback`: no namespaces, each node on its own 127.x.y.z address. Only
  process faults (SIGKILL + restart, wipe + restart, SIGSTOP/SIGCONT).

Nodes log JSON lines to `<workdir>/<node>.log` (appended across restarts) and
keep their logs durably in `<workdir>/data/<node>` (`--data-dir`, the default
`--fsync always`), kept across restarts: a SIGKILLed node comes back with
everything it acknowledged. Only `wipe` (delete a stopped node's data
directory) loses a disk. Nodes get the environment without `REPLOG_*`
variables, so a stray `REPLOG_IN_MEMORY=1` cannot make a campaign's nodes
memory-only: every setting is either passed here or the node's default.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import time
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

from tools.chaos.netns import ROOT, Topology
from tools.harness import http
from tools.harness.net import first_bindable, free_port, process_octet
from tools.harness.process import NodeProcess, script
from tools.harness.waiting import WaitFailed, wait_until

MASTER = "master"
MASTER_PORT = 7000
SECONDARY_PORT = 7001
# Settings are passed as flags: the campaign's own REPLOG_* variables never reach a node.
DROP_ENV_PREFIX = "REPLOG_"
_loopback_counter = itertools.count()


class FaultUnsupported(RuntimeError):
    pass


@dataclass
class Node(NodeProcess):
    """A node process (`url`: how clients in the root namespace reach it) and its faults."""

    _: KW_ONLY
    data_dir: Path
    state: str = "new"  # running, paused, killed, stopped
    wipes: int = 0

    def start(self) -> Node:
        super().start()
        self.state = "running"
        return self

    def kill(self) -> int | None:
        """SIGKILL: no clean shutdown; what the node wrote to its data dir stays."""
        code = super().kill()
        self.state = "killed"
        return code

    def wipe(self) -> None:
        """Lose the disk: delete the data directory of a node that is not running."""
        if self.alive():
            raise RuntimeError(f"{self.name} is running: kill it before wiping its data")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.data_dir.exists():
            raise RuntimeError(f"could not delete {self.data_dir}")
        self.wipes += 1

    def pause(self) -> None:
        if self.alive():
            self.signal(signal.SIGSTOP)
            self.state = "paused"

    def resume(self) -> None:
        if self.alive():
            self.signal(signal.SIGCONT)
            self.state = "running"

    def stop(self, timeout: float = 10.0) -> int | None:
        code = super().stop(timeout)
        if self.proc is not None:
            self.state = "stopped"
        return code


def campaign_node(name: str, argv: list[str], url: str, workdir: Path, data_dir: Path) -> Node:
    """A campaign node: logs to `<workdir>/<name>.log`, in a session of its own (a
    terminal's Ctrl-C reaches only the campaign), without the campaign's REPLOG_*."""
    return Node(
        name,
        argv,
        url,
        workdir / f"{name}.log",
        data_dir=data_dir,
        drop_env_prefix=DROP_ENV_PREFIX,
        cwd=Path.cwd(),
        new_session=True,
    )


def _loopback_host(index: int) -> str:
    """A 127.x.y.z address nobody else in this process (or the tests) uses."""
    prefix = f"127.{process_octet(64, 64)}"
    return first_bindable(
        f"{prefix}.{next(_loopback_counter) % 250 + 1}.{index + 1}" for _ in itertools.count()
    )


@dataclass
class Cluster:
    workdir: Path
    secondaries: int = 2
    mode: str = "netns"  # or "loopback"
    secondary_delay: float = 0.0
    retry_max: float = 1.0  # reconnect / re-register backoff cap, seconds
    topology: Topology | None = field(init=False, default=None)
    nodes: dict[str, Node] = field(init=False, default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [MASTER] + [f"s{i}" for i in range(1, self.secondaries + 1)]

    @property
    def secondary_names(self) -> list[str]:
        return self.names[1:]

    @property
    def master(self) -> Node:
        return self.nodes[MASTER]

    def url(self, node: str) -> str:
        return self.nodes[node].url

    def data_dir(self, node: str) -> Path:
        """Where `node` keeps its log; the same directory across restarts."""
        return (self.workdir / "data" / node).resolve()

    # -- lifecycle ---------------------------------------------------------

    def build(self) -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.mode == "netns":
            self.topology = Topology(self.names).create()
            self._build_netns()
        elif self.mode == "loopback":
            self._build_loopback()
        else:
            raise ValueError(f"unknown mode {self.mode!r}")
        return self

    def _master_argv(self, host: str, port: int) -> list[str]:
        return [
            *script("replog-master", "replog.master"),
            *("--host", host, "--port", str(port), "--secondaries", str(self.secondaries)),
            *("--retry-max", str(self.retry_max), "--log-format", "json"),
            *("--data-dir", str(self.data_dir(MASTER))),
        ]

    def _secondary_argv(self, name: str, host: str, port: int, master: str, adv: str) -> list[str]:
        return [
            *script("replog-secondary", "replog.secondary"),
            *("--host", host, "--port", str(port), "--master", master, "--id", name),
            *("--advertise", adv, "--delay", str(self.secondary_delay)),
            *("--retry-max", str(self.retry_max), "--log-format", "json"),
            *("--data-dir", str(self.data_dir(name))),
        ]

    def _build_netns(self) -> None:
        topo = self.topology
        self.nodes[MASTER] = campaign_node(
            MASTER,
            topo.exec_prefix(MASTER) + self._master_argv("0.0.0.0", MASTER_PORT),
            f"http://{topo.client_addr(MASTER)}:{MASTER_PORT}",
            self.workdir,
            self.data_dir(MASTER),
        )
        for name in self.secondary_names:
            master_url = f"http://{topo.addr(MASTER, name)}:{MASTER_PORT}"
            advertise = f"http://{topo.addr(name, MASTER)}:{SECONDARY_PORT}"
            argv = self._secondary_argv(name, "0.0.0.0", SECONDARY_PORT, master_url, advertise)
            self.nodes[name] = campaign_node(
                name,
                topo.exec_prefix(name) + argv,
                f"http://{topo.client_addr(name)}:{SECONDARY_PORT}",
                self.workdir,
                self.data_dir(name),
            )

    def _build_loopback(self) -> None:
        hosts = {name: _loopback_host(i) for i, name in enumerate(self.names)}
        ports = {name: free_port(hosts[name]) for name in self.names}
        master_url = f"http://{hosts[MASTER]}:{ports[MASTER]}"
        self.nodes[MASTER] = campaign_node(
            MASTER,
            self._master_argv(hosts[MASTER], ports[MASTER]),
            master_url,
            self.workdir,
            self.data_dir(MASTER),
        )
        for name in self.secondary_names:
            url = f"http://{hosts[name]}:{ports[name]}"
            self.nodes[name] = campaign_node(
                name,
                self._secondary_argv(name, hosts[name], ports[name], master_url, url),
                url,
                self.workdir,
                self.data_dir(name),
            )

    def start(self, timeout: float = 30.0) -> None:
        self.master.start()
        for name in self.secondary_names:
            self.nodes[name].start()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every node answers and every secondary has a replication stream."""
        streams: dict[str, bool] = {}

        def ready() -> bool:
            streams.update(self.stream_status())
            return all(streams.values())

        running = [n for n in self.nodes.values() if n.state == "running"]
        try:
            wait_until(
                ready,
                timeout,
                interval=0.05,
                what="every secondary streaming",
                watch=running,
                ignore=(http.RequestFailed,),
            )
        except WaitFailed as exc:
            raise TimeoutError(f"cluster not ready: {exc}; streams: {streams}") from None

    def stream_status(self) -> dict[str, bool]:
        """Per secondary: master says healthy and the secondary has its stream."""
        health = http.get_json(self.master.url + "/health", timeout=2)
        healthy = {s["id"] for s in health.get("secondaries", []) if s.get("status") == "healthy"}
        status = {}
        for name in self.secondary_names:
            mine = http.get_json(self.url(name) + "/health", timeout=2)
            status[name] = name in healthy and bool(mine.get("stream"))
        return status

    def shutdown(self) -> None:
        """Stop every node, then remove the namespaces. Safe to call twice."""
        try:
            for node in self.nodes.values():
                try:
                    node.stop()
                except Exception:  # keep going: the rest must stop too
                    node.send_kill()
        finally:
            if self.topology is not None:
                self.topology.destroy()

    # -- reads -------------------------------------------------------------

    def messages(self, node: str, timeout: float = 5.0) -> list[dict]:
        return http.get_json(self.url(node) + "/", timeout=timeout)["messages"]

    def health(self, node: str, timeout: float = 2.0) -> dict:
        return http.get_json(self.url(node) + "/health", timeout=timeout)

    def final_logs(self) -> dict[str, list[dict] | None]:
        logs: dict[str, list[dict] | None] = {}
        for name in self.names:
            try:
                logs[name] = self.messages(name, timeout=10)
            except http.RequestFailed:
                logs[name] = None
        return logs

    def converged(self) -> tuple[bool, str]:
        """Every node shows exactly the master's log, and the master has their ACKs."""
        try:
            master_log = self.messages(MASTER)
            health = self.health(MASTER)
            for name in self.secondary_names:
                theirs = self.messages(name)
                if theirs != master_log:
                    return False, f"{name} shows {len(theirs)} entries, master {len(master_log)}"
            acked = {s["id"]: s.get("acked_seq") for s in health.get("secondaries", [])}
            last_seq = health.get("last_seq", len(master_log))
            for name in self.secondary_names:
                if acked.get(name) != last_seq:
                    return False, f"master has {name} acked at {acked.get(name)}, last {last_seq}"
        except http.RequestFailed as exc:
            return False, str(exc)
        return True, f"{len(master_log)} entries everywhere"

    def wait_converged(self, timeout: float) -> tuple[bool, str, float]:
        started = time.monotonic()
        deadline = started + timeout
        while True:
            ok, detail = self.converged()
            if ok or time.monotonic() >= deadline:
                return ok, detail, time.monotonic() - started
            time.sleep(0.1)

    # -- faults ------------------------------------------------------------

    def kill(self, node: str) -> None:
        self.nodes[node].kill()

    def kill_all(self) -> None:
        """SIGKILL every node at the same moment (a power cut without the disk loss)."""
        nodes = list(self.nodes.values())
        for node in nodes:
            node.send_kill()
        for node in nodes:
            node.kill()  # reaps; the signal is already sent

    def wipe(self, node: str) -> None:
        """SIGKILL `node` and delete its data directory; it stays down until restarted."""
        n = self.nodes[node]
        n.kill()
        n.wipe()

    def restart(self, node: str) -> None:
        n = self.nodes[node]
        if n.alive():
            n.kill()
        n.start()

    def restart_all(self) -> None:
        """Start every node that is down (the master first), each with its data dir."""
        for name in self.names:
            if not self.nodes[name].alive():
                self.nodes[name].start()

    def pause(self, node: str) -> None:
        self.nodes[node].pause()

    def resume(self, node: str) -> None:
        self.nodes[node].resume()

    def _topo(self) -> Topology:
        if self.topology is None:
            raise FaultUnsupported("network faults need --mode netns")
        return self.topology

    def cut(self, a: str, b: str) -> None:
        self._topo().cut(a, b)

    def heal(self, a: str, b: str) -> None:
        self._topo().heal(a, b)

    def isolate(self, node: str) -> None:
        """Cut every link of `node`: from its peers and from clients."""
        topo = self._topo()
        for link in topo.links_of(node):
            topo.cut(link.a, link.b)

    def rejoin(self, node: str) -> None:
        topo = self._topo()
        for link in topo.links_of(node):
            topo.heal(link.a, link.b)

    def describe(self) -> dict:
        info: dict = {
            "mode": self.mode,
            "nodes": {n: node.url for n, node in self.nodes.items()},
            "data_dirs": {n: str(node.data_dir) for n, node in self.nodes.items()},
        }
        if self.topology is not None:
            topo = self.topology
            info["cut_method"] = topo.cut_method
            info["namespaces"] = {n: topo.ns(n) for n in self.names}
            info["links"] = [
                {
                    "between": [link.a, link.b],
                    "devs": [link.dev_a, link.dev_b],
                    "addrs": [link.addr_a, link.addr_b],
                    "kind": "client" if ROOT in (link.a, link.b) else "replication",
                }
                for link in topo.links
            ]
        return info
