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
"""

from __future__ import annotations

import bisect
import contextlib
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tools.chaos.clients import ranges

# No HTTP answer and nothing sent: the write cannot have been appended by this attempt.
NOT_SENT = frozenset({"refused", "connect_timeout", "connect_error"})
# HTTP answers that promise nothing was appended.
NOT_APPENDED = frozenset({503})
# Answers a valid request with a fresh id may legitimately get without being acknowledged.
ALLOWED_FAILURES = frozenset({503, 504})
# Faults that lose a node's disk; a SIGKILL alone loses nothing it acknowledged.
WIPE_FAULTS = frozenset({"wipe"})


@dataclass
class Violation:
    property: str
    detail: str
    evidence: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"property": self.property, "detail": self.detail, "evidence": self.evidence}


@dataclass
class Report:
    violations: list[Violation]
    summary: dict

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict:
        return {"summary": self.summary, "violations": [v.to_json() for v in self.violations]}


def key(client_id: Any) -> str:
    """Ids compare as JSON values: 1 and "1" are different keys."""
    return json.dumps(client_id)


def outcome(record: dict) -> str:
    """acked / not_sent / rejected (nothing appended) / unknown / failed (4xx, nothing appended)."""
    status = record.get("status")
    if status is None:
        return "not_sent" if record.get("error") in NOT_SENT else "unknown"
    if 200 <= status < 300:
        return "acked"
    if status in NOT_APPENDED:
        return "rejected"
    if 400 <= status < 500:
        return "failed"
    return "unknown"


def resolve_w(w: Any, cluster_size: int) -> int | None:
    if w == "majority":
        return cluster_size // 2 + 1
    if isinstance(w, int) and not isinstance(w, bool):
        return w
    return None


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
    writes = [r for r in records if r.get("type") == "write"]
    samples = [r for r in records if r.get("type") == "sample"]
    seen = [r for r in records if r.get("type") == "seen"]
    faults = [r for r in records if r.get("type") == "fault" and r.get("action") == "inject"]
    # When each node's disk was wiped (from just before the SIGKILL that began it).
    wipes: dict[str, list[float]] = defaultdict(list)
    for f in faults:
        if f.get("fault") in WIPE_FAULTS:
            wipes[f["target"]].append(f.get("started", f["t"]))
    lost_allowed = 0
    rolled_back_reads = 0
    violations: list[Violation] = []

    def violate(prop: str, detail: str, **evidence: Any) -> None:
        violations.append(Violation(prop, detail, evidence))

    master_log = final_logs.get("master")
    if master_log is None:
        violate("not_converged", "the master's final log could not be read")
        master_log = []
    master_by_seq = {m["seq"]: m for m in master_log}
    master_seqs_by_id: dict[str, list[int]] = defaultdict(list)
    for m in master_log:
        master_seqs_by_id[key(m["id"])].append(m["seq"])

    # -- final logs: duplicates, contiguity, convergence, order ------------
    for node, log in final_logs.items():
        if log is None:
            continue
        seqs = [m["seq"] for m in log]
        if seqs != list(range(1, len(seqs) + 1)):
            violate(
                "duplicate",
                f"{node}'s final log seqs are not 1..{len(seqs)}",
                node=node,
                ranges=ranges(seqs)[:20],
            )
        ids = Counter(key(m["id"]) for m in log)
        for client_id, n in ids.items():
            if n > 1:
                at = [m["seq"] for m in log if key(m["id"]) == client_id]
                violate(
                    "duplicate",
                    f"id {client_id} appears {n} times in {node}'s log",
                    node=node,
                    id=json.loads(client_id),
                    seqs=at,
                )
    for node in nodes:
        if node == "master":
            continue
        log = final_logs.get(node)
        if log is None:
            violate("not_converged", f"{node}'s final log could not be read", node=node)
            continue
        if log == master_log:
            continue
        differing = [
            m for m in log if master_by_seq.get(m["seq"]) != m and m["seq"] in master_by_seq
        ]
        if differing:
            first = differing[0]
            violate(
                "divergence",
                f"{node} holds a different entry at seq {first['seq']}",
                node=node,
                theirs=first,
                master=master_by_seq[first["seq"]],
                differing=len(differing),
            )
        else:
            violate(
                "not_converged",
                f"{node} holds {len(log)} entries, master {len(master_log)}",
                node=node,
                theirs=len(log),
                master=len(master_log),
            )

    # -- writes --------------------------------------------------------------
    attempts: dict[str, list[dict]] = defaultdict(list)
    for r in writes:
        attempts[key(r["id"])].append(r)
    counts = Counter(outcome(r) for r in writes)
    acked_by_w: Counter = Counter()
    for r in writes:
        kind = outcome(r)
        status = r.get("status")
        if kind == "failed" or (
            status is not None and status >= 500 and status not in ALLOWED_FAILURES
        ):
            violate(
                "unexpected_status", f"write {r['id']!r} got {status}: {r.get('body')!r}", write=r
            )
        if kind == "acked":
            acked_by_w[str(r["w"])] += 1
            _check_ack(r, nodes, cluster_size, violate)

    for client_id, tries in attempts.items():
        messages = {t["message"] for t in tries}
        acked = [t for t in tries if outcome(t) == "acked"]
        in_master = master_seqs_by_id.get(client_id, [])
        # Seqs this id was acknowledged at and must still be at (see _loss_allowed).
        ack_seqs = {_seq(t) for t in acked if _seq(t) in in_master or not _loss_allowed(t, wipes)}
        if len(ack_seqs) > 1:
            violate(
                "ack_answer",
                f"id {client_id} acknowledged at different seqs {ack_seqs}",
                id=json.loads(client_id),
                seqs=sorted(ack_seqs),
            )
        for t in acked:
            seq = _seq(t)
            entry = master_by_seq.get(seq)
            if entry is None or key(entry["id"]) != client_id or entry["message"] != t["message"]:
                # Lost with every holder, and at most appended again by a later attempt.
                again = any(_seq(o) in in_master and o["t0"] > t["t0"] for o in acked)
                if _loss_allowed(t, wipes) and (not in_master or again):
                    lost_allowed += 1
                    continue
                violate(
                    "ack_lost",
                    f"acknowledged write {client_id} (seq {seq}, w={t['w']}) is "
                    "not in the final master log at that seq",
                    write=t,
                    master_has=entry,
                    master_seqs_of_id=in_master,
                )
                continue
            for holder in t["body"].get("acked_by", []):
                if holder == "master" or holder not in final_logs:
                    continue
                theirs = final_logs.get(holder)
                if theirs is None:
                    continue  # reported as not_converged
                held = theirs[seq - 1] if 0 < seq <= len(theirs) else None
                if held is None or held["seq"] != seq or held["message"] != t["message"]:
                    violate(
                        "acked_by_lost",
                        f"{holder} acknowledged seq {seq} ({client_id}) but "
                        "does not hold it at the end",
                        write=t,
                        node=holder,
                        holds=held,
                    )
        if not acked and in_master and all(outcome(t) in ("not_sent", "rejected") for t in tries):
            violate(
                "phantom",
                f"id {client_id} is in the log though no attempt could append it",
                id=json.loads(client_id),
                seqs=in_master,
                attempts=[(t.get("status"), t.get("error")) for t in tries],
            )
        if in_master:
            entry = master_by_seq[in_master[0]]
            if entry["message"] not in messages:
                violate(
                    "phantom",
                    f"id {client_id} is in the log with a message never sent",
                    entry=entry,
                    sent=sorted(messages),
                )
    for m in master_log:
        if key(m["id"]) not in attempts:
            violate(
                "phantom", f"seq {m['seq']} (id {m['id']!r}) was never written by a client", entry=m
            )

    # -- samples ---------------------------------------------------------------
    sampled = Counter()
    for s in samples:
        if not s.get("ok"):
            continue
        sampled[s["node"]] += 1
        count = s.get("count", 0)
        expected = [[1, count]] if count else []
        if s.get("ranges") != expected:
            violate("gap", f"{s['node']} showed seqs {s.get('ranges')} at t={s['t']}s", sample=s)
    for obs in seen:
        entry = master_by_seq.get(obs["seq"])
        if (
            entry is None
            or key(entry["id"]) != key(obs["id"])
            or entry["message"] != obs["message"]
        ):
            if _wiped_after(obs["node"], obs["t"], wipes) and _wiped_after(
                "master", obs["t"], wipes
            ):
                # Every known copy of what was shown is gone with its disk; an
                # acknowledged write among it is judged above (ack_lost), not here.
                rolled_back_reads += 1
                continue
            violate(
                "stale_read",
                f"{obs['node']} showed seq {obs['seq']} = {obs['id']!r} at "
                f"t={obs['t']}s, the final master log has {entry!r}",
                seen=obs,
            )

    evidence = _check_ack_evidence(writes, meta.get("wall_start"), node_events, violate)

    by_property = Counter(v.property for v in violations)
    summary = {
        "writes_attempted": len(writes),
        "distinct_ids": len(attempts),
        "acknowledged": counts["acked"],
        "acknowledged_by_w": dict(sorted(acked_by_w.items())),
        "unknown_outcome": counts["unknown"],
        "not_appended": counts["rejected"] + counts["not_sent"],
        "client_errors": counts["failed"],
        "faults_injected": len(faults),
        "faults_by_kind": dict(Counter(f.get("fault") for f in faults)),
        "samples": dict(sampled),
        "acknowledged_lost_allowed": lost_allowed,
        "rolled_back_reads": rolled_back_reads,
        "ack_evidence": evidence,
        "final_log_length": len(master_log),
        "converged": not (by_property["not_converged"] or by_property["divergence"]),
        "violations": len(violations),
        "violations_by_property": dict(by_property),
    }
    return Report(violations, summary)


HELD_EVENTS = frozenset({"applied"})
FRESH_START_EVENT = "storage_opened"  # with "new": true, the node starts with an empty disk
CLOCK_SLACK_S = 0.25  # nodes and clients share the host's clock; allow a little slack


@dataclass
class _Incarnation:
    """What a node applied on one disk: from `start` (a fresh data dir) on."""

    start: float
    times: list[float] = field(default_factory=list)
    best: list[int] = field(default_factory=list)  # the highest contiguous_seq so far

    def held_at(self, moment: float) -> int:
        i = bisect.bisect_right(self.times, moment)
        return self.best[i - 1] if i else 0


def _incarnations(events: list[dict]) -> list[_Incarnation]:
    """A node's `applied` events, split at each start on an empty data directory."""
    out = [_Incarnation(float("-inf"))]
    points = []  # (when, order, seq): a fresh start sorts before an apply at its time
    for e in events:
        if not e.get("timestamp"):
            continue
        seq = e.get("contiguous_seq")
        if e.get("event") in HELD_EVENTS and isinstance(seq, int):
            points.append((_epoch_seconds(e["timestamp"]), 1, seq))
        elif e.get("event") == FRESH_START_EVENT and e.get("new") is True:
            points.append((_epoch_seconds(e["timestamp"]), 0, None))
    if not any(seq is not None for _, _, seq in points):
        return []  # the master applies nothing: no evidence either way
    for when, _, seq in sorted(points, key=lambda p: p[:2]):
        if seq is None:
            out.append(_Incarnation(when))
        else:
            current = out[-1]
            current.times.append(when)
            current.best.append(max(seq, current.best[-1] if current.best else 0))
    return out


def _held(incarnations: list[_Incarnation], answered: float) -> int:
    """The most a node had logged holding when an answer came, given the clock slack:
    applies up to `answered + slack` count, and a fresh start only if it came before
    `answered - slack` (a wipe just before the answer must not blame an ack its
    previous disk gave: the master cannot know of the wipe until the node is back)."""
    starts = [inc.start for inc in incarnations]
    first = max(0, bisect.bisect_right(starts, answered - CLOCK_SLACK_S) - 1)
    last = bisect.bisect_right(starts, answered + CLOCK_SLACK_S)
    return max(inc.held_at(answered + CLOCK_SLACK_S) for inc in incarnations[first:last])


def _check_ack_evidence(
    writes: list[dict],
    wall_start: float | None,
    node_events: dict[str, list[dict]] | None,
    violate,
) -> dict:
    """`ack_unheld`: each secondary in an answer's `acked_by` had logged holding that
    seq (an `applied` event with `contiguous_seq` >= seq) before the
    client got the answer: independent evidence that w nodes held the write when it
    was acknowledged, not just the master's word. A restart on the same disk keeps
    what the node held (it acknowledges only what is on disk), so such restarts
    never blame it. A node that starts on an empty data directory (`storage_opened`
    with `new`: a wipe) holds nothing from then on: only what it applies after that
    counts, so once it is back the master must not count it as a holder of what it
    lost. Until it is back, an acknowledgment from its previous disk still counts:
    the master cannot know of the wipe, just as it cannot know of a crash."""
    if not node_events or wall_start is None:
        return {"checked": 0, "skipped": "no node logs"}
    timelines = {}
    for node, events in node_events.items():
        incarnations = _incarnations(events)
        if incarnations:
            timelines[node] = incarnations
    checked = 0
    for w in writes:
        if outcome(w) != "acked" or not isinstance(_seq(w), int):
            continue
        answered = wall_start + w["t1"]
        for holder in w["body"].get("acked_by") or []:
            if holder not in timelines:
                continue
            held = _held(timelines[holder], answered)
            checked += 1
            if held < _seq(w):
                violate(
                    "ack_unheld",
                    f"{holder} is in acked_by of seq {_seq(w)} ({w['id']!r}, w={w['w']}) but "
                    f"had logged holding only up to {held} when the answer came",
                    write=w,
                    node=holder,
                )
    return {"checked": checked, "nodes": sorted(timelines)}


def _epoch_seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


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


def _seq(write: dict) -> Any:
    body = write.get("body")
    return body.get("seq") if isinstance(body, dict) else None


def _wiped_after(node: str, t: float, wipes: dict[str, list[float]]) -> bool:
    return any(w > t for w in wipes.get(node, []))


def _loss_allowed(write: dict, wipes: dict[str, list[float]]) -> bool:
    """An acknowledged write may be gone only if every node that held it had its disk
    wiped after the write was sent: a holder acknowledged it after that, so the wipe
    may have come after its acknowledgment; a wipe before it cannot explain the loss
    (whatever the node held then, it acknowledged this write later, from its new
    disk). Any holder, master or secondary, with its disk intact makes the loss a
    violation; SIGKILLs do not count (nodes acknowledge only what is on disk)."""
    holders = write["body"].get("acked_by") or ["master"]
    return all(_wiped_after(h, write["t0"], wipes) for h in holders)


def _check_ack(r: dict, nodes: list[str], cluster_size: int, violate) -> None:
    body = r.get("body")
    if not isinstance(body, dict):
        violate("ack_quorum", f"write {r['id']!r} acknowledged without a JSON body", write=r)
        return
    acked_by = body.get("acked_by")
    acks = body.get("acks")
    want = resolve_w(r["w"], cluster_size)
    problems = []
    if body.get("w") != want:
        problems.append(f"w is {body.get('w')!r}, asked {r['w']!r} (= {want})")
    if not isinstance(acked_by, list) or not isinstance(acks, int):
        problems.append("acks/acked_by missing")
    else:
        if len(set(acked_by)) != len(acked_by):
            problems.append("acked_by repeats a node")
        if acks != len(acked_by):
            problems.append(f"acks {acks} != len(acked_by) {len(acked_by)}")
        if not acked_by or acked_by[0] != "master":
            problems.append("master is not first in acked_by")
        unknown = [n for n in acked_by if n not in nodes]
        if unknown:
            problems.append(f"unknown nodes {unknown}")
        if want is not None and len(set(acked_by) & set(nodes)) < want:
            problems.append(f"held by {len(set(acked_by) & set(nodes))} known nodes < w={want}")
        if isinstance(body.get("w"), int) and acks < body["w"]:
            problems.append(f"acks {acks} < w {body['w']}")
    if problems:
        violate("ack_quorum", f"write {r['id']!r}: " + "; ".join(problems), write=r)
    if body.get("id") != r["id"] or body.get("message") != r["message"]:
        violate("ack_answer", f"write {r['id']!r} answered for another write", write=r)
    if not isinstance(body.get("seq"), int):
        violate("ack_answer", f"write {r['id']!r} answered without a seq", write=r)


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
