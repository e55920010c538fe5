"""How long a node holding a large durable log takes to restart and serve.

Two logs of `messages` messages of 100 bytes, each with a client id:

- written through the API: a master with one secondary, filled with batch
  POSTs of 10,000 messages at w=1 (one log record per request on the
  master; the secondary's records are the replication batches, up to 1,000
  entries each). Both are killed with SIGKILL and started again on their
  data directories: the master alone (its secondary down), then the
  secondary (its master up). The master is also timed with its segment files
  evicted from the page cache (posix_fadvise DONTNEED), as after a reboot.
- the worst case, one entry per log record (every message written by its own
  request): written directly with storage.segments.SegmentLog from this
  process, into a data directory made by storage.node_store.open_store, and
  a master (no secondaries) started on it.

A restart is timed from just before the process is started until GET /health
answers 200 and GET /?from=<last>&limit=1 returns the last message. The
node's own log events (storage_opened: replay done; opened: log adopted, on a
master; listening) split that time.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import datetime
from pathlib import Path

import orjson

from bench.cluster import (
    DURABLE,
    BenchFailure,
    Cluster,
    Proc,
    dir_bytes,
    http_json,
    wait_for,
)
from tools.harness import http

PAYLOAD = "r" * 100
FILL_BATCH = 10_000
PHASES = ("storage_opened", "opened", "listening")


def message_id(prefix: str, seq: int) -> str:
    return f"{prefix}-{seq}"


def fill(master: Proc, messages: int, prefix: str) -> float:
    """Batch POSTs of FILL_BATCH messages at w=1; returns messages per second."""
    started = time.perf_counter()
    seq = 0
    while seq < messages:
        n = min(FILL_BATCH, messages - seq)
        items = [{"message": PAYLOAD, "id": message_id(prefix, seq + k + 1)} for k in range(n)]
        answer = http_json("POST", master.url + "/", {"messages": items, "w": 1}, timeout=120)
        if answer.get("count") != n or answer["seqs"][-1] != seq + n:
            raise BenchFailure(f"fill: unexpected answer for seqs {seq + 1}..{seq + n}")
        seq += n
    return messages / (time.perf_counter() - started)


def evict_from_page_cache(directory: Path) -> None:
    """Drop these files' cached pages (clean after the sync), as a reboot would."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _answers_200(url: str) -> bool:
    return http.get(url, timeout=10).status == 200


def _phases(cluster: Cluster, proc: Proc) -> dict:
    """Seconds from process start to each start-up event in the node's log."""
    found: dict = {}
    path = proc.log_path
    # Only this start's lines: the log file is appended to across restarts.
    with path.open("rb") as lines:
        for raw in lines:
            if not raw.startswith(b"{") or b'"event":"' not in raw:
                continue
            doc = orjson.loads(raw)
            event = doc.get("event")
            if event not in PHASES:
                continue
            stamp = datetime.fromisoformat(doc["timestamp"].replace("Z", "+00:00")).timestamp()
            if stamp >= proc.started_wall - 0.001:
                found.setdefault(event, round(stamp - proc.started_wall, 3))
    return found


def timed_start(
    cluster: Cluster, name: str, argv: list[str], last_seq: int, last_id: str
) -> tuple[Proc, dict]:
    """Start a node; time until it answers /health and serves the last message."""
    proc = cluster.start(name, argv)
    health = proc.url + "/health"
    wait_for(lambda: _answers_200(health), timeout=60, what=f"{proc.name} /health", interval=0.002)
    health_s = time.perf_counter() - proc.started

    def serves_last() -> bool:
        page = http_json("GET", f"{proc.url}/?from={last_seq}&limit=1")["messages"]
        return bool(page) and page[0]["seq"] == last_seq and page[0]["id"] == last_id

    wait_for(serves_last, timeout=60, what=f"{proc.name} serving seq {last_seq}", interval=0.002)
    serving_s = time.perf_counter() - proc.started
    if not proc.alive():
        raise BenchFailure(f"{proc.name} exited after restart")
    return proc, {
        "health_s": round(health_s, 3),
        "serving_s": round(serving_s, 3),
        "phases_s": _phases(cluster, proc),
    }


def summarise(runs: list[dict], log_dir: Path, entries: int, note: str) -> dict:
    """The median run (by time to serve), with every run's time and the log's size."""
    ordered = sorted(runs, key=lambda r: r["serving_s"])
    chosen = dict(ordered[len(ordered) // 2])
    apparent, allocated = dir_bytes(log_dir)
    chosen.update(
        runs_serving_s=[r["serving_s"] for r in runs],
        median_serving_s=round(statistics.median(r["serving_s"] for r in runs), 3),
        log_bytes=apparent,
        log_allocated_bytes=allocated,
        messages=entries,
        note=note,
    )
    return chosen


def through_api(workdir: Path, messages: int, repeat: int) -> dict:
    """Master and secondary with `messages` written by batch POSTs; restart each."""
    cluster = Cluster(workdir, DURABLE)
    prefix = "restart"
    last_id = message_id(prefix, messages)
    result: dict = {}
    try:
        # A 10,000-message batch with ids is about 1.3 MB.
        master = cluster.master(1, ["--max-body-bytes", str(4 << 20)])
        secondary = cluster.secondary("s1", master)
        wait_for(
            lambda: http_json("GET", master.url + "/health")["status"] == "ok",
            what="restart cluster up",
        )
        result["fill_messages_per_s"] = round(fill(master, messages, prefix))
        wait_for(
            lambda: http_json("GET", secondary.url + "/health")["durable_seq"] == messages,
            timeout=300,
            what="the secondary holding the whole log",
        )
        result["fill_sync"] = {
            "master": http_json("GET", master.url + "/health")["sync"],
            "s1": http_json("GET", secondary.url + "/health")["sync"],
        }
        cluster.kill(secondary)
        cluster.kill(master)

        master_dir = cluster.data_dir("master")
        warm, cold = [], []
        for _ in range(repeat):
            master, timing = timed_start(cluster, "master", master.argv, messages, last_id)
            warm.append(timing)
            cluster.kill(master)
        for _ in range(repeat):
            evict_from_page_cache(master_dir)
            master, timing = timed_start(cluster, "master", master.argv, messages, last_id)
            cold.append(timing)
            if len(cold) < repeat:
                cluster.kill(master)
        batch_note = f"records of {FILL_BATCH:,} entries (one per batch POST)"
        result["master_warm"] = summarise(warm, master_dir / "log", messages, batch_note)
        result["master_cold"] = summarise(cold, master_dir / "log", messages, batch_note)

        secondary_runs = []
        for _ in range(repeat):
            secondary, timing = timed_start(cluster, "s1", secondary.argv, messages, last_id)
            secondary_runs.append(timing)
            if len(secondary_runs) < repeat:
                cluster.kill(secondary)
        result["secondary_warm"] = summarise(
            secondary_runs,
            cluster.data_dir("s1") / "log",
            messages,
            "records as replicated (up to 1,000 entries each)",
        )
        # It rejoins its master and still holds the same log.
        wait_for(
            lambda: http_json("GET", master.url + "/health")["status"] == "ok",
            timeout=30,
            what="the restarted cluster writable",
        )
        after = http_json("GET", secondary.url + "/health")
        if after["contiguous_seq"] != messages:
            raise BenchFailure(f"restarted secondary holds {after['contiguous_seq']} entries")
    finally:
        cluster.stop()
        result["node_log_issues"] = cluster.log_issues()
        result["crashed"] = cluster.crashed
    return result


def write_one_entry_records(data_dir: Path, messages: int, prefix: str) -> float:
    """A master's data directory whose log has one record per entry; returns seconds taken."""
    # Imported here: the rest of the benchmark only talks to the nodes over HTTP.
    from replog.core.entry import Entry
    from replog.storage.files import OsFileSystem
    from replog.storage.node_store import LOG_DIR, open_store
    from replog.storage.segments import SegmentLog

    started = time.perf_counter()
    store = open_store(data_dir=data_dir, node="master", role="master", fsync="never")
    # What master.node saves when it opens: the cluster it belongs to, its epoch.
    store.save("state.json", {"cluster_id": "bench", "epoch": 1})
    store.close()
    log = SegmentLog(OsFileSystem(), data_dir / LOG_DIR)
    log.replay()
    for seq in range(1, messages + 1):
        log.append([Entry(seq, 1, message_id(prefix, seq), PAYLOAD)])
    log.sync_now()
    log.close()
    return time.perf_counter() - started


def one_entry_per_record(workdir: Path, messages: int, repeat: int) -> dict:
    cluster = Cluster(workdir, DURABLE)
    prefix = "one"
    result: dict = {}
    try:
        data_dir = cluster.data_dir("master")
        result["write_s"] = round(write_one_entry_records(data_dir, messages, prefix), 3)
        argv = cluster.master_argv(0)
        runs = []
        for _ in range(repeat):
            master, timing = timed_start(
                cluster, "master", argv, messages, message_id(prefix, messages)
            )
            runs.append(timing)
            cluster.kill(master)
        result["master_warm"] = summarise(
            runs, data_dir / "log", messages, "one entry per record (one message per request)"
        )
    finally:
        cluster.stop()
        result["node_log_issues"] = cluster.log_issues()
        result["crashed"] = cluster.crashed
    return result
