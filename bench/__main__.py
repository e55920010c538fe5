"""replog's benchmark: `make bench` (or `python -m bench`).

Starts a local cluster (master + 2 secondaries, no delay) and a minimal Tornado
server (the ceiling) as separate processes, drives them with the load
generator (another process), and measures:

- writes/s and latency p50/p90/p99 for w=1, 2, 3 and "majority" at 1 and 16
  clients, each also as a ratio to the ceiling measured in the same run;
- batch append (100 messages per request) at w=3;
- GET / on the master and a secondary with 10,000 and 100,000 messages, and a
  page of 1,000 from the middle of 100,000;
- a fresh secondary's catch-up time for 100,000 messages;
- the master's resident memory per message (RSS growth from 10,000 to 100,000
  messages of 100 bytes).

After every load run it checks that every node holds exactly the acknowledged
writes, in the same order: a fast wrong answer is a failure (exit code 1).
Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import Request, urlopen

from chaos.cluster import free_port as chaos_free_port

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.5"


class BenchFailure(Exception):
    pass


def free_port(host: str = HOST) -> int:
    return chaos_free_port(host)


def http_json(method: str, url: str, body: object = None, timeout: float = 60) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(condition, timeout: float = 30.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise BenchFailure(f"timed out waiting for {what}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    url: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise BenchFailure("no VmRSS")


@dataclass
class Cluster:
    workdir: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Proc:
        log = (self.workdir / f"{name}.log").open("wb")
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        port = argv[argv.index("--port") + 1]
        proc = Proc(name, popen, f"http://{HOST}:{port}")
        self.procs.append(proc)
        return proc

    def master(self, expected: int) -> Proc:
        port = free_port()
        argv = [
            str(BIN / "replog-master"),
            "--host",
            HOST,
            "--port",
            str(port),
            "--secondaries",
            str(expected),
        ]
        return self.start("master", argv)

    def secondary(self, name: str, master: Proc) -> Proc:
        port = free_port()
        argv = [
            str(BIN / "replog-secondary"),
            "--host",
            HOST,
            "--port",
            str(port),
            "--master",
            master.url,
            "--id",
            name,
        ]
        return self.start(name, argv)

    def stop(self) -> None:
        for proc in self.procs:
            proc.popen.terminate()
        for proc in self.procs:
            try:
                proc.popen.wait(10)
            except subprocess.TimeoutExpired:
                proc.popen.kill()


@contextmanager
def cluster_of(workdir: Path, secondaries: int):  # type: ignore[no-untyped-def]
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(workdir)
    try:
        master = cluster.master(secondaries)
        nodes = [cluster.secondary(f"s{i + 1}", master) for i in range(secondaries)]
        wait_for(
            lambda: (
                http_json("GET", master.url + "/health")["status"] == "ok"
                and all(
                    s["status"] == "healthy"
                    for s in http_json("GET", master.url + "/health")["secondaries"]
                )
                and len(http_json("GET", master.url + "/health")["secondaries"]) == secondaries
            ),
            what="cluster up",
        )
        yield cluster, master, nodes
    finally:
        cluster.stop()


def load(
    url: str,
    *,
    concurrency: int,
    duration: float,
    w: object = 1,
    batch: int = 0,
    payload: int = 100,
    run: str = "r",
    record: bool = False,
) -> dict:
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--url",
        url,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--w",
        str(w),
        "--batch",
        str(batch),
        "--payload",
        str(payload),
        "--run",
        run,
    ]
    if record:
        argv.append("--record")
    out = subprocess.run(argv, capture_output=True, check=True, cwd=ROOT, text=True)
    return json.loads(out.stdout)


def all_messages(url: str) -> list[dict]:
    messages: list[dict] = []
    while True:
        page = http_json("GET", f"{url}/?from={len(messages) + 1}&limit=10000")["messages"]
        messages.extend(page)
        if len(page) < 10000:
            return messages


def verify(master: Proc, nodes: list[Proc], acked_ids: set[str]) -> None:
    """Every node holds exactly the acknowledged writes, in the same order."""
    expected = all_messages(master.url)
    ids = [m["id"] for m in expected]
    if len(ids) != len(set(ids)):
        raise BenchFailure("duplicate ids in the master's log")
    if set(ids) != acked_ids:
        raise BenchFailure(
            f"master log differs from acknowledged writes: {len(set(ids) - acked_ids)} "
            f"unacknowledged, {len(acked_ids - set(ids))} missing"
        )
    if [m["seq"] for m in expected] != list(range(1, len(expected) + 1)):
        raise BenchFailure("the master's log has gaps")
    for node in nodes:
        wait_for(
            lambda node=node: (
                http_json("GET", node.url + "/health")["contiguous_seq"] >= len(expected)
            ),
            what=f"{node.name} converged",
        )
        if all_messages(node.url) != expected:
            raise BenchFailure(f"{node.name} differs from the master")


def median_run(runs: list[dict]) -> dict:
    """The run with the median throughput: this machine's speed varies run to run."""
    ordered = sorted(runs, key=lambda r: r["requests_per_s"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["runs_requests_per_s"] = [r["requests_per_s"] for r in runs]
    return chosen


def acked_ids_of(result: dict) -> set[str]:
    ids: set[str] = set()
    for answer in result.pop("acked", []):
        if "seqs" in answer:
            raise BenchFailure("batch answers are not recorded by id")
        ids.add(answer["id"])
    return ids


def time_get(url: str, repeat: int = 15) -> float:
    """Median milliseconds for one GET (body read and parsed by the client)."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        with urlopen(url, timeout=60) as response:
            response.read()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 3)


def fill(master: Proc, target: int, payload: int = 100) -> None:
    """Append messages in batches of 1,000 until the log holds `target`."""
    have = http_json("GET", master.url + "/health")["last_seq"]
    text = "y" * payload
    while have < target:
        n = min(1000, target - have)
        http_json("POST", master.url + "/", {"messages": [text] * n, "w": 1})
        have += n


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run(args: argparse.Namespace) -> dict:
    report: dict = {
        "machine": machine(),
        "duration_s": args.duration,
        "repeat": args.repeat,
        "payload_bytes": args.payload,
        "load": [],
        "get": {},
    }
    with tempfile.TemporaryDirectory(prefix="replog-bench-") as tmp:
        workdir = Path(tmp)
        # 1. The ceiling.
        ceiling_port = free_port()
        ceiling = subprocess.Popen(
            [sys.executable, "-m", "bench.ceiling", "--host", HOST, "--port", str(ceiling_port)],
            cwd=ROOT,
        )
        try:
            url = f"http://{HOST}:{ceiling_port}"
            wait_for(
                lambda: socket.create_connection((HOST, ceiling_port), 1).close() is None,
                what="ceiling up",
            )
            report["ceiling"] = {
                c: median_run(
                    [
                        load(url, concurrency=c, duration=args.duration, payload=args.payload)
                        for _ in range(args.repeat)
                    ]
                )
                for c in (1, 16)
            }
        finally:
            ceiling.terminate()
            ceiling.wait(10)

        # 2. Writes against the cluster, checked after every run.
        with ExitStack() as stack:
            cluster, master, nodes = stack.enter_context(cluster_of(workdir / "load", 2))
            acked: set[str] = set()
            for w in (1, 2, 3, "majority"):
                for c in (1, 16):
                    runs = []
                    for attempt in range(args.repeat):
                        tag = f"w{w}-c{c}-{attempt}"
                        result = load(
                            master.url,
                            concurrency=c,
                            duration=args.duration,
                            w=w,
                            run=tag,
                            record=True,
                            payload=args.payload,
                        )
                        if result["errors"]:
                            raise BenchFailure(f"{tag}: {result['errors']} errors")
                        acked |= acked_ids_of(result)
                        verify(master, nodes, acked)
                        runs.append(result)
                    result = median_run(runs)
                    ceiling_rps = report["ceiling"][c]["requests_per_s"]
                    result.update(
                        w=w, concurrency=c, ratio=round(result["requests_per_s"] / ceiling_rps, 3)
                    )
                    report["load"].append(result)
                    print(
                        f"  w={w} c={c}: {result['runs_requests_per_s']} writes/s", file=sys.stderr
                    )
            batch = load(
                master.url,
                concurrency=16,
                duration=args.duration,
                w=3,
                batch=100,
                run="batch",
                payload=args.payload,
            )
            if batch["errors"]:
                raise BenchFailure(f"batch: {batch['errors']} errors")
            report["batch"] = batch
            expected = http_json("GET", master.url + "/health")["last_seq"]
            for node in nodes:
                wait_for(
                    lambda node=node: (
                        http_json("GET", node.url + "/health")["contiguous_seq"] == expected
                    ),
                    what="batch converged",
                )
                if all_messages(node.url) != all_messages(master.url):
                    raise BenchFailure(f"{node.name} differs from the master after batches")

        # 3. Reads, catch-up and memory on a fresh cluster.
        with ExitStack() as stack:
            cluster, master, nodes = stack.enter_context(cluster_of(workdir / "data", 2))
            for size in (10_000, 100_000):
                if size == 100_000:
                    rss_before = master.rss_bytes()
                fill(master, size)
                if size == 100_000:
                    # Measured before any 100,000-message read, whose transient
                    # buffers would count as growth.
                    rss_growth = master.rss_bytes() - rss_before
                wait_for(
                    lambda size=size: all(
                        http_json("GET", n.url + "/health")["contiguous_seq"] == size for n in nodes
                    ),
                    timeout=120,
                    what=f"{size} replicated",
                )
                report["get"][size] = {
                    "master_ms": time_get(master.url + "/"),
                    "secondary_ms": time_get(nodes[0].url + "/"),
                }
            mid = 50_000
            report["get"]["page_1000_ms"] = {
                "master_ms": time_get(f"{master.url}/?from={mid}&limit=1000"),
                "secondary_ms": time_get(f"{nodes[0].url}/?from={mid}&limit=1000"),
            }
            added = 90_000
            report["memory"] = {
                "messages": added,
                "message_bytes": 100,
                "rss_growth_bytes": rss_growth,
                "bytes_per_message": round(rss_growth / added, 1),
                "beyond_text_bytes": round(rss_growth / added - 100, 1),
            }
            fresh = cluster.secondary("fresh", master)
            started = time.perf_counter()
            wait_for(
                lambda: http_json("GET", fresh.url + "/health")["contiguous_seq"] == 100_000,
                timeout=120,
                what="catch-up",
            )
            report["catch_up_100k_s"] = round(time.perf_counter() - started, 3)
            if all_messages(fresh.url) != all_messages(master.url):
                raise BenchFailure("the fresh secondary differs from the master")
    return report


def table(report: dict) -> str:
    ceiling = report["ceiling"]
    lines = [
        f"machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"Python {report['machine']['python']}; median of {report['repeat']} runs of "
        f"{report['duration_s']} s each",
        "",
        "| load | clients | writes/s | p50 ms | p90 ms | p99 ms | x ceiling |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in (1, 16):
        r = ceiling[c]
        lines.append(
            f"| ceiling (bare Tornado) | {c} | {r['requests_per_s']:.0f} | "
            f"{r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | 1.00 |"
        )
    for r in report["load"]:
        lines.append(
            f"| w={r['w']} | {r['concurrency']} | {r['requests_per_s']:.0f} | "
            f"{r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['ratio']:.2f} |"
        )
    b = report["batch"]
    lines.append(
        f"| batch of 100, w=3 | 16 | {b['messages_per_s']:.0f} msgs/s "
        f"({b['requests_per_s']:.0f} req/s) | {b['p50_ms']} | {b['p90_ms']} | "
        f"{b['p99_ms']} | |"
    )
    g = report["get"]
    lines += [
        "",
        "| read | master ms | secondary ms |",
        "|---|---|---|",
        f"| GET / with 10,000 messages | {g[10_000]['master_ms']} | {g[10_000]['secondary_ms']} |",
        f"| GET / with 100,000 messages | {g[100_000]['master_ms']} | "
        f"{g[100_000]['secondary_ms']} |",
        f"| GET /?from=50000&limit=1000 (of 100,000) | {g['page_1000_ms']['master_ms']} | "
        f"{g['page_1000_ms']['secondary_ms']} |",
        "",
        f"catch-up of 100,000 messages by a fresh secondary: {report['catch_up_100k_s']} s",
        f"master memory (RSS growth from 10,000 to 100,000 messages): "
        f"{report['memory']['bytes_per_message']} bytes per 100-byte message "
        f"({report['memory']['beyond_text_bytes']} beyond the text)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="replog benchmark")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load run")
    parser.add_argument(
        "--payload", type=int, default=100, help="bytes per message in the load runs"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per configuration; the table shows the median"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    try:
        report = run(args)
    except BenchFailure as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / time.strftime("bench-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
