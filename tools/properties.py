"""The invariants of replog as pure property functions over a neutral history.

Two judges share them: the fault campaign's checker (`tools.chaos.checker`, which
converts its JSON records into this model) and the deterministic simulator (which
builds the model directly, step by step). Nothing here does I/O or reads a clock;
every time is a float on the history's own clock (seconds since the run started).

The model:

- `WriteAttempt`: one client request (id, message, the `w` asked, when it was sent
  and answered, the HTTP status or the reason there was none, the answer body).
- `ReadSample`: which seqs one read of a node showed; `Shown`: an entry a read
  showed (the campaign records one only when a node first shows a seq or shows it
  changed, which is all `stale_read` needs).
- `Entry`: one (seq, id, message) of a node's log; final logs map node -> entries,
  or None for a node that could not be read.
- disk wipes: node -> the times its disk was lost.
- `HoldingLog`: a node's own evidence of what it held on disk, and when.

One function per property, each named after the violations it reports and
returning them (a list of `Violation`); functions that also count excused cases
add to an optional `tally` (a `Counter`). `check_all` runs every end-of-run
property in a fixed order.

Some properties only the simulator can judge, because it sees every node's whole
history: `seq_unique`, `read_rolled_back`, `prefix_of_master`, `no_stuck_waiter`,
`bounded_memory`.
For checks after every simulated step, the incremental checkers (`SeqUniqueChecker`,
`RollbackChecker`, `PrefixChecker`, `ReadChecker`) do work in proportion to what is
new since the last step. The per-attempt properties (`ack_quorum`,
`unexpected_status`, and the per-answer part of `ack_answer`) can be called on just
the new attempts.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MASTER = "master"

# No HTTP answer and nothing sent: the write cannot have been appended by this attempt.
NOT_SENT = frozenset({"refused", "connect_timeout", "connect_error"})
# HTTP answers that promise nothing was appended.
NOT_APPENDED = frozenset({503})
# Answers a valid request with a fresh id may legitimately get without being acknowledged.
ALLOWED_FAILURES = frozenset({503, 504})


@dataclass
class Violation:
    property: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"property": self.property, "detail": self.detail, "evidence": self.evidence}


# -- the model -----------------------------------------------------------------


def key(client_id: Any) -> str:
    """Ids compare as JSON values: 1 and "1" are different keys."""
    return json.dumps(client_id)


def outcome_of(status: int | None, error: str | None) -> str:
    """acked / not_sent / rejected (nothing appended) / unknown / failed (4xx, nothing appended)."""
    if status is None:
        return "not_sent" if error in NOT_SENT else "unknown"
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


def ranges(seqs: Iterable[int]) -> list[list[int]]:
    """[1, 2, 3, 5, 6] -> [[1, 3], [5, 6]] (runs of consecutive seqs, in read order)."""
    out: list[list[int]] = []
    for seq in seqs:
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a node's log, as `GET /` shows it."""

    seq: int
    id: Any
    message: str

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Entry:
        return cls(entry["seq"], entry["id"], entry["message"])

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "id": self.id, "message": self.message}


@dataclass(frozen=True, slots=True)
class WriteAttempt:
    """One write request and what came of it.

    `status` is the HTTP status, or None when no answer came (`error` says why:
    "refused", "timeout", ...); `answer` is the answer body as received (for an
    acknowledgment, a JSON object with seq, w, acks, acked_by...). `record`, when
    given, is what violations show as evidence (the campaign's own record);
    otherwise `to_json` builds one in the same shape.
    """

    id: Any
    message: str
    w: Any  # as asked: an integer or "majority"
    sent: float
    answered: float | None = None
    status: int | None = None
    error: str | None = None
    answer: Any = None
    client: Any = None
    record: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def outcome(self) -> str:
        return outcome_of(self.status, self.error)

    @property
    def seq(self) -> Any:
        return self.answer.get("seq") if isinstance(self.answer, dict) else None

    @property
    def acked_by(self) -> list[str]:
        """The holders the answer names ([] without them)."""
        if not isinstance(self.answer, dict):
            return []
        return self.answer.get("acked_by") or []

    def to_json(self) -> Any:
        if self.record is not None:
            return self.record
        out: dict[str, Any] = {
            "type": "write",
            "client": self.client,
            "id": self.id,
            "message": self.message,
            "w": self.w,
            "t0": self.sent,
            "t1": self.answered,
            "status": self.status,
        }
        if self.status is None:
            out["error"] = self.error
        else:
            out["body"] = self.answer
        return out


@dataclass(frozen=True, slots=True)
class ReadSample:
    """One successful read of a node: the seqs it showed, as [first, last] runs."""

    node: str
    t: float
    count: int
    ranges: list[list[int]] | None  # None: a record without them (never gap-free)
    record: Mapping[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, node: str, t: float, seqs: Sequence[int]) -> ReadSample:
        return cls(node, t, len(seqs), ranges(seqs))

    def to_json(self) -> Any:
        if self.record is not None:
            return self.record
        return {
            "type": "sample",
            "node": self.node,
            "t": self.t,
            "ok": True,
            "count": self.count,
            "ranges": self.ranges,
        }


@dataclass(frozen=True, slots=True)
class Shown:
    """A read of `node` at `t` showed `seq` = (id, message)."""

    node: str
    t: float
    seq: int
    id: Any
    message: str
    record: Mapping[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> Any:
        if self.record is not None:
            return self.record
        return {
            "type": "seen",
            "node": self.node,
            "seq": self.seq,
            "id": self.id,
            "message": self.message,
            "t": self.t,
        }


@dataclass
class Incarnation:
    """What a node held on one disk: from `start` (a fresh data dir) on."""

    start: float
    times: list[float] = field(default_factory=list)
    best: list[int] = field(default_factory=list)  # the highest contiguous_seq so far

    def held_at(self, moment: float) -> int:
        i = bisect.bisect_right(self.times, moment)
        return self.best[i - 1] if i else 0


class HoldingLog:
    """A node's own evidence of what it held on disk over time, fed in time order:
    `holding(t, k)` when it logged holding 1..k, `fresh_disk(t)` when it started on
    an empty data directory (from then on only what it holds again counts)."""

    def __init__(self) -> None:
        self.incarnations: list[Incarnation] = [Incarnation(float("-inf"))]
        self._starts: list[float] = [float("-inf")]
        self.has_evidence = False  # a node that never logs holding anything proves nothing

    def fresh_disk(self, t: float) -> None:
        self.incarnations.append(Incarnation(t))
        self._starts.append(t)

    def holding(self, t: float, contiguous_seq: int) -> None:
        current = self.incarnations[-1]
        current.times.append(t)
        current.best.append(max(contiguous_seq, current.best[-1] if current.best else 0))
        self.has_evidence = True

    def held(self, answered: float, slack: float = 0.0) -> int:
        """The most it had logged holding when an answer came, given a clock slack:
        holdings up to `answered + slack` count, and a fresh start only if it came
        before `answered - slack` (a wipe just before the answer must not blame an
        ack its previous disk gave: the master cannot know of the wipe until the
        node is back)."""
        starts = self._starts
        first = max(0, bisect.bisect_right(starts, answered - slack) - 1)
        last = bisect.bisect_right(starts, answered + slack)
        return max(inc.held_at(answered + slack) for inc in self.incarnations[first:last])


@dataclass
class History:
    """Everything the end-of-run properties judge. `nodes` lists the members, master first."""

    nodes: list[str]
    cluster_size: int
    writes: list[WriteAttempt] = field(default_factory=list)
    samples: list[ReadSample] = field(default_factory=list)
    shown: list[Shown] = field(default_factory=list)
    final_logs: dict[str, list[Entry] | None] = field(default_factory=dict)
    wipes: dict[str, list[float]] = field(default_factory=dict)
    # Per node, its evidence of holdings; None when there is none to judge by.
    holdings: dict[str, HoldingLog] | None = None
    # The holdings' clock minus the history's clock (the campaign: the run's wall start).
    holdings_clock_offset: float = 0.0
    holdings_slack: float = 0.0


# -- helpers -------------------------------------------------------------------


def _wiped_after(node: str, t: float, wipes: Mapping[str, Sequence[float]]) -> bool:
    return any(w > t for w in wipes.get(node, []))


def loss_allowed(write: WriteAttempt, wipes: Mapping[str, Sequence[float]]) -> bool:
    """An acknowledged write may be gone only if every node that held it had its disk
    wiped after the write was sent: a holder acknowledged it after that, so the wipe
    may have come after its acknowledgment; a wipe before it cannot explain the loss
    (whatever the node held then, it acknowledged this write later, from its new
    disk). Any holder, master or secondary, with its disk intact makes the loss a
    violation; SIGKILLs do not count (nodes acknowledge only what is on disk)."""
    holders = write.acked_by or [MASTER]
    return all(_wiped_after(h, write.sent, wipes) for h in holders)


def _by_id(writes: Iterable[WriteAttempt]) -> dict[str, list[WriteAttempt]]:
    attempts: dict[str, list[WriteAttempt]] = defaultdict(list)
    for r in writes:
        attempts[key(r.id)].append(r)
    return attempts


def _master_log(final_logs: Mapping[str, Sequence[Entry] | None]) -> Sequence[Entry]:
    return final_logs.get(MASTER) or []


def _seqs_by_id(log: Iterable[Entry]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for m in log:
        out[key(m.id)].append(m.seq)
    return out


def _acked(writes: Iterable[WriteAttempt]) -> Iterable[WriteAttempt]:
    return (w for w in writes if w.outcome == "acked")


def _json(value: Entry | None) -> dict[str, Any] | None:
    return value.to_json() if value is not None else None


# -- the properties of a run (the campaign's and the simulator's) --------------


def not_converged(
    final_logs: Mapping[str, Sequence[Entry] | None], nodes: Iterable[str]
) -> list[Violation]:
    """Every node's final log equals the master's: `divergence` when a node holds a
    different entry at some seq (another order), `not_converged` when it just lacks
    entries or could not be read."""
    out: list[Violation] = []
    master_log = final_logs.get(MASTER)
    if master_log is None:
        out.append(Violation("not_converged", "the master's final log could not be read"))
        master_log = []
    master_by_seq = {m.seq: m for m in master_log}
    for node in nodes:
        if node == MASTER:
            continue
        log = final_logs.get(node)
        if log is None:
            out.append(
                Violation("not_converged", f"{node}'s final log could not be read", {"node": node})
            )
            continue
        if list(log) == list(master_log):
            continue
        differing = [m for m in log if m.seq in master_by_seq and master_by_seq[m.seq] != m]
        if differing:
            first = differing[0]
            out.append(
                Violation(
                    "divergence",
                    f"{node} holds a different entry at seq {first.seq}",
                    {
                        "node": node,
                        "theirs": first.to_json(),
                        "master": master_by_seq[first.seq].to_json(),
                        "differing": len(differing),
                    },
                )
            )
        else:
            out.append(
                Violation(
                    "not_converged",
                    f"{node} holds {len(log)} entries, master {len(master_log)}",
                    {"node": node, "theirs": len(log), "master": len(master_log)},
                )
            )
    return out


def duplicate(final_logs: Mapping[str, Sequence[Entry] | None]) -> list[Violation]:
    """No id twice in any final log; seqs there are exactly 1..n."""
    out: list[Violation] = []
    for node, log in final_logs.items():
        if log is None:
            continue
        seqs = [m.seq for m in log]
        if seqs != list(range(1, len(seqs) + 1)):
            out.append(
                Violation(
                    "duplicate",
                    f"{node}'s final log seqs are not 1..{len(seqs)}",
                    {"node": node, "ranges": ranges(seqs)[:20]},
                )
            )
        ids = Counter(key(m.id) for m in log)
        for client_id, n in ids.items():
            if n > 1:
                at = [m.seq for m in log if key(m.id) == client_id]
                out.append(
                    Violation(
                        "duplicate",
                        f"id {client_id} appears {n} times in {node}'s log",
                        {"node": node, "id": json.loads(client_id), "seqs": at},
                    )
                )
    return out


def unexpected_status(writes: Iterable[WriteAttempt]) -> list[Violation]:
    """No 4xx other than what the contract allows for valid requests with fresh ids,
    and no 5xx but 503 and 504. Per attempt: call it on new attempts as they end."""
    out = []
    for r in writes:
        status = r.status
        if r.outcome == "failed" or (
            status is not None and status >= 500 and status not in ALLOWED_FAILURES
        ):
            out.append(
                Violation(
                    "unexpected_status",
                    f"write {r.id!r} got {status}: {r.answer!r}",
                    {"write": r.to_json()},
                )
            )
    return out


def ack_quorum(
    writes: Iterable[WriteAttempt], nodes: Sequence[str], cluster_size: int
) -> list[Violation]:
    """An acknowledged write's answer shows it held by at least w nodes: `acks >= w`,
    `acked_by` has `acks` distinct known node names with "master" first, and `w` is
    what was asked for ("majority" = N // 2 + 1). Per attempt."""
    out = []
    for r in _acked(writes):
        body = r.answer
        if not isinstance(body, dict):
            out.append(
                Violation(
                    "ack_quorum",
                    f"write {r.id!r} acknowledged without a JSON body",
                    {"write": r.to_json()},
                )
            )
            continue
        acked_by = body.get("acked_by")
        acks = body.get("acks")
        want = resolve_w(r.w, cluster_size)
        problems = []
        if body.get("w") != want:
            problems.append(f"w is {body.get('w')!r}, asked {r.w!r} (= {want})")
        if not isinstance(acked_by, list) or not isinstance(acks, int):
            problems.append("acks/acked_by missing")
        else:
            if len(set(acked_by)) != len(acked_by):
                problems.append("acked_by repeats a node")
            if acks != len(acked_by):
                problems.append(f"acks {acks} != len(acked_by) {len(acked_by)}")
            if not acked_by or acked_by[0] != MASTER:
                problems.append("master is not first in acked_by")
            unknown = [n for n in acked_by if n not in nodes]
            if unknown:
                problems.append(f"unknown nodes {unknown}")
            held = len(set(acked_by) & set(nodes))
            if want is not None and held < want:
                problems.append(f"held by {held} known nodes < w={want}")
            if isinstance(body.get("w"), int) and acks < body["w"]:
                problems.append(f"acks {acks} < w {body['w']}")
        if problems:
            out.append(
                Violation(
                    "ack_quorum", f"write {r.id!r}: " + "; ".join(problems), {"write": r.to_json()}
                )
            )
    return out


def ack_answer_each(writes: Iterable[WriteAttempt]) -> list[Violation]:
    """The per-answer half of `ack_answer`: an acknowledged answer names the id and
    message that were sent, and a seq."""
    out = []
    for r in _acked(writes):
        body = r.answer
        if not isinstance(body, dict):
            continue  # reported by ack_quorum
        if body.get("id") != r.id or body.get("message") != r.message:
            out.append(
                Violation(
                    "ack_answer",
                    f"write {r.id!r} answered for another write",
                    {"write": r.to_json()},
                )
            )
        if not isinstance(body.get("seq"), int):
            out.append(
                Violation(
                    "ack_answer", f"write {r.id!r} answered without a seq", {"write": r.to_json()}
                )
            )
    return out


def ack_answer(
    writes: Sequence[WriteAttempt],
    final_logs: Mapping[str, Sequence[Entry] | None],
    wipes: Mapping[str, Sequence[float]],
) -> list[Violation]:
    """`ack_answer_each`, and every acknowledged attempt of one id got the same seq
    (but an attempt whose every holder was wiped may have been appended again)."""
    out = ack_answer_each(writes)
    in_master_by_id = _seqs_by_id(_master_log(final_logs))
    for client_id, tries in _by_id(writes).items():
        in_master = in_master_by_id.get(client_id, [])
        # An answer without a seq is reported above, not counted as another seq.
        ack_seqs = {
            t.seq
            for t in _acked(tries)
            if isinstance(t.seq, int) and (t.seq in in_master or not loss_allowed(t, wipes))
        }
        if len(ack_seqs) > 1:
            out.append(
                Violation(
                    "ack_answer",
                    f"id {client_id} acknowledged at different seqs {ack_seqs}",
                    {"id": json.loads(client_id), "seqs": sorted(ack_seqs)},
                )
            )
    return out


def ack_lost(
    writes: Sequence[WriteAttempt],
    final_logs: Mapping[str, Sequence[Entry] | None],
    wipes: Mapping[str, Sequence[float]],
    tally: Counter[str] | None = None,
) -> list[Violation]:
    """An acknowledged write is in the final master log exactly once, at the seq its
    answer gave, with its message. A SIGKILL excuses nothing (nodes acknowledge only
    what is on their disk). Only exception: every node in its `acked_by`, master
    included, had its disk wiped after the write was sent; then it may be gone
    (counted in `tally["acknowledged_lost_allowed"]`), but never moved to another seq."""
    out = []
    master_log = _master_log(final_logs)
    master_by_seq = {m.seq: m for m in master_log}
    in_master_by_id = _seqs_by_id(master_log)
    for client_id, tries in _by_id(writes).items():
        acked = list(_acked(tries))
        in_master = in_master_by_id.get(client_id, [])
        for t in acked:
            seq = t.seq
            entry = master_by_seq.get(seq)
            if entry is not None and key(entry.id) == client_id and entry.message == t.message:
                continue
            # Lost with every holder, and at most appended again by a later attempt.
            again = any(o.seq in in_master and o.sent > t.sent for o in acked)
            if loss_allowed(t, wipes) and (not in_master or again):
                if tally is not None:
                    tally["acknowledged_lost_allowed"] += 1
                continue
            out.append(
                Violation(
                    "ack_lost",
                    f"acknowledged write {client_id} (seq {seq}, w={t.w}) is "
                    "not in the final master log at that seq",
                    {
                        "write": t.to_json(),
                        "master_has": _json(entry),
                        "master_seqs_of_id": in_master,
                    },
                )
            )
    return out


def acked_by_lost(
    writes: Iterable[WriteAttempt], final_logs: Mapping[str, Sequence[Entry] | None]
) -> list[Violation]:
    """Every secondary in `acked_by` of a write the master still holds at its seq holds
    that seq with that message in its final log (restarted since, it must have been
    refilled). A node that could not be read is `not_converged`'s to report."""
    out = []
    master_by_seq = {m.seq: m for m in _master_log(final_logs)}
    for t in _acked(writes):
        seq = t.seq
        entry = master_by_seq.get(seq)
        if entry is None or key(entry.id) != key(t.id) or entry.message != t.message:
            continue  # ack_lost's to judge
        for holder in t.acked_by:
            if holder == MASTER or holder not in final_logs:
                continue
            theirs = final_logs.get(holder)
            if theirs is None:
                continue
            held = theirs[seq - 1] if 0 < seq <= len(theirs) else None
            if held is None or held.seq != seq or held.message != t.message:
                out.append(
                    Violation(
                        "acked_by_lost",
                        f"{holder} acknowledged seq {seq} ({key(t.id)}) but "
                        "does not hold it at the end",
                        {"write": t.to_json(), "node": holder, "holds": _json(held)},
                    )
                )
    return out


def phantom(
    writes: Sequence[WriteAttempt], final_logs: Mapping[str, Sequence[Entry] | None]
) -> list[Violation]:
    """Every entry in the master log is a write some client attempted, with that
    message; and none whose every attempt was refused before being sent or answered
    "not appended" (503)."""
    out = []
    master_log = _master_log(final_logs)
    master_by_seq = {m.seq: m for m in master_log}
    in_master_by_id = _seqs_by_id(master_log)
    attempts = _by_id(writes)
    for client_id, tries in attempts.items():
        in_master = in_master_by_id.get(client_id, [])
        if not in_master:
            continue
        if all(t.outcome in ("not_sent", "rejected") for t in tries):
            out.append(
                Violation(
                    "phantom",
                    f"id {client_id} is in the log though no attempt could append it",
                    {
                        "id": json.loads(client_id),
                        "seqs": in_master,
                        "attempts": [(t.status, t.error) for t in tries],
                    },
                )
            )
        entry = master_by_seq[in_master[0]]
        messages = {t.message for t in tries}
        if entry.message not in messages:
            out.append(
                Violation(
                    "phantom",
                    f"id {client_id} is in the log with a message never sent",
                    {"entry": entry.to_json(), "sent": sorted(messages)},
                )
            )
    for m in master_log:
        if key(m.id) not in attempts:
            out.append(
                Violation(
                    "phantom",
                    f"seq {m.seq} (id {m.id!r}) was never written by a client",
                    {"entry": m.to_json()},
                )
            )
    return out


def gap(samples: Iterable[ReadSample]) -> list[Violation]:
    """Every read shows seqs 1..k, nothing missing or repeated. Per read."""
    out = []
    for s in samples:
        expected = [[1, s.count]] if s.count else []
        if s.ranges != expected:
            out.append(
                Violation(
                    "gap", f"{s.node} showed seqs {s.ranges} at t={s.t}s", {"sample": s.to_json()}
                )
            )
    return out


def stale_read(
    shown: Iterable[Shown],
    final_logs: Mapping[str, Sequence[Entry] | None],
    wipes: Mapping[str, Sequence[float]],
    tally: Counter[str] | None = None,
) -> list[Violation]:
    """Every (seq -> id, message) any node showed matches the final master log: reads
    are prefixes of it. A restarted master reopens with its own log, which holds every
    entry it ever sent out, so no restart rolls a read back. Only exception: both
    known holders of what was shown, the master and the node that showed it, had
    their disks wiped after the read (counted in `tally["rolled_back_reads"]`)."""
    out = []
    master_by_seq = {m.seq: m for m in _master_log(final_logs)}
    for obs in shown:
        entry = master_by_seq.get(obs.seq)
        if entry is not None and key(entry.id) == key(obs.id) and entry.message == obs.message:
            continue
        if _wiped_after(obs.node, obs.t, wipes) and _wiped_after(MASTER, obs.t, wipes):
            # Every known copy of what was shown is gone with its disk; an
            # acknowledged write among it is judged by ack_lost, not here.
            if tally is not None:
                tally["rolled_back_reads"] += 1
            continue
        out.append(
            Violation(
                "stale_read",
                f"{obs.node} showed seq {obs.seq} = {obs.id!r} at "
                f"t={obs.t}s, the final master log has {_json(entry)!r}",
                {"seen": obs.to_json()},
            )
        )
    return out


def ack_unheld(
    writes: Iterable[WriteAttempt],
    holdings: Mapping[str, HoldingLog],
    clock_offset: float = 0.0,
    slack: float = 0.0,
    tally: Counter[str] | None = None,
) -> list[Violation]:
    """Each node in an answer's `acked_by` that has evidence of its holdings had
    logged holding that seq before the client got the answer: independent evidence
    that w nodes held the write when it was acknowledged, not just the master's word.
    A restart on the same disk keeps what the node held; a fresh disk holds nothing
    until it holds entries again (see `HoldingLog.held` for an answer just after a
    wipe). `clock_offset` is the holdings' clock minus the attempts' clock; each
    holder judged is counted in `tally["ack_evidence_checked"]`."""
    out = []
    for w in _acked(writes):
        seq = w.seq
        if not isinstance(seq, int) or w.answered is None:
            continue
        answered = clock_offset + w.answered
        for holder in w.acked_by:
            timeline = holdings.get(holder)
            if timeline is None or not timeline.has_evidence:
                continue
            held = timeline.held(answered, slack)
            if tally is not None:
                tally["ack_evidence_checked"] += 1
            if held < seq:
                out.append(
                    Violation(
                        "ack_unheld",
                        f"{holder} is in acked_by of seq {seq} ({w.id!r}, w={w.w}) but "
                        f"had logged holding only up to {held} when the answer came",
                        {"write": w.to_json(), "node": holder},
                    )
                )
    return out


def check_all(history: History, tally: Counter[str] | None = None) -> list[Violation]:
    """Every end-of-run property on a history, in a fixed order."""
    h = history
    out = [
        *not_converged(h.final_logs, h.nodes),
        *duplicate(h.final_logs),
        *unexpected_status(h.writes),
        *ack_quorum(h.writes, h.nodes, h.cluster_size),
        *ack_answer(h.writes, h.final_logs, h.wipes),
        *ack_lost(h.writes, h.final_logs, h.wipes, tally),
        *acked_by_lost(h.writes, h.final_logs),
        *phantom(h.writes, h.final_logs),
        *gap(h.samples),
        *stale_read(h.shown, h.final_logs, h.wipes, tally),
    ]
    if h.holdings is not None:
        out += ack_unheld(h.writes, h.holdings, h.holdings_clock_offset, h.holdings_slack, tally)
    return out


# -- properties only the simulator can see ---------------------------------------


def seq_unique(histories: Mapping[str, Iterable[Entry]]) -> list[Violation]:
    """No seq names two messages on one node across its whole history (every entry it
    ever held, through restarts on its disk; a wiped node starts a new history)."""
    checker = SeqUniqueChecker()
    out = []
    for node, entries in histories.items():
        out += checker.observe(node, entries)
    return out


class SeqUniqueChecker:
    """`seq_unique`, incrementally: feed each entry a node comes to hold (O(1) each)."""

    def __init__(self) -> None:
        self._named: dict[str, dict[int, Entry]] = defaultdict(dict)

    def observe(self, node: str, entries: Iterable[Entry]) -> list[Violation]:
        out = []
        named = self._named[node]
        for e in entries:
            before = named.setdefault(e.seq, e)
            if key(before.id) != key(e.id) or before.message != e.message:
                out.append(
                    Violation(
                        "seq_unique",
                        f"seq {e.seq} names two messages on {node}",
                        {"node": node, "before": before.to_json(), "now": e.to_json()},
                    )
                )
        return out

    def wiped(self, node: str) -> None:
        """The node lost its disk: what it holds from now on is a new history."""
        self._named.pop(node, None)


class RollbackChecker:
    """`read_rolled_back`, incrementally: a node's visible log never gets shorter while
    it keeps its disk, whatever crashes, power cuts and restarts it goes through (with
    `seq_unique`: a restarted node shows again everything it showed). Feed the visible
    length of each node that is up and serving reads; O(1) each."""

    def __init__(self) -> None:
        self._longest: dict[str, int] = {}

    def observe(self, node: str, t: float, length: int) -> list[Violation]:
        longest = self._longest.get(node, 0)
        self._longest[node] = max(longest, length)
        if length >= longest:
            return []
        return [
            Violation(
                "read_rolled_back",
                f"{node} shows {length} entries at t={t}s, after having shown {longest}",
                {"node": node, "t": t, "length": length, "shown_before": longest},
            )
        ]

    def wiped(self, node: str) -> None:
        """The node lost its disk: it may show less until it is refilled."""
        self._longest.pop(node, None)


def prefix_of_master(logs: Mapping[str, Sequence[Entry]], master: str = MASTER) -> list[Violation]:
    """Every node's visible log is a prefix of the master's (judge it once links are
    healed and nothing is in flight; before that a node may lag, never differ)."""
    return PrefixChecker(master).check(logs)


class PrefixChecker:
    """`prefix_of_master`, incrementally: each node's entries already found to be a
    prefix of the master's are not compared again, as long as neither log shrinks
    (a shrunk log, after a wipe or a repair, is compared from its start)."""

    def __init__(self, master: str = MASTER) -> None:
        self.master = master
        self._checked: dict[str, int] = {}
        self._master_len = 0

    def reset(self) -> None:
        """Compare everything again next time (the master's log was replaced)."""
        self._checked.clear()
        self._master_len = 0

    def check(self, logs: Mapping[str, Sequence[Entry]]) -> list[Violation]:
        master_log = logs.get(self.master) or []
        if len(master_log) < self._master_len:
            self._checked.clear()
        self._master_len = len(master_log)
        out = []
        for node, log in logs.items():
            if node == self.master:
                continue
            start = self._checked.get(node, 0)
            if len(log) < start:
                start = 0
            end = min(len(log), len(master_log))
            bad = next((i for i in range(start, end) if log[i] != master_log[i]), None)
            if bad is not None:
                out.append(
                    Violation(
                        "prefix_of_master",
                        f"{node} holds a different entry at seq {log[bad].seq}",
                        {
                            "node": node,
                            "theirs": log[bad].to_json(),
                            "master": master_log[bad].to_json(),
                        },
                    )
                )
                self._checked[node] = start  # still wrong next time: report it again
                continue
            if len(log) > len(master_log):
                out.append(
                    Violation(
                        "prefix_of_master",
                        f"{node} holds {len(log)} entries, more than the master's "
                        f"{len(master_log)}",
                        {"node": node, "theirs": len(log), "master": len(master_log)},
                    )
                )
            self._checked[node] = end
        return out


@dataclass(frozen=True, slots=True)
class PendingWaiter:
    """A write still waiting for `w` holders of `seq` (`name` identifies it in reports)."""

    name: Any
    seq: int
    w: int


def no_stuck_waiter(
    durable_prefixes: Mapping[str, int], pending: Iterable[PendingWaiter]
) -> list[Violation]:
    """No waiter stays blocked once `w` nodes hold its entry. `durable_prefixes` maps
    each node counted as a holder (the members, master included) to the contiguous
    prefix 1..k it holds on disk; judge it when the step that made the holders has
    been delivered (the master resolves waiters as it learns of ACKs, not before).
    O(N log N + waiters)."""
    # The w-th largest prefix is the highest seq at least w nodes hold.
    ranked = sorted(durable_prefixes.values(), reverse=True)
    out = []
    for waiter in pending:
        if 1 <= waiter.w <= len(ranked) and ranked[waiter.w - 1] >= waiter.seq:
            holders = sorted(n for n, k in durable_prefixes.items() if k >= waiter.seq)
            out.append(
                Violation(
                    "no_stuck_waiter",
                    f"waiter {waiter.name!r} for seq {waiter.seq} (w={waiter.w}) is still "
                    f"pending though {len(holders)} nodes hold it",
                    {"waiter": waiter.name, "seq": waiter.seq, "w": waiter.w, "holders": holders},
                )
            )
    return out


def bounded_memory(sizes: Mapping[str, int], limits: Mapping[str, int]) -> list[Violation]:
    """Each measured size (buffered entries, pending frames, waiters... by name) stays
    within its limit; sizes without a limit are not judged."""
    return [
        Violation(
            "bounded_memory",
            f"{name} is {size}, over its bound {limits[name]}",
            {"name": name, "size": size, "limit": limits[name]},
        )
        for name, size in sizes.items()
        if name in limits and size > limits[name]
    ]


class ReadChecker:
    """Reads, judged as they happen: `gap` on each read at once, and the entries it
    showed kept as `Shown` only when new or changed (what `stale_read` needs at the
    end), so each read costs O(its length) and memory O(distinct entries shown)."""

    def __init__(self) -> None:
        self.shown: list[Shown] = []
        self._known: dict[str, dict[int, tuple[str, str]]] = defaultdict(dict)

    def observe(self, node: str, t: float, entries: Sequence[Entry]) -> list[Violation]:
        known = self._known[node]
        for e in entries:
            value = (key(e.id), e.message)
            if known.get(e.seq) != value:
                known[e.seq] = value
                self.shown.append(Shown(node, t, e.seq, e.id, e.message))
        return gap([ReadSample.of(node, t, [e.seq for e in entries])])


PROPERTIES: dict[str, Callable[..., list[Violation]]] = {
    "not_converged": not_converged,
    "duplicate": duplicate,
    "unexpected_status": unexpected_status,
    "ack_quorum": ack_quorum,
    "ack_answer": ack_answer,
    "ack_lost": ack_lost,
    "acked_by_lost": acked_by_lost,
    "phantom": phantom,
    "gap": gap,
    "stale_read": stale_read,
    "ack_unheld": ack_unheld,
    "seq_unique": seq_unique,
    "prefix_of_master": prefix_of_master,
    "no_stuck_waiter": no_stuck_waiter,
    "bounded_memory": bounded_memory,
}
