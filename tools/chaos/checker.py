"""The consistency checker: clients' records + every node's final log -> violations.

Pure functions, no I/O except in `main`. Standalone on the files a campaign
leaves behind:

    python -m tools.chaos.checker <workdir>/results.jsonl <workdir>/logs.json [<workdir>]

`results.jsonl` holds the records described in `tools.chaos.clients` (plus `meta`
and `fault` records); `logs.json` maps each node name to the `messages` list
its `GET /` returned after healing (or null if it could not be read).

Properties (each violation names one):

- `ack_quorum`: an acknowledged write's answer shows it held by at least w
  nodes: `acks >= w`, `acked_by` has `acks` distinct known node names with
  "master" first, and `w` is what was asked for ("majority" = N // 2 + 1).
- `ack_answer`: an acknowledged answer names the id and message that were
  sent, and every acknowledged attempt of one id got the same seq.
- `ack_lost`: an acknowledged write is in the final master log exactly once,
  at the seq its answer gave, with its message. Nodes keep their logs on disk
  and acknowledge only what is there, so a SIGKILL (of one node or of all at
  once) excuses nothing. Only exception: every node in its `acked_by`, the
  master included, had its disk wiped (a `wipe` fault) after the write was
  sent; then it may be gone (counted as `acknowledged_lost_allowed`), but
  never moved to another seq. A campaign wipes only secondaries, so there
  this never applies.
- `acked_by_lost`: every secondary in `acked_by` holds that seq with that
  message in its final log (it may have been restarted since; then it must
  have been refilled).
- `phantom`: every entry in the master log is a write some client attempted,
  with that message; and none whose every attempt was refused before being
  sent or answered "not appended" (503).
- `duplicate`: no id twice in any final log; seqs there are exactly 1..n.
- `not_converged` / `divergence`: every node's final log equals the master's
  (`divergence` when a node holds a different entry at some seq, i.e. another
  order; `not_converged` when it just lacks entries or could not be read).
- `gap`: every successful sample shows seqs 1..k, nothing missing or repeated.
- `stale_read`: every (seq -> id, message) any node ever showed matches the
  final master log: samples are prefixes of it. A restarted master reopens
  with its own log, which holds every entry it ever sent out (it writes an
  entry to its disk before streaming it), so no restart rolls a read back.
  Only exception: both known holders of what was shown, the master (where
  every entry starts) and the node that showed it, had their disks wiped
  after the read; such reads are counted as `rolled_back_reads`. A campaign
  never wipes the master, so there this never applies.
- `ack_unheld` (given the nodes' own logs): each secondary in `acked_by` had
  logged holding that seq (`applied` with `contiguous_seq`)
  before the client received the answer, and not only before its disk was
  wiped (a start on an empty data dir, `storage_opened` with `new`, resets
  what it holds).
- `unexpected_status`: no 4xx other than what the contract allows for valid
  requests with fresh ids, and no 500.

A write with an unknown outcome (timeout, connection lost after sending, 504,
other 5xx) may or may not be in the log, at most once, and is never required.

The properties themselves are the functions of `tools.properties`, which the
simulator uses too; `check` converts the records into that model and runs them
all (and lists what they find in the order it always has: `_in_report_order`).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tools.properties import (
    ALLOWED_FAILURES,
    NOT_APPENDED,
    NOT_SENT,
    Entry,
    History,
    HoldingLog,
    ReadSample,
    Shown,
    Violation,
    WriteAttempt,
    check_all,
    key,
    outcome_of,
    resolve_w,
)

__all__ = [
    "ALLOWED_FAILURES",
    "NOT_APPENDED",
    "NOT_SENT",
    "Report",
    "Violation",
    "check",
    "format_summary",
    "history_from_records",
    "key",
    "load_node_events",
    "load_records",
    "main",
    "outcome",
    "resolve_w",
]

# Faults that lose a node's disk; a SIGKILL alone loses nothing it acknowledged.
WIPE_FAULTS = frozenset({"wipe"})
HELD_EVENTS = frozenset({"applied"})
FRESH_START_EVENT = "storage_opened"  # with "new": true, the node starts with an empty disk
CLOCK_SLACK_S = 0.25  # nodes and clients share the host's clock; allow a little slack


@dataclass
class Report:
    violations: list[Violation]
    summary: dict

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict:
        return {"summary": self.summary, "violations": [v.to_json() for v in self.violations]}


def outcome(record: dict) -> str:
    """acked / not_sent / rejected (nothing appended) / unknown / failed (4xx, nothing appended)."""
    return outcome_of(record.get("status"), record.get("error"))


def history_from_records(
    records: list[dict],
    final_logs: dict[str, list[dict] | None],
    nodes: list[str],
    cluster_size: int,
    node_events: dict[str, list[dict]] | None = None,
) -> History:
    """The campaign's records, final logs and node logs as a `tools.properties.History`.

    Times stay on the records' clock (seconds since the run started); the node logs'
    evidence stays on the wall clock, `holdings_clock_offset` (the run's wall start)
    apart. Every model object keeps its record, which violations show as evidence.
    """
    meta = next((r for r in records if r.get("type") == "meta"), {})
    wipes: dict[str, list[float]] = defaultdict(list)
    for f in records:
        if (
            f.get("type") == "fault"
            and f.get("action") == "inject"
            and f.get("fault") in WIPE_FAULTS
        ):
            # From just before the SIGKILL that began it.
            wipes[f["target"]].append(f.get("started", f["t"]))
    history = History(
        nodes=nodes,
        cluster_size=cluster_size,
        writes=[_write(r) for r in records if r.get("type") == "write"],
        samples=[
            ReadSample(r["node"], r["t"], r.get("count", 0), r.get("ranges"), record=r)
            for r in records
            if r.get("type") == "sample" and r.get("ok")
        ],
        shown=[
            Shown(r["node"], r["t"], r["seq"], r["id"], r["message"], record=r)
            for r in records
            if r.get("type") == "seen"
        ],
        final_logs={
            node: None if log is None else [Entry.from_json(m) for m in log]
            for node, log in final_logs.items()
        },
        wipes=dict(wipes),
        holdings_slack=CLOCK_SLACK_S,
    )
    wall_start = meta.get("wall_start")
    if node_events and wall_start is not None:
        history.holdings = {node: _holdings(events) for node, events in node_events.items()}
        history.holdings_clock_offset = wall_start
    return history


def _write(r: dict) -> WriteAttempt:
    return WriteAttempt(
        id=r["id"],
        message=r["message"],
        w=r["w"],
        sent=r["t0"],
        answered=r.get("t1"),
        status=r.get("status"),
        error=r.get("error"),
        answer=r.get("body"),
        client=r.get("client"),
        record=r,
    )


def _holdings(events: list[dict]) -> HoldingLog:
    """A node's `applied` events (evidence of holding 1..contiguous_seq), split at each
    start on an empty data directory (`storage_opened` with `new`), in time order."""
    points: list[
        tuple[float, int, int | None]
    ] = []  # (when, order, seq): a fresh start sorts before an apply at its time
    for e in events:
        if not e.get("timestamp"):
            continue
        seq = e.get("contiguous_seq")
        if e.get("event") in HELD_EVENTS and isinstance(seq, int):
            points.append((_epoch_seconds(e["timestamp"]), 1, seq))
        elif e.get("event") == FRESH_START_EVENT and e.get("new") is True:
            points.append((_epoch_seconds(e["timestamp"]), 0, None))
    log = HoldingLog()
    for when, _, seq in sorted(points, key=lambda p: p[:2]):
        if seq is None:
            log.fresh_disk(when)
        else:
            log.holding(when, seq)
    return log


def check(
    records: Iterable[dict],
    final_logs: dict[str, list[dict] | None],
    nodes: list[str] | None = None,
    cluster_size: int | None = None,
    node_events: dict[str, list[dict]] | None = None,
) -> Report:
    """Check a run. `nodes` (master first) and `cluster_size` default to the meta record's.

    `node_events`, the secondaries' own structured logs, adds the `ack_unheld` check.
    """
    records = list(records)
    meta = next((r for r in records if r.get("type") == "meta"), {})
    nodes = list(nodes or meta.get("nodes") or final_logs)
    if "master" not in nodes:
        nodes.insert(0, "master")
    cluster_size = cluster_size or meta.get("cluster_size") or len(nodes)
    history = history_from_records(records, final_logs, nodes, cluster_size, node_events)
    tally: Counter = Counter()
    violations = _in_report_order(check_all(history, tally), records)

    writes = [r for r in records if r.get("type") == "write"]
    faults = [r for r in records if r.get("type") == "fault" and r.get("action") == "inject"]
    counts = Counter(outcome(r) for r in writes)
    acked_by_w = Counter(str(r["w"]) for r in writes if outcome(r) == "acked")
    sampled = Counter(s.node for s in history.samples)
    if history.holdings is None:
        evidence: dict[str, Any] = {"checked": 0, "skipped": "no node logs"}
    else:
        with_evidence = [n for n, log in history.holdings.items() if log.has_evidence]
        evidence = {"checked": tally["ack_evidence_checked"], "nodes": sorted(with_evidence)}
    by_property = Counter(v.property for v in violations)
    summary = {
        "writes_attempted": len(writes),
        "distinct_ids": len({key(r["id"]) for r in writes}),
        "acknowledged": counts["acked"],
        "acknowledged_by_w": dict(sorted(acked_by_w.items())),
        "unknown_outcome": counts["unknown"],
        "not_appended": counts["rejected"] + counts["not_sent"],
        "client_errors": counts["failed"],
        "faults_injected": len(faults),
        "faults_by_kind": dict(Counter(f.get("fault") for f in faults)),
        "samples": dict(sampled),
        "acknowledged_lost_allowed": tally["acknowledged_lost_allowed"],
        "rolled_back_reads": tally["rolled_back_reads"],
        "ack_evidence": evidence,
        "final_log_length": len(final_logs.get("master") or []),
        "converged": not (by_property["not_converged"] or by_property["divergence"]),
        "violations": len(violations),
        "violations_by_property": dict(by_property),
    }
    return Report(violations, summary)


def _in_report_order(violations: list[Violation], records: list[dict]) -> list[Violation]:
    """The order this checker has always listed violations in, so that reports compare
    line by line across versions: the final logs (the master's unreadable, duplicates,
    then each node's convergence); then per write record (status, quorum, answer); then
    per id, in order of its first attempt (its seqs, each acknowledged attempt's loss,
    its phantoms); then entries nobody wrote; reads; ack evidence. `check_all` lists
    them by property; the sort is stable, so each slot keeps that order."""
    writes = [r for r in records if r.get("type") == "write"]
    record_index = {id(r): i for i, r in enumerate(writes)}
    id_index: dict[str, int] = {}
    for r in writes:
        id_index.setdefault(key(r["id"]), len(id_index))
    per_record = {"unexpected_status": 0, "ack_quorum": 1, "ack_answer": 2}
    last = {"gap": 6, "stale_read": 7, "ack_unheld": 8}

    def slot(v: Violation) -> tuple[int, ...]:
        prop, evidence = v.property, v.evidence
        if prop in ("not_converged", "divergence"):
            return (2,) if "node" in evidence else (0,)
        if prop == "duplicate":
            return (1,)
        if prop in per_record and "write" in evidence:
            return (3, record_index[id(evidence["write"])], per_record[prop])
        if prop == "ack_answer":  # one id acknowledged at several seqs
            return (4, id_index[key(evidence["id"])], 0)
        if prop in ("ack_lost", "acked_by_lost"):
            write = evidence["write"]
            return (4, id_index[key(write["id"])], 1, record_index[id(write)])
        if prop == "phantom":
            client_id = key(evidence["id"] if "id" in evidence else evidence["entry"]["id"])
            return (4, id_index[client_id], 2) if client_id in id_index else (5,)
        return (last.get(prop, 9),)

    return sorted(violations, key=slot)


def load_node_events(directory: Path, nodes: Iterable[str]) -> dict[str, list[dict]]:
    """Each `<directory>/<node>.log` (JSON lines; other lines skipped)."""
    out: dict[str, list[dict]] = {}
    for node in nodes:
        path = directory / f"{node}.log"
        if not path.exists():
            continue
        events = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
        out[node] = events
    return out


def _epoch_seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def load_records(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def format_summary(report: Report, limit: int = 20) -> str:
    s = report.summary
    lines = [
        f"writes attempted:   {s['writes_attempted']} ({s['distinct_ids']} ids)",
        f"acknowledged:       {s['acknowledged']}  by w: {s['acknowledged_by_w']}",
        f"unknown outcome:    {s['unknown_outcome']}  not appended: {s['not_appended']}"
        f"  client errors: {s['client_errors']}",
        f"faults injected:    {s['faults_injected']}  {s['faults_by_kind']}",
        f"samples:            {s['samples']}",
        f"ack evidence:       {s['ack_evidence']}",
        f"final log length:   {s['final_log_length']}  converged: {s['converged']}",
        f"allowed losses:     {s['acknowledged_lost_allowed']} acknowledged writes (all holders"
        f" wiped), {s['rolled_back_reads']} reads rolled back (master and reader wiped)",
        f"violations:         {s['violations']}  {s['violations_by_property'] or ''}".rstrip(),
    ]
    for v in report.violations[:limit]:
        lines.append(f"  [{v.property}] {v.detail}")
    if len(report.violations) > limit:
        lines.append(f"  ... and {len(report.violations) - limit} more")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3) or args[0] in ("-h", "--help"):
        print(
            "usage: python -m tools.chaos.checker results.jsonl logs.json [node-log-dir]\n"
            "  node-log-dir: where <node>.log files are, for the ack_unheld check",
            file=sys.stderr,
        )
        return 2
    records = load_records(Path(args[0]))
    final_logs = json.loads(Path(args[1]).read_text(encoding="utf-8"))
    events = load_node_events(Path(args[2]), final_logs) if len(args) == 3 else None
    report = check(records, final_logs, node_events=events)
    print(format_summary(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
