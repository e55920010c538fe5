"""replog's benchmark: `make bench` (or `python -m bench`).

Starts local clusters (master + 2 secondaries, no delay) and a minimal Tornado
server (the ceiling) as separate processes, drives them with the load
generator (another process), and measures, for both storage modes in the same
run (in-memory: `--in-memory` on every node; durable: `--data-dir` under a
fresh temporary directory per cluster, `--fsync always`):

- writes/s and latency p50/p90/p99 for w=1, 2, 3 and "majority" at 1 and 16
  clients, each also as a ratio to the ceiling measured in the same run, and
  durable as a ratio to in-memory;
- batch append (100 messages per request) at w=3, 16 clients;
- for durable runs at 16 clients: each node's fdatasync count, entries per
  sync and sync latency (from /health "sync", read before and after the run).

The two clusters run side by side and their runs alternate, so drift of this
machine's speed hits both alike. Then, on durable clusters:

- GET / on the master and a secondary with 10,000 and 100,000 messages, and a
  page of 1,000 from the middle of 100,000;
- a fresh secondary's catch-up time for 100,000 messages;
- the master's resident memory per message (RSS growth from 10,000 to 100,000
  messages of 100 bytes);
- restart: a node holding 1,000,000 messages of 100 bytes, killed with SIGKILL
  and started on its data directory, timed until it serves the last message
  (bench.restart), including the worst case of one log record per entry.

Readers, on durable clusters (and in-memory for the idle readers):

- stream delay: sequential writes (w=1, then w=2) to the master, each timed
  from its answer to its event's arrival on a secondary's `GET /stream`
  (bench.stream_delay), p50 and p99;
- writes/s at w=2 with 16 clients, with 1,000 idle long polls held on the
  master (bench.idle_readers) and without, runs alternating.

The metrics' cost: writes/s and the nodes' CPU per write at w=2 with 16 clients,
on one cluster per storage whose nodes run through bench.no_metrics_node
--switchable: the real metrics, switched off and on by signal round by round;
with metrics, without, and with metrics while every node's /metrics is scraped
each second; runs interleaved, in-memory and durable.

`--parts` picks what to measure (e.g. `--parts stream,idle` for the readers alone).

After every load run it checks that every node durably holds exactly the
acknowledged writes, each at the seq its answer named, in the same order: a
fast wrong answer is a failure (exit code 1). Prints tables and writes JSON
to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench import restart
from bench.cluster import (
    DURABLE,
    HOST,
    MEMORY,
    STORAGE_LABEL,
    STORAGES,
    BenchFailure,
    Cluster,
    Proc,
    filesystem_of,
    free_port,
    http_json,
    wait_for,
)
from bench.idle_readers import FAR_SEQ, raise_fd_limit
from replog.common import metrics
from replog.common.metrics import NodeMetrics
from tools.harness import http
from tools.harness.process import NodeProcess

ROOT = Path(__file__).resolve().parent.parent
W_VALUES: tuple[object, ...] = (1, 2, 3, "majority")
CLIENTS = (1, 16)
# The issue's targets, checked in the comparison table.
TARGET_WRITES_RATIO = 0.9
TARGET_P50_DIFF_MS = 0.5
TARGET_BATCH_MSGS = 50_000
TARGET_RESTART_S = 3.0
TARGET_RESTART_MESSAGES = 1_000_000
# Stream delay: sequential writes at each of these w, read on a secondary's GET /stream.
STREAM_DELAY_W = (1, 2)
PARTS = ("writes", "reads", "stream", "idle", "metrics", "restart")
# Idle long-poll readers: the write load they are measured under, and how long each waits
# (the nodes' default --max-wait: each answers once in that time and is re-armed).
IDLE_READERS_W = 2
IDLE_READERS_CLIENTS = 16
IDLE_READER_WAIT_S = 30
# The metrics' cost (the issue: < 3% of throughput at 16 clients): w=2, 16 clients, on
# clusters with metrics, without (bench.no_metrics_node), and with metrics scraped.
METRICS_W = 2
METRICS_CLIENTS = 16
METRICS_TARGET_OVERHEAD_PCT = 3.0
SCRAPE_INTERVAL_S = 1.0
METRICS_VARIANTS = ("off", "on", "scraped")

_started = time.monotonic()


def progress(text: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f} s] {text}", file=sys.stderr, flush=True)


@contextmanager
def cluster_of(  # type: ignore[no-untyped-def]
    workdir: Path,
    secondaries: int,
    storage: str,
    report: dict,
    *,
    metrics: bool = True,
    switchable: bool = False,
):
    cluster = Cluster(workdir, storage, metrics=metrics, switchable=switchable)
    try:
        master = cluster.master(secondaries)
        nodes = [cluster.secondary(f"s{i + 1}", master) for i in range(secondaries)]

        def up() -> bool:
            health = http_json("GET", master.url + "/health")
            return (
                health["status"] == "ok"
                and len(health["secondaries"]) == secondaries
                and all(s["status"] == "healthy" for s in health["secondaries"])
            )

        wait_for(up, what=f"{workdir.name} cluster up")
        for proc in (master, *nodes):
            if http_json("GET", proc.url + "/health")["storage"] != (
                "memory" if storage == MEMORY else "disk"
            ):
                raise BenchFailure(f"{workdir.name}/{proc.name} does not use {storage} storage")
        yield cluster, master, nodes
    finally:
        cluster.stop()
        note_node_logs(report, workdir.name, cluster.log_issues(), cluster.crashed)


def note_node_logs(report: dict, where: str, issues: list[dict], crashed: list[str]) -> None:
    report["node_log_issues"].extend({"cluster": where, **issue} for issue in issues)
    report["crashed"].extend(f"{where}/{c}" for c in crashed)


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


def acked_of(result: dict) -> dict[str, int]:
    """id -> seq of every acknowledged write of a load run (removed from `result`)."""
    acked: dict[str, int] = {}
    for answer in result.pop("acked", []):
        if "seqs" in answer:
            ids, seqs = answer["sent_ids"], answer["seqs"]
            if len(ids) != len(seqs) or answer.get("duplicates"):
                raise BenchFailure(f"batch answer does not match its request: {answer}")
            acked.update(zip(ids, seqs, strict=True))
        else:
            if answer.get("duplicate"):
                raise BenchFailure(f"a unique id was answered as a duplicate: {answer}")
            acked[answer["id"]] = answer["seq"]
    return acked


def verify(master: Proc, nodes: list[Proc], acked: dict[str, int]) -> None:
    """Every node durably holds exactly the acknowledged writes, at their seqs, in order."""
    expected = all_messages(master.url)
    ids = [m["id"] for m in expected]
    if len(ids) != len(set(ids)):
        raise BenchFailure("duplicate ids in the master's log")
    if set(ids) != acked.keys():
        raise BenchFailure(
            f"master log differs from acknowledged writes: {len(set(ids) - acked.keys())} "
            f"unacknowledged, {len(acked.keys() - set(ids))} missing"
        )
    if [m["seq"] for m in expected] != list(range(1, len(expected) + 1)):
        raise BenchFailure("the master's log has gaps")
    moved = [m for m in expected if acked[m["id"]] != m["seq"]]
    if moved:
        raise BenchFailure(f"{len(moved)} writes are not at the seq their answer named")
    if http_json("GET", master.url + "/health")["durable_seq"] < len(expected):
        raise BenchFailure("the master has not synced every acknowledged write")
    for node in nodes:
        wait_for(
            lambda node=node: (
                http_json("GET", node.url + "/health")["durable_seq"] >= len(expected)
            ),
            what=f"{node.name} converged",
        )
        if all_messages(node.url) != expected:
            raise BenchFailure(f"{node.name} differs from the master")


def sync_snapshot(procs: list[Proc]) -> dict:
    return {p.name: http_json("GET", p.url + "/health")["sync"] for p in procs}


def sync_delta(before: dict, after: dict) -> dict:
    """Syncs and entries during a run; latency percentiles as the node reports them after it."""
    out = {}
    for name, end in after.items():
        start = before[name]
        syncs = end["syncs"] - start["syncs"]
        entries = end["synced_entries"] - start["synced_entries"]
        out[name] = {
            "syncs": syncs,
            "synced_entries": entries,
            "entries_per_sync": round(entries / syncs, 2) if syncs else None,
            "sync_ms_p50": end["sync_ms_p50"],
            "sync_ms_p99": end["sync_ms_p99"],
        }
    return out


def checked_run(
    storage: str, master: Proc, nodes: list[Proc], acked: dict[str, int], **kwargs: object
) -> dict:
    """One load run, verified; durable runs also get the nodes' sync figures."""
    procs = [master, *nodes]
    before = sync_snapshot(procs) if storage == DURABLE else None
    cpu_before = {p.name: p.cpu_seconds() for p in procs}
    result = load(master.url, record=True, **kwargs)  # type: ignore[arg-type]
    # Node CPU per request of this run (read before the verification's reads).
    result["cpu_us_per_request"] = {
        p.name: round((p.cpu_seconds() - cpu_before[p.name]) / result["requests"] * 1e6)
        for p in procs
    }
    if result["errors"]:
        raise BenchFailure(f"{kwargs['run']}: {result['errors']} errors")
    acked.update(acked_of(result))
    verify(master, nodes, acked)
    if before is not None:
        result["sync"] = sync_delta(before, sync_snapshot(procs))
    return result


def median_run(runs: list[dict]) -> dict:
    """The run with the median throughput: this machine's speed varies run to run."""
    ordered = sorted(runs, key=lambda r: r["requests_per_s"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["runs_requests_per_s"] = [r["requests_per_s"] for r in runs]
    chosen["runs_p50_ms"] = [r["p50_ms"] for r in runs]
    return chosen


def storage_order(attempt: int) -> tuple[str, ...]:
    """Alternate which storage goes first, so neither always runs on a warmer machine."""
    return STORAGES if attempt % 2 == 0 else tuple(reversed(STORAGES))


def compare(memory: dict, durable: dict) -> dict:
    return {
        "requests_ratio": round(durable["requests_per_s"] / memory["requests_per_s"], 3),
        "messages_ratio": round(durable["messages_per_s"] / memory["messages_per_s"], 3),
        "p50_diff_ms": round(durable["p50_ms"] - memory["p50_ms"], 3),
    }


def time_get(url: str, repeat: int = 15) -> float:
    """Median milliseconds for one GET (body read and parsed by the client)."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        http.get(url, timeout=60)  # reads the whole body
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


def measure_ceiling(args: argparse.Namespace, workdir: Path, report: dict) -> None:
    port = free_port()
    url = f"http://{HOST}:{port}"
    argv = [sys.executable, "-m", "bench.ceiling", "--host", HOST, "--port", str(port)]
    ceiling = NodeProcess("ceiling", argv, url, workdir / "ceiling.log", cwd=ROOT).start()
    try:
        wait_for(
            lambda: socket.create_connection((HOST, port), 1).close() is None, what="ceiling up"
        )
        report["ceiling"] = {
            c: median_run(
                [
                    load(url, concurrency=c, duration=args.duration, payload=args.payload)
                    for _ in range(args.repeat)
                ]
            )
            for c in CLIENTS
        }
    finally:
        ceiling.stop()


def measure_writes(args: argparse.Namespace, workdir: Path, report: dict) -> None:
    """Every write configuration on an in-memory and a durable cluster, runs alternating."""
    with ExitStack() as stack:
        clusters = {
            s: stack.enter_context(cluster_of(workdir / f"load-{s}", 2, s, report))
            for s in STORAGES
        }
        acked: dict[str, dict[str, int]] = {storage: {} for storage in STORAGES}
        configs: list[tuple[object, int, int]] = [(w, c, 0) for w in W_VALUES for c in CLIENTS]
        configs.append((3, 16, 100))
        for w, c, batch in configs:
            runs: dict[str, list[dict]] = {storage: [] for storage in STORAGES}
            for attempt in range(args.repeat):
                for storage in storage_order(attempt):
                    _cluster, master, nodes = clusters[storage]
                    tag = f"{storage}-w{w}-c{c}-b{batch}-{attempt}"
                    runs[storage].append(
                        checked_run(
                            storage,
                            master,
                            nodes,
                            acked[storage],
                            concurrency=c,
                            duration=args.duration,
                            w=w,
                            batch=batch,
                            run=tag,
                            payload=args.payload,
                        )
                    )
            results = {}
            for storage in STORAGES:
                result = median_run(runs[storage])
                ceiling_rps = report["ceiling"][c]["requests_per_s"]
                result.update(
                    storage=storage,
                    w=w,
                    concurrency=c,
                    batch=batch,
                    ratio=round(result["requests_per_s"] / ceiling_rps, 3),
                )
                results[storage] = result
            results[DURABLE]["vs_memory"] = compare(results[MEMORY], results[DURABLE])
            if batch:
                report["batch"] = results
            else:
                report["load"].extend(results[s] for s in STORAGES)
            unit = "msgs/s" if batch else "writes/s"
            key = "messages_per_s" if batch else "requests_per_s"
            progress(
                f"{'batch of ' + str(batch) + ', ' if batch else ''}w={w} c={c}: "
                + "; ".join(
                    f"{STORAGE_LABEL[s]} {[round(r[key]) for r in runs[s]]} {unit}"
                    for s in STORAGES
                )
            )


def measure_reads(args: argparse.Namespace, workdir: Path, report: dict) -> None:
    """Reads, catch-up and memory on a fresh durable cluster."""
    with ExitStack() as stack:
        cluster, master, nodes = stack.enter_context(
            cluster_of(workdir / "reads-durable", 2, DURABLE, report)
        )
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
            lambda: http_json("GET", fresh.url + "/health")["durable_seq"] == 100_000,
            timeout=120,
            what="catch-up",
        )
        report["catch_up_100k_s"] = round(time.perf_counter() - started, 3)
        if all_messages(fresh.url) != all_messages(master.url):
            raise BenchFailure("the fresh secondary differs from the master")


def measure_stream_delay(args: argparse.Namespace, workdir: Path, report: dict) -> None:
    """A write's answer to its event on a secondary's `GET /stream`, per w (durable)."""
    with cluster_of(workdir / "stream-durable", 2, DURABLE, report) as (_cluster, master, nodes):
        argv = [
            sys.executable,
            "-m",
            "bench.stream_delay",
            "--master",
            master.url,
            "--reader",
            nodes[0].url,
            "--writes",
            str(args.stream_writes),
            "--payload",
            str(args.payload),
        ]
        for w in STREAM_DELAY_W:
            argv += ["--w", str(w)]
        out = subprocess.run(argv, capture_output=True, cwd=ROOT, text=True)
        if out.returncode:
            raise BenchFailure(f"stream delay: {out.stderr.strip()[-500:]}")
        report["stream_delay"] = list(json.loads(out.stdout).values())
    progress(
        "stream delay: "
        + "; ".join(
            f"w={d['w']} p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms" for d in report["stream_delay"]
        )
    )


def attach_readers(master: Proc, count: int) -> subprocess.Popen[str]:
    """`count` idle long polls on `master`, held (and re-armed) by bench.idle_readers."""
    sockets_before = master.socket_count()
    readers = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.idle_readers",
            "--url",
            master.url,
            "--count",
            str(count),
            "--wait",
            str(IDLE_READER_WAIT_S),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    assert readers.stdout is not None
    ready, _, _ = select.select([readers.stdout], [], [], 60)
    line = readers.stdout.readline() if ready else ""
    if line.strip() != f"attached {count}":
        readers.kill()
        raise BenchFailure(f"idle readers did not attach: {line!r} {readers.stderr.read()!r}")
    # Attached as the master sees it: one more open socket per reader.
    wait_for(
        lambda: master.socket_count() >= sockets_before + count,
        what=f"{count} reader connections on the master",
    )
    return readers


def detach_readers(master: Proc, readers: subprocess.Popen[str], count: int) -> dict:
    """Stop the readers; what they saw. Every poll they got answered must have been empty."""
    still = master.socket_count()
    readers.terminate()
    out, err = readers.communicate(timeout=30)
    if readers.returncode:
        raise BenchFailure(f"idle readers exited {readers.returncode}: {err[-500:]}")
    seen = json.loads(out.strip().splitlines()[-1])
    seen["master_sockets_after_run"] = still
    if seen["errors"] or seen["non_empty_answers"] or seen["reconnects"]:
        raise BenchFailure(f"idle readers did not stay attached quietly: {seen}")
    return seen


def measure_idle_readers(args: argparse.Namespace, workdir: Path, report: dict) -> None:
    """Writes/s (16 clients, w=2) with 1,000 idle long polls on the master and without,
    runs alternating, on an in-memory and a durable cluster."""
    count = args.idle_readers
    with ExitStack() as stack:
        clusters = {
            s: stack.enter_context(cluster_of(workdir / f"idle-{s}", 2, s, report))
            for s in STORAGES
        }
        acked: dict[str, dict[str, int]] = {storage: {} for storage in STORAGES}
        runs: dict[tuple[str, bool], list[dict]] = {
            (s, attached): [] for s in STORAGES for attached in (False, True)
        }
        base = {s: clusters[s][1].socket_count() for s in STORAGES}
        for attempt in range(args.repeat):
            for storage in storage_order(attempt):
                _cluster, master, nodes = clusters[storage]
                for attached in (False, True) if attempt % 2 == 0 else (True, False):
                    # None left over from the previous run: "without" means without.
                    wait_for(
                        lambda master=master, storage=storage: (
                            master.socket_count() <= base[storage]
                        ),
                        what="readers detached",
                    )
                    readers = attach_readers(master, count) if attached else None
                    result = checked_run(
                        storage,
                        master,
                        nodes,
                        acked[storage],
                        concurrency=IDLE_READERS_CLIENTS,
                        duration=args.duration,
                        w=IDLE_READERS_W,
                        run=f"idle-{storage}-{attached}-{attempt}",
                        payload=args.payload,
                    )
                    if readers is not None:
                        result["readers"] = detach_readers(master, readers, count)
                        if result["readers"]["master_sockets_after_run"] < base[storage] + count:
                            raise BenchFailure("idle readers left during the run")
                    runs[(storage, attached)].append(result)
        report["idle_readers"] = []
        for storage in STORAGES:
            without = median_run(runs[(storage, False)])
            with_readers = median_run(runs[(storage, True)])
            report["idle_readers"].append(
                {
                    "storage": storage,
                    "readers": count,
                    "w": IDLE_READERS_W,
                    "concurrency": IDLE_READERS_CLIENTS,
                    "without": without,
                    "with": with_readers,
                    "ratio": round(with_readers["requests_per_s"] / without["requests_per_s"], 3),
                }
            )
    progress(
        f"{count} idle readers, w={IDLE_READERS_W} c={IDLE_READERS_CLIENTS}: "
        + "; ".join(
            f"{STORAGE_LABEL[s]} without {[round(r['requests_per_s']) for r in runs[(s, False)]]}"
            f" with {[round(r['requests_per_s']) for r in runs[(s, True)]]} writes/s"
            for s in STORAGES
        )
    )


class Scraper(threading.Thread):
    """GETs every node's /metrics every `interval` seconds, as Prometheus would, until stopped."""

    def __init__(self, procs: list[Proc], interval: float = SCRAPE_INTERVAL_S) -> None:
        super().__init__(daemon=True)
        self.urls = [p.url + "/metrics" for p in procs]
        self.interval = interval
        self.halt = threading.Event()
        self.scrapes = 0
        self.failures: list[str] = []
        self.ms: list[float] = []
        self.body_bytes = 0

    def run(self) -> None:
        while True:
            for url in self.urls:
                started = time.perf_counter()
                try:
                    resp = http.attempt("GET", url, timeout=10)
                except (OSError, http.RequestFailed) as exc:
                    self.failures.append(f"{url}: {exc}")
                    continue
                self.ms.append((time.perf_counter() - started) * 1000)
                if resp.status != 200 or b"replog_log_last_seq" not in resp.raw:
                    self.failures.append(f"{url}: {resp.status} {resp.raw[:100]!r}")
                self.scrapes += 1
                self.body_bytes = max(self.body_bytes, len(resp.raw))
            if self.halt.wait(self.interval):
                return

    def finish(self) -> dict:
        self.halt.set()
        self.join(30)
        if self.failures or not self.scrapes:
            raise BenchFailure(f"/metrics scrapes failed: {self.failures[:3]}")
        ms = sorted(self.ms)
        return {
            "scrapes": self.scrapes,
            "scrape_ms_p50": round(ms[len(ms) // 2], 3),
            "scrape_ms_max": round(ms[-1], 3),
            "body_bytes_max": self.body_bytes,
        }


def switch_metrics(procs: list[Proc], on: bool) -> None:
    """Switch the metrics of `--switchable` nodes on (SIGUSR2) or off (SIGUSR1), and wait
    until each node's /metrics confirms it."""
    wanted = b"bench_metrics_enabled %s" % (b"1.0" if on else b"0.0")
    for proc in procs:
        os.kill(proc.pid, signal.SIGUSR2 if on else signal.SIGUSR1)
    for proc in procs:
        wait_for(
            lambda proc=proc: wanted in http.attempt("GET", proc.url + "/metrics", timeout=10).raw,
            what=f"{proc.name}: metrics {'on' if on else 'off'}",
        )


def writes_ok_counted(master: Proc) -> float:
    """`replog_writes_total{result="ok"}` as the master's /metrics shows it."""
    for line in http.attempt("GET", master.url + "/metrics", timeout=10).raw.splitlines():
        if line.startswith(b'replog_writes_total{result="ok"}'):
            return float(line.split()[-1])
    raise BenchFailure('the master\'s /metrics has no replog_writes_total{result="ok"}')


def metrics_call_costs(repeat: int = 200_000) -> dict:
    """Microseconds per call of what the nodes feed their metrics, timed in this process.

    Per write request a node pays at most: the master one `write` (outcome and latency), one
    batch observation per secondary (a batch carries one or more entries) and one sync
    observation (a group commit covers one or more); a secondary one batch and one sync
    observation. So the per-request bound is the master's plus each secondary's."""
    node = NodeMetrics("master")
    calls = {
        "write_us": lambda: node.write(metrics.OK, 0.004, 2),
        "batch_observe_us": lambda: node.batch_entries.observe(9),
        "fsync_observe_us": lambda: node.fsync_seconds.observe(0.0003),
    }
    costs = {
        name: round(min(timeit.repeat(call, number=repeat, repeat=3)) / repeat * 1e6, 3)
        for name, call in calls.items()
    }
    batch, sync = costs["batch_observe_us"], costs["fsync_observe_us"]
    secondaries = 2
    costs["bound_us_per_request"] = {
        MEMORY: round(costs["write_us"] + secondaries * batch + secondaries * batch, 2),
        DURABLE: round(
            costs["write_us"] + secondaries * batch + sync + secondaries * (batch + sync), 2
        ),
    }
    return costs


def measure_metrics(args: argparse.Namespace, workdir: Path, report: dict) -> None:
    """Writes/s (16 clients, w=2) with metrics on, off (bench.no_metrics_node) and on while
    every node is scraped each second; runs of the three interleaved, their order rotating
    round by round, each on a cluster of its own, in-memory and durable."""
    with ExitStack() as stack:
        # One cluster per storage, its metrics switched off and on by signal round by
        # round (bench.no_metrics_node --switchable): two clusters differ in more than
        # their metrics (where their files and processes landed), by several percent.
        clusters = {
            s: stack.enter_context(
                cluster_of(workdir / f"metrics-{s}", 2, s, report, switchable=True)
            )
            for s in STORAGES
        }
        acked: dict[str, dict[str, int]] = {s: {} for s in STORAGES}
        runs: dict[tuple[str, str], list[dict]] = {
            (s, v): [] for s in STORAGES for v in METRICS_VARIANTS
        }
        for storage, (_cluster, master, nodes) in clusters.items():
            # Warm-up, not counted: a fresh cluster's first run is slower (connections,
            # first allocations).
            checked_run(
                storage,
                master,
                nodes,
                acked[storage],
                concurrency=METRICS_CLIENTS,
                duration=1.0,
                w=METRICS_W,
                run=f"metrics-warmup-{storage}",
                payload=args.payload,
            )
        counted = {s: len(acked[s]) for s in STORAGES}  # (every id is new: acked grows by it)
        for attempt in range(args.repeat):
            for storage in storage_order(attempt):
                shift = attempt % len(METRICS_VARIANTS)
                for variant in METRICS_VARIANTS[shift:] + METRICS_VARIANTS[:shift]:
                    _cluster, master, nodes = clusters[storage]
                    before = len(acked[storage])
                    switch_metrics([master, *nodes], on=variant != "off")
                    scraper = Scraper([master, *nodes]) if variant == "scraped" else None
                    if scraper is not None:
                        scraper.start()
                    try:
                        result = checked_run(
                            storage,
                            master,
                            nodes,
                            acked[storage],
                            concurrency=METRICS_CLIENTS,
                            duration=args.duration,
                            w=METRICS_W,
                            run=f"metrics-{storage}-{variant}-{attempt}",
                            payload=args.payload,
                        )
                    finally:
                        scraped = scraper.finish() if scraper is not None else None
                    if scraped is not None:
                        result["scrapes"] = scraped
                    if variant != "off":  # what /metrics must count: acked while on
                        counted[storage] += len(acked[storage]) - before
                    runs[(storage, variant)].append(result)
        for storage in STORAGES:  # every write acknowledged while on was counted, no other
            switch_metrics([clusters[storage][1]], on=True)
            shown = writes_ok_counted(clusters[storage][1])
            if shown != counted[storage]:
                raise BenchFailure(
                    f"{storage}: /metrics counts {shown:.0f} ok writes, "
                    f"{counted[storage]} were acknowledged with metrics on"
                )
        report["metrics_calls"] = calls = metrics_call_costs()
        report["metrics_cost"] = []
        for storage in STORAGES:
            medians = {v: median_run(runs[(storage, v)]) for v in METRICS_VARIANTS}
            off, on, scraped = (medians[v]["requests_per_s"] for v in METRICS_VARIANTS)
            # Each round's on/off: the spread of the ratio, round by round.
            paired = sorted(
                round(a["requests_per_s"] / b["requests_per_s"], 3)
                for a, b in zip(runs[(storage, "on")], runs[(storage, "off")], strict=True)
            )
            report["metrics_cost"].append(
                {
                    "storage": storage,
                    "w": METRICS_W,
                    "concurrency": METRICS_CLIENTS,
                    **medians,
                    "on_vs_off": round(on / off, 3),
                    "overhead_pct": round((1 - on / off) * 100, 1),
                    "rounds_on_vs_off": paired,
                    "rounds_on_vs_off_median": statistics.median(paired),
                    "scraped_vs_on": round(scraped / on, 3),
                    "scraped_vs_off": round(scraped / off, 3),
                    # CPU per request of every node (summed), median over each variant's runs:
                    # steadier than writes/s on a shared machine.
                    "calls_bound_us_per_request": calls["bound_us_per_request"][storage],
                    "cpu_us_per_request": (
                        cpu := {
                            v: statistics.median(
                                sum(r["cpu_us_per_request"].values()) for r in runs[(storage, v)]
                            )
                            for v in METRICS_VARIANTS
                        }
                    ),
                    # The verdict's measure: the nodes' CPU per request, on against off. At
                    # 16 clients the nodes are CPU-bound, so this is the throughput they lose,
                    # without the run-to-run swing of writes/s on a shared 2-core machine.
                    "cpu_overhead_pct": round((cpu["on"] / cpu["off"] - 1) * 100, 1),
                }
            )
    progress(
        f"metrics, w={METRICS_W} c={METRICS_CLIENTS}: "
        + "; ".join(
            f"{STORAGE_LABEL[s]} "
            + ", ".join(
                f"{v} {[round(r['requests_per_s']) for r in runs[(s, v)]]}"
                for v in METRICS_VARIANTS
            )
            + " writes/s"
            for s in STORAGES
        )
    )


def measure_restart(args: argparse.Namespace, workdir: Path, report: dict) -> None:
    n = args.restart_messages
    api = restart.through_api(workdir / "restart", n, args.repeat)
    note_node_logs(report, "restart", api.pop("node_log_issues"), api.pop("crashed"))
    report["restart"] = api
    progress(
        f"restart, {n:,} messages written in batches: master "
        f"{api['master_warm']['runs_serving_s']} s (cold cache "
        f"{api['master_cold']['runs_serving_s']} s), secondary "
        f"{api['secondary_warm']['runs_serving_s']} s"
    )
    one = restart.one_entry_per_record(workdir / "restart-one", n, args.repeat)
    note_node_logs(report, "restart-one", one.pop("node_log_issues"), one.pop("crashed"))
    report["restart_one_entry_records"] = one
    progress(
        f"restart, {n:,} messages one per record: master {one['master_warm']['runs_serving_s']} s"
    )


def run(args: argparse.Namespace, report: dict) -> None:
    """Fills `report`. The data directories and node logs are removed unless it fails."""
    workdir = Path(tempfile.mkdtemp(prefix="replog-bench-"))
    report["data_root"] = {"path": str(workdir), "filesystem": filesystem_of(workdir)}
    progress(f"data directories under {workdir} ({report['data_root']['filesystem']})")
    if "writes" in args.parts:
        measure_ceiling(args, workdir, report)
        progress(
            "ceiling: "
            + ", ".join(f"c={c} {report['ceiling'][c]['requests_per_s']:.0f}/s" for c in CLIENTS)
        )
        measure_writes(args, workdir, report)
    if "reads" in args.parts:
        measure_reads(args, workdir, report)
        progress("reads, catch-up and memory done")
    if "stream" in args.parts:
        measure_stream_delay(args, workdir, report)
    if "idle" in args.parts:
        measure_idle_readers(args, workdir, report)
    if "metrics" in args.parts:
        measure_metrics(args, workdir, report)
    if args.restart_messages and "restart" in args.parts:
        measure_restart(args, workdir, report)
    report["elapsed_s"] = round(time.monotonic() - _started, 1)
    shutil.rmtree(workdir, ignore_errors=True)


# -- the printed tables ------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def load_label(r: dict) -> str:
    return f"batch of {r['batch']}, w={r['w']}" if r.get("batch") else f"w={r['w']}"


def vs_memory(r: dict) -> str:
    v = r.get("vs_memory")
    if v is None:
        return ""
    if r.get("batch"):
        return f"{v['messages_ratio']:.2f}x msgs/s"
    return f"{v['requests_ratio']:.2f}x writes/s, p50 {v['p50_diff_ms']:+.3f} ms"


def cpu(r: dict) -> str:
    return ", ".join(str(v) for v in r["cpu_us_per_request"].values())


def load_rows(report: dict) -> list[str]:
    lines = [
        "| load | clients | storage | writes/s | p50 ms | p90 ms | p99 ms | x ceiling "
        "| durable vs in-memory | node CPU us/request (master, s1, s2) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in CLIENTS:
        r = report["ceiling"][c]
        lines.append(
            f"| ceiling (bare Tornado) | {c} | - | {r['requests_per_s']:.0f} | "
            f"{r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | 1.00 | | |"
        )
    for r in report["load"]:
        lines.append(
            f"| {load_label(r)} | {r['concurrency']} | {STORAGE_LABEL[r['storage']]} | "
            f"{r['requests_per_s']:.0f} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
            f"{r['ratio']:.2f} | {vs_memory(r)} | {cpu(r)} |"
        )
    for storage in STORAGES:
        b = report["batch"][storage]
        lines.append(
            f"| {load_label(b)} | {b['concurrency']} | {STORAGE_LABEL[storage]} | "
            f"{b['messages_per_s']:.0f} msgs/s ({b['requests_per_s']:.0f} req/s) | "
            f"{b['p50_ms']} | {b['p90_ms']} | {b['p99_ms']} | | {vs_memory(b)} | {cpu(b)} |"
        )
    return lines


def find_load(report: dict, storage: str, w: object, c: int) -> dict:
    for r in report["load"]:
        if r["storage"] == storage and r["w"] == w and r["concurrency"] == c:
            return r
    raise KeyError((storage, w, c))


def restart_rows(report: dict) -> list[tuple[str, dict]]:
    rows = []
    if "restart" in report:
        r = report["restart"]
        rows += [
            ("master, records of 10,000 entries, page cache warm", r["master_warm"]),
            ("master, records of 10,000 entries, log evicted from page cache", r["master_cold"]),
            ("secondary, records as replicated (<= 1,000 entries), warm", r["secondary_warm"]),
        ]
    if "restart_one_entry_records" in report:
        rows.append(
            (
                "master, one entry per record (worst case), warm",
                report["restart_one_entry_records"]["master_warm"],
            )
        )
    return rows


def target_rows(report: dict) -> list[str]:
    memory16, durable16 = (find_load(report, s, 3, 16) for s in STORAGES)
    memory1, durable1 = (find_load(report, s, 3, 1) for s in STORAGES)
    batch_memory, batch_durable = (report["batch"][s] for s in STORAGES)
    ratio = durable16["vs_memory"]["requests_ratio"]
    diff = durable1["vs_memory"]["p50_diff_ms"]
    batch_ok = batch_durable["messages_per_s"] >= TARGET_BATCH_MSGS
    lines = [
        "| requirement | in-memory | durable | durable vs in-memory | target | |",
        "|---|---|---|---|---|---|",
        f"| w=3, 16 clients: writes/s | {memory16['requests_per_s']:.0f} | "
        f"{durable16['requests_per_s']:.0f} | {ratio:.2f}x | >= {TARGET_WRITES_RATIO:.2f}x | "
        f"{verdict(ratio >= TARGET_WRITES_RATIO)} |",
        f"| w=3, 1 client: p50 ms | {memory1['p50_ms']} | {durable1['p50_ms']} | "
        f"{diff:+.3f} ms | <= +{TARGET_P50_DIFF_MS} ms | {verdict(diff <= TARGET_P50_DIFF_MS)} |",
        f"| batch of 100, w=3, 16 clients: msgs/s | {batch_memory['messages_per_s']:.0f} | "
        f"{batch_durable['messages_per_s']:.0f} | "
        f"{batch_durable['vs_memory']['messages_ratio']:.2f}x | durable >= "
        f"{TARGET_BATCH_MSGS:,} | {verdict(batch_ok)} |",
    ]
    for label, r in restart_rows(report):
        if r["messages"] == TARGET_RESTART_MESSAGES:
            mark = verdict(r["serving_s"] <= TARGET_RESTART_S)
        else:
            mark = f"n/a ({r['messages']:,} messages)"
        lines.append(
            f"| restart, {r['messages']:,} msgs: {label}: s to serve | | "
            f"{r['serving_s']} | | <= {TARGET_RESTART_S:.0f} s | {mark} |"
        )
    return lines


def sync_rows(report: dict) -> list[str]:
    lines = [
        "| durable run, 16 clients | node | syncs | entries per sync | sync p50 ms | sync p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    runs = [r for r in report["load"] if r["storage"] == DURABLE and r["concurrency"] == 16]
    runs.append(report["batch"][DURABLE])
    for r in runs:
        for node, s in r["sync"].items():
            lines.append(
                f"| {load_label(r)} | {node} | {s['syncs']} | {s['entries_per_sync']} | "
                f"{s['sync_ms_p50']} | {s['sync_ms_p99']} |"
            )
    return lines


def restart_detail_rows(report: dict) -> list[str]:
    lines = [
        "| restart (SIGKILL, then start on the same data dir) | log on disk | "
        "/health 200 s | serves last message s | replay done s | log adopted s | "
        "listening s | runs: serving s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in restart_rows(report):
        phases = r["phases_s"]
        lines.append(
            f"| {label} | {r['log_bytes'] / 1e6:.1f} MB ({r['log_bytes'] / r['messages']:.0f} "
            f"B/msg) | {r['health_s']} | {r['serving_s']} | "
            f"{phases.get('storage_opened', '-')} | {phases.get('opened', '-')} | "
            f"{phases.get('listening', '-')} | {r['runs_serving_s']} |"
        )
    return lines


def table(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; median of "
        f"{report['repeat']} runs of {report['duration_s']} s each; "
        f"{report['payload_bytes']}-byte messages",
        f"storage: in-memory = --in-memory on every node; durable = --data-dir (a fresh "
        f"directory per cluster) under {report['data_root']['path']} "
        f"({report['data_root']['filesystem']}), --fsync always",
    ]
    if "ceiling" in report:
        lines += write_lines(report)
    if report["get"]:
        lines += read_lines(report)
    if "stream_delay" in report or "idle_readers" in report:
        lines += ["", *reader_rows(report)]
    if "metrics_cost" in report:
        lines += ["", *metrics_rows(report)]
    if "restart" in report:
        lines += restart_lines(report)
    lines += ["", *issue_lines(report)]
    return "\n".join(lines)


def write_lines(report: dict) -> list[str]:
    m = report["machine"]
    return [
        "",
        *load_rows(report),
        "",
        "node CPU us/request: each node process's user+system CPU time (all threads, the "
        "fsync thread included) during the median run, per request; the nodes and the load "
        f"generator share {m['cores']} cores.",
        "",
        "Targets (ratios within this run; the machine varies about +-15% run to run):",
        "",
        *target_rows(report),
        "",
        *sync_rows(report),
        "",
        "syncs and entries per sync: during the median run (each node's /health before and "
        "after it); sync p50/p99: the node's last 4096 syncs at the end of that run (these "
        "may include earlier runs' syncs).",
    ]


def read_lines(report: dict) -> list[str]:
    g = report["get"]
    return [
        "",
        "| read (durable nodes) | master ms | secondary ms |",
        "|---|---|---|",
        f"| GET / with 10,000 messages | {g[10_000]['master_ms']} | {g[10_000]['secondary_ms']} |",
        f"| GET / with 100,000 messages | {g[100_000]['master_ms']} | "
        f"{g[100_000]['secondary_ms']} |",
        f"| GET /?from=50000&limit=1000 (of 100,000) | {g['page_1000_ms']['master_ms']} | "
        f"{g['page_1000_ms']['secondary_ms']} |",
        "",
        f"catch-up of 100,000 messages by a fresh durable secondary: {report['catch_up_100k_s']} s",
        f"master memory (RSS growth from 10,000 to 100,000 messages): "
        f"{report['memory']['bytes_per_message']} bytes per 100-byte message "
        f"({report['memory']['beyond_text_bytes']} beyond the text)",
    ]


def restart_lines(report: dict) -> list[str]:
    r = report["restart"]
    one = report["restart_one_entry_records"]
    n = r["master_warm"]["messages"]
    return [
        "",
        f"Restart of a node holding {n:,} messages of 100 bytes, each with a client id "
        "(times from process start; median of "
        f"{report['repeat']}):",
        "",
        *restart_detail_rows(report),
        "",
        f"written through the API: batch POSTs of 10,000 at w=1 to a master with one "
        f"secondary, {r['fill_messages_per_s']:,} msgs/s; the master restarts with its "
        "secondary down, the secondary with its master up. Worst case: the log written "
        f"directly with SegmentLog, one append per entry ({one['write_s']} s), and a "
        "master with no secondaries started on it (its first start follows that write, "
        "the others a SIGKILL).",
    ]


def reader_rows(report: dict) -> list[str]:
    lines = []
    if "stream_delay" in report:
        lines += [
            "| stream delay (durable; answer to event on a secondary's GET /stream) | writes "
            "| p50 ms | p99 ms | min ms | max ms | arrived before the answer |",
            "|---|---|---|---|---|---|---|",
        ]
        for d in report["stream_delay"]:
            lines.append(
                f"| w={d['w']}, sequential writes | {d['writes']} | {d['p50_ms']} | "
                f"{d['p99_ms']} | {d['min_ms']} | {d['max_ms']} | {d['negative']} |"
            )
        lines.append("")
    if "idle_readers" in report:
        lines += [
            "| idle long polls on the master | storage | writes/s without | writes/s with "
            "| with / without | p50 ms without / with | polls answered (empty, re-armed) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in report["idle_readers"]:
            without, with_readers = r["without"], r["with"]
            lines.append(
                f"| {r['readers']:,} readers, w={r['w']}, {r['concurrency']} clients | "
                f"{STORAGE_LABEL[r['storage']]} | {without['requests_per_s']:.0f} | "
                f"{with_readers['requests_per_s']:.0f} | {r['ratio']:.2f}x | "
                f"{without['p50_ms']} / {with_readers['p50_ms']} | "
                f"{with_readers['readers']['answers']} |"
            )
        lines.append(
            f"readers: GET /?from={FAR_SEQ:,}&wait={IDLE_READER_WAIT_S} held open by another "
            "process, each re-armed when it answers; attached as the master counts its "
            "sockets, before and after every run."
        )
    return lines


def metrics_rows(report: dict) -> list[str]:
    lines = [
        f"| metrics, w={METRICS_W}, {METRICS_CLIENTS} clients | storage | off writes/s "
        "| on writes/s | on / off (rounds) | node CPU us/request off / on / scraped "
        "| overhead (CPU per request) | target | scraped writes/s | scraped / on "
        "| p50 ms off / on / scraped |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["metrics_cost"]:
        off, on, scraped = (r[v] for v in METRICS_VARIANTS)
        ok = r["cpu_overhead_pct"] < METRICS_TARGET_OVERHEAD_PCT
        cpu_us = " / ".join(f"{r['cpu_us_per_request'][v]:.0f}" for v in METRICS_VARIANTS)
        lines.append(
            f"| median of {len(off['runs_requests_per_s'])} | {STORAGE_LABEL[r['storage']]} | "
            f"{off['requests_per_s']:.0f} | {on['requests_per_s']:.0f} | "
            f"{r['on_vs_off']:.3f}x (rounds: median {r['rounds_on_vs_off_median']:.2f} of "
            f"{', '.join(f'{x:.2f}' for x in r['rounds_on_vs_off'])}) | {cpu_us} | "
            f"{r['cpu_overhead_pct']:+.1f}% | < {METRICS_TARGET_OVERHEAD_PCT:.0f}% {verdict(ok)} | "
            f"{scraped['requests_per_s']:.0f} | {r['scraped_vs_on']:.3f}x | "
            f"{off['p50_ms']} / {on['p50_ms']} / {scraped['p50_ms']} |"
        )
    for r in report["metrics_cost"]:
        off, on, scraped = (r[v] for v in METRICS_VARIANTS)
        s = scraped["scrapes"]
        lines.append(
            f"{STORAGE_LABEL[r['storage']]} runs, writes/s: off {off['runs_requests_per_s']}, "
            f"on {on['runs_requests_per_s']}, scraped {scraped['runs_requests_per_s']}; "
            f"scrapes of the median scraped run: {s['scrapes']} (3 nodes, every "
            f"{SCRAPE_INTERVAL_S:g} s), p50 {s['scrape_ms_p50']} ms, max {s['scrape_ms_max']} ms, "
            f"{s['body_bytes_max']} bytes"
        )
    c = report["metrics_calls"]
    lines.append(
        f"metrics calls, timed in the bench process: write {c['write_us']} us, batch observe "
        f"{c['batch_observe_us']} us, fsync observe {c['fsync_observe_us']} us; per request at "
        "most (master + 2 secondaries): "
        + ", ".join(
            f"{STORAGE_LABEL[r['storage']]} {r['calls_bound_us_per_request']} us = "
            f"{r['calls_bound_us_per_request'] / r['cpu_us_per_request']['off'] * 100:.1f}% of "
            "the nodes' CPU per request without metrics"
            for r in report["metrics_cost"]
        )
    )
    lines.append(
        "off: every node started through bench.no_metrics_node (NodeMetrics replaced by a "
        "no-op); runs interleaved, their order rotating each round; node CPU: master + both "
        "secondaries, median over the runs; overhead = CPU per request on / off - 1 (the nodes "
        "are CPU-bound at this load, so it is the throughput metrics cost; writes/s itself "
        "swings by tens of percent from run to run on a shared machine)."
    )
    return lines


def issue_lines(report: dict) -> list[str]:
    issues = report["node_log_issues"]
    lines = ["node logs (warnings, errors, non-JSON output):" + ("" if issues else " none")]
    for i in issues:
        lines.append(
            f"- {i['cluster']}/{i['node']}: {i['level']} {i['event']} x{i['count']}: {i['example']}"
        )
    if report["crashed"]:
        lines.append("nodes that exited by themselves: " + ", ".join(report["crashed"]))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="replog benchmark")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load run")
    parser.add_argument(
        "--payload", type=int, default=100, help="bytes per message in the load runs"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per configuration; the table shows the median"
    )
    parser.add_argument(
        "--restart-messages",
        type=int,
        default=TARGET_RESTART_MESSAGES,
        help="messages in the log of the restart measurement (0: skip it)",
    )
    parser.add_argument(
        "--stream-writes", type=int, default=2000, help="sequential writes per w (stream delay)"
    )
    parser.add_argument(
        "--idle-readers", type=int, default=1000, help="idle long polls on the master"
    )
    parser.add_argument(
        "--parts",
        type=lambda v: set(v.split(",")),
        default=set(PARTS),
        help=f"what to measure, comma-separated (default: all of {','.join(PARTS)})",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if args.parts - set(PARTS):
        parser.error(f"--parts: unknown {sorted(args.parts - set(PARTS))}")
    # The idle readers' connections: the master (a child, inheriting this) holds one each.
    raise_fd_limit(args.idle_readers + 1024)
    report: dict = {
        "machine": machine(),
        "duration_s": args.duration,
        "repeat": args.repeat,
        "payload_bytes": args.payload,
        "load": [],
        "get": {},
        "node_log_issues": [],
        "crashed": [],
    }
    try:
        run(args, report)
    except BenchFailure as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        print("\n".join(issue_lines(report)), file=sys.stderr)
        if "data_root" in report:
            print(f"node logs kept in {report['data_root']['path']}", file=sys.stderr)
        sys.exit(1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / time.strftime("bench-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"\nelapsed: {report['elapsed_s']} s")
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
