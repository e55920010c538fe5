"""Node processes for the benchmark: start, kill, restart, and read their logs afterwards.

A cluster's nodes keep their log in memory (`--in-memory` on every node) or
on disk (`--data-dir` under the cluster's own fresh directory, `--fsync
always`). Each node's output goes to `<workdir>/<name>.log`; `log_issues()`
summarises the warnings, errors and non-JSON lines (tracebacks) found there.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tools.harness import http, net
from tools.harness.process import BIN, NodeProcess, stop_all
from tools.harness.waiting import WaitFailed, wait_until

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.5"
MEMORY = "memory"
DURABLE = "durable"
STORAGES = (MEMORY, DURABLE)
STORAGE_LABEL = {MEMORY: "in-memory", DURABLE: "durable"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Settings are passed as flags: a stray REPLOG_IN_MEMORY=1 must not change a mode.
DROP_ENV_PREFIX = "REPLOG_"


class BenchFailure(Exception):
    pass


def free_port(host: str = HOST) -> int:
    return net.free_port(host)


def http_json(method: str, url: str, body: object = None, timeout: float = 60) -> dict:
    """The JSON of a 2xx answer (orjson both ways: bodies here are up to megabytes)."""
    raw = None if body is None else orjson.dumps(body)
    resp = http.attempt(method, url, raw=raw, timeout=timeout)
    if not 200 <= resp.status < 300:
        raise http.RequestFailed("status", f"{method} {url}: {resp.status} {resp.raw[:200]!r}")
    return orjson.loads(resp.raw)


def wait_for(
    condition: Callable[[], object], timeout: float = 30.0, what: str = "", interval: float = 0.01
) -> None:
    """Until `condition` holds; a node not answering (yet) counts as "not yet"."""
    try:
        wait_until(condition, timeout, interval, what, ignore=(OSError, http.RequestFailed))
    except WaitFailed as exc:
        raise BenchFailure(str(exc)) from None


@dataclass
class Proc(NodeProcess):
    """A node process, with what the benchmark reads of it from /proc."""

    killed: bool = False

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process, all its threads (fdatasync's included)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def socket_count(self) -> int:
        """Open sockets of the process (its listening ones and every connection)."""
        count = 0
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                count += os.readlink(fd).startswith("socket:")
        return count

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise BenchFailure("no VmRSS")


@dataclass
class Cluster:
    workdir: Path
    storage: str = MEMORY
    procs: list[Proc] = field(default_factory=list)
    # Processes that exited by themselves (not stopped by the benchmark).
    crashed: list[str] = field(default_factory=list)
    # As a real deployment runs: internal endpoints need the token (given through the
    # environment, out of `ps`), so the nodes log no `no_cluster_token` warning.
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    # False: every node runs through bench.no_metrics_node (metrics replaced by a no-op).
    metrics: bool = True
    # True: every node runs through bench.no_metrics_node --switchable (metrics that
    # SIGUSR1 switches off and SIGUSR2 on: `switch_metrics`).
    switchable: bool = False

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)

    def data_dir(self, name: str) -> Path:
        return self.workdir / "data" / name

    def storage_args(self, name: str) -> list[str]:
        if self.storage == MEMORY:
            return ["--in-memory"]
        return ["--data-dir", str(self.data_dir(name)), "--fsync", "always"]

    def command(self, role: str) -> list[str]:
        """How a node of `role` starts: its installed entry point, or without metrics."""
        if self.switchable:
            return [sys.executable, "-m", "bench.no_metrics_node", "--switchable", role]
        if self.metrics:
            return [str(BIN / f"replog-{role}")]
        return [sys.executable, "-m", "bench.no_metrics_node", role]

    def start(self, name: str, argv: list[str]) -> Proc:
        port = argv[argv.index("--port") + 1]
        url = f"http://{HOST}:{port}"
        env = {"REPLOG_CLUSTER_TOKEN": self.token}
        if self.switchable or not self.metrics:  # run in its log's folder: bench from ROOT
            env["PYTHONPATH"] = str(ROOT)
        proc = Proc(
            name,
            argv,
            url,
            self.workdir / f"{name}.log",
            env=env,
            drop_env_prefix=DROP_ENV_PREFIX,
        )
        self.procs.append(proc.start())
        return proc

    def master(self, expected: int, extra: list[str] | None = None) -> Proc:
        return self.start("master", self.master_argv(expected, extra))

    def master_argv(self, expected: int, extra: list[str] | None = None) -> list[str]:
        return [
            *self.command("master"),
            "--host",
            HOST,
            "--port",
            str(free_port()),
            "--secondaries",
            str(expected),
            *self.storage_args("master"),
            *(extra or []),
        ]

    def secondary(self, name: str, master: Proc) -> Proc:
        argv = [
            *self.command("secondary"),
            "--host",
            HOST,
            "--port",
            str(free_port()),
            "--master",
            master.url,
            "--id",
            name,
            *self.storage_args(name),
        ]
        return self.start(name, argv)

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        """Stop one node the hard way (SIGKILL: no clean shutdown, as in a crash)."""
        proc.killed = True
        proc.signal(sig)
        assert proc.proc is not None
        proc.proc.wait(10)

    def stop(self) -> None:
        running = []
        for proc in self.procs:
            if proc.killed:
                continue
            if not proc.alive():
                self.crashed.append(f"{proc.name} (pid {proc.pid}) exited {proc.returncode}")
                continue
            running.append(proc)
        stop_all(running)

    def log_issues(self) -> list[dict]:
        """Warnings, errors and non-JSON lines in every node's output, by node and event."""
        issues = []
        for path in sorted(self.workdir.glob("*.log")):
            counts: Counter[tuple[str, str]] = Counter()
            examples: dict[tuple[str, str], str] = {}
            with path.open("rb") as lines:
                for raw in lines:
                    if raw.startswith(b"{"):
                        if not (
                            b'"level":"warning"' in raw
                            or b'"level":"error"' in raw
                            or b'"level":"critical"' in raw
                        ):
                            continue
                        try:
                            doc = json.loads(raw)
                            key = (doc.get("level", "?"), doc.get("event", "?"))
                        except ValueError:
                            key = ("unparsed", "?")
                    else:
                        key = ("stderr", "non-JSON line")
                    counts[key] += 1
                    examples.setdefault(key, raw.decode(errors="replace").strip()[:300])
            for (level, event), count in sorted(counts.items()):
                issues.append(
                    {
                        "node": path.stem,
                        "level": level,
                        "event": event,
                        "count": count,
                        "example": examples[(level, event)],
                    }
                )
        return issues


def dir_bytes(directory: Path) -> tuple[int, int]:
    """(apparent size, allocated size) of every file under `directory`."""
    apparent = allocated = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            st = os.stat(os.path.join(root, name))
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


def filesystem_of(path: Path) -> str:
    """The file system type and device that hold `path` (from /proc/mounts)."""
    best, found = "", "unknown"
    target = str(path.resolve())
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return found
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        device, point, kind = parts[0], parts[1], parts[2]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, found = point, f"{kind} on {device}"
    return found
