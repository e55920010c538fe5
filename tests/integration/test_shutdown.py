"""SIGTERM and SIGINT stop every node within 2 s, exit 0, no traceback: many rounds, under load.

Each of 32 rounds restarts one cluster (a master and three secondaries, on
disk, on the same data as the round before; s3 holds batches 0.2 s with
--delay) and signals every node back to back while writer threads post with
w=1..3. Rounds vary the signal, its order over the nodes, a second signal,
and the moment: under load, right after the master answers (secondaries
still starting, registering or dialling), and as soon as a process catches
SIGTERM at all (imports, flags). A second test signals a master at moments
spread over its start-up with a log of 300,000 entries to replay.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path

from support.cluster import Cluster, Node
from support.waiting import wait_until
from tools.harness import http
from tools.harness.net import free_port

# A node bounds its own stop (common.process.STOP_TIMEOUT_SECONDS, 1.5 s, so the README's
# "within 2 s"), and says so if the bound cut the stop short (`stop_timed_out`, one of DIRTY:
# a failure). This deadline only catches a node that never exits: generous, so that a
# machine starved of CPU (several test runs on 2 cores) cannot fail a correct stop.
STOP_SECONDS = 10.0
# What a clean stop never prints (tracebacks, asyncio's complaints about tasks and futures).
DIRTY = (
    "Traceback",
    "Exception ignored",
    "was never retrieved",
    "Task was destroyed",
    "Uncaught exception",
    "Exception in callback",
    "stop_timed_out",
)
SECONDARIES = ("s1", "s2", "s3")
FAST = ["--heartbeat-interval", "0.1", "--suspect-after", "0.3", "--unhealthy-after", "1"]


def catches_sigterm(pid: int) -> bool:
    """The process has a handler for SIGTERM (Linux: SigCgt in /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True  # gone already: nothing left to wait for
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


class Writers:
    """Threads posting w=1..3 as fast as the master answers, until stopped."""

    def __init__(self, url: str, count: int = 2) -> None:
        self.url = url
        self.stopping = threading.Event()
        self.answered = 0
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(count)
        ]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(10)

    def _run(self, n: int) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        i = 0
        while not self.stopping.is_set():
            i += 1
            body = json.dumps({"message": f"w{n}-{i}", "w": 1 + i % 3, "wtimeout": 3000})
            conn = HTTPConnection(host, int(port), timeout=5)
            try:
                conn.request("POST", "/", body, {"Content-Type": "application/json"})
                if conn.getresponse().status in (200, 201):
                    self.answered += 1
            except OSError:
                time.sleep(0.01)  # the master is stopping (or not up yet)
            finally:
                conn.close()


@dataclass
class Round:
    sig: int = signal.SIGTERM
    order: str = "master-first"  # master-first | master-last | shuffled
    moment: str = "load"  # load | registering | starting
    twice: bool = False


ROUNDS = [
    Round(),
    Round(signal.SIGINT, order="master-last"),
    Round(moment="registering", twice=True),
    Round(moment="starting", order="shuffled"),
    Round(),
    Round(signal.SIGINT),
    Round(order="master-first"),
    Round(order="master-last", twice=True),
    Round(moment="registering"),
    Round(signal.SIGINT, order="shuffled"),
    Round(moment="starting"),
    Round(signal.SIGTERM, order="shuffled", twice=True),
    Round(signal.SIGINT, moment="registering", order="master-last"),
    Round(moment="starting", sig=signal.SIGINT),
    Round(order="master-first", twice=True),
    Round(signal.SIGINT),
]


def start(cluster: Cluster, master_port: int, ports: dict[str, int], wait: bool) -> None:
    master = cluster.master
    if master is None:
        cluster.start_master(*FAST, port=master_port)
        for name in SECONDARIES:
            cluster.add_secondary(
                name, delay=0.2 if name == "s3" else 0.0, port=ports[name], wait=False
            )
    else:
        master.start()
        for name in SECONDARIES:
            cluster.secondaries[name].start()
    if wait:
        wait_until(lambda: http.get(cluster.master_url + "/health").status == 200, what="master up")


def signal_all(nodes: list[Node], plan: Round, rng: random.Random) -> dict[str, float]:
    """Signal each node (the master is first in `nodes`) back to back, in `plan.order`."""
    if plan.order == "master-last":
        nodes = nodes[1:] + nodes[:1]
    elif plan.order == "shuffled":
        nodes = rng.sample(nodes, len(nodes))
    sent = {}
    for node in nodes:
        node.signal(plan.sig)
        sent[node.name] = time.monotonic()
    if plan.twice:
        for node in nodes:
            if node.proc.poll() is None:
                node.signal(plan.sig)
    return sent


def test_every_node_stops_cleanly_every_time(cluster_factory):
    rng = random.Random(8)
    cluster = cluster_factory(secondaries=3)
    master_port = free_port(cluster.host)
    ports = {name: free_port(cluster.host) for name in SECONDARIES}
    for number, plan in enumerate(ROUNDS * 2):
        offsets = {}
        for node in [cluster.master, *cluster.secondaries.values()]:
            if node is not None:
                offsets[node.name] = node.log_path.stat().st_size
        start(cluster, master_port, ports, wait=plan.moment != "starting")
        nodes = list(cluster.nodes())
        for node in nodes:
            offsets.setdefault(node.name, 0)
        with Writers(cluster.master_url, count=3) as writers:
            if plan.moment == "load":
                for name in SECONDARIES:
                    cluster.wait_connected(name)
                answered = writers.answered
                wait_until(lambda a=answered: writers.answered > a + 20, what="writes answered")
            elif plan.moment == "starting":
                for node in nodes:
                    wait_until(lambda n=node: catches_sigterm(n.proc.pid), 10, 0.001)
            sent = signal_all(nodes, plan, rng)
            for node in nodes:
                left = sent[node.name] + STOP_SECONDS - time.monotonic()
                try:
                    code = node.proc.wait(max(left, 0.01))
                except subprocess.TimeoutExpired:
                    node.kill()
                    code = f"still running {STOP_SECONDS}s after {plan}"
                output = node.log_path.read_bytes()[offsets[node.name] :].decode(errors="replace")
                assert code == 0, f"round {number} {plan}: {node.name} exit {code}\n{output}"
                dirty = [word for word in DIRTY if word in output]
                assert not dirty, f"round {number} {plan}: {node.name} printed {dirty}\n{output}"
                assert '"event":"stopping"' in output or plan.moment == "starting", output
                # Stopped in order, unless the signal came before it served.
                assert '"event":"stopped"' in output or '"during":"start-up"' in output, output


def test_a_signal_at_any_moment_of_start_up_exits_0(cluster_factory):
    """Imports, flags, replaying a log of 300,000 entries, opening: exit 0, and the log is whole."""
    cluster = cluster_factory()
    master = cluster.start_master()
    for i in range(30):
        batch = {"messages": [f"m{i}-{j}" for j in range(10_000)], "w": 1}
        assert http.post(cluster.master_url + "/", batch).status == 201
    master.signal(signal.SIGTERM)
    assert master.proc.wait(STOP_SECONDS) == 0
    # From the moment the process catches signals: during imports (~0.2 s here),
    # then the replay (~0.3 s), then opening and listening.
    for delay, sig in [
        (0.0, signal.SIGINT),
        (0.15, signal.SIGTERM),
        (0.25, signal.SIGINT),
        (0.35, signal.SIGTERM),
        (0.45, signal.SIGTERM),
        (0.6, signal.SIGINT),
    ]:
        offset = master.log_path.stat().st_size
        master.start()
        wait_until(lambda: catches_sigterm(master.proc.pid), 10, 0.001)
        time.sleep(delay)  # (any moment must do: this only spreads the signals out)
        master.signal(sig)
        code = master.proc.wait(STOP_SECONDS)
        output = master.log_path.read_bytes()[offset:].decode(errors="replace")
        assert code == 0, output
        assert not [word for word in DIRTY if word in output], output
    master.start()
    wait_until(lambda: master.health()["last_seq"] == 300_000, what="the whole log")
