"""The master's replication state machine.

Everything that decides what the master does lives here; the caller does the
network and reads the clock. Events in, decisions out:

- `append()` puts a client's message in the log (or finds it by idempotency
  key), or refuses it while the master is read-only; the caller writes it to
  disk and reports with `mark_durable()` once it is there (the master counts
  as a holder of an entry only from then on);
- `wait_for()` registers a write-concern waiter; `record_ack()` and
  `stream_opened()` move a secondary's progress and return the waiters that
  are now satisfied, for the caller to resolve;
- `next_batch()` says what a secondary's stream should carry next: only
  entries on the master's own disk, so no secondary ever shows one that a
  master power cut takes back;
- `heard_from()` and `update_health()` track failure detection, and from it
  quorum and read-only mode;
- `adopt()` installs the log a restarted master recovered (core.recovery);
- `commit_seq` is the commit point: the highest seq a majority of the
  cluster's nodes hold (the master's durable copy counting as one), what
  `GET /?read=majority` shows and what no restart or failover takes back.

A secondary holds entry `seq` exactly when its acknowledged contiguous prefix
reaches `seq` (secondaries acknowledge the contiguous prefix they hold on
disk, never their highest seq); the master holds it when its own durable
prefix does. So an entry's ACK set is derived from per-secondary progress
instead of being stored per entry: nothing to free, nothing to drift.
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from replog.core.entry import (
    Appended,
    ClientId,
    Entry,
    PublicMessage,
    WireEntry,
    json_string_bytes,
    json_value_bytes,
)
from replog.core.errors import IdConflict, MemberConflict, ReadOnly, RemovedMember
from replog.core.health import Health, HealthPolicy
from replog.core.limits import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_INFLIGHT_BATCHES
from replog.core.write_request import WriteItem, majority

MASTER = "master"
# `{"type":"append","entries":[]}`: the bytes of an append frame around its entries.
APPEND_FRAME_BYTES = 30


class AckBeyondSent(ValueError):
    """A secondary acknowledged entries its stream never carried: not a correct secondary."""


@dataclass(frozen=True, slots=True)
class Satisfied:
    """A write-concern waiter whose entry now has `w` holders."""

    token: Hashable
    seq: int
    w: int
    acked_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StatusChange:
    secondary_id: str
    before: Health
    after: Health


@dataclass(slots=True)
class SecondaryProgress:
    """What the master knows of one secondary (Raft's matchIndex/nextIndex)."""

    secondary_id: str
    url: str
    # Random id of the secondary's data directory: a new one means it lost its disk.
    incarnation: str = ""
    # Random id of the secondary's process: tells a copy of a data directory apart.
    instance: str = ""
    # Highest seq such that the secondary holds 1..acked_seq.
    acked_seq: int = 0
    # Highest seq put on the current stream; entries after it are still to send.
    sent_seq: int = 0
    # Last seq of each batch sent and not yet covered by an ACK.
    inflight: deque[int] = field(default_factory=deque)
    connected: bool = False
    # Monotonic time we last heard from it (registration, hello, ACK), or None.
    last_heard: float | None = None
    status: Health = Health.UNHEALTHY


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries seq_from..seq_to for one secondary."""

    secondary_id: str
    seq_from: int
    seq_to: int
    entries: list[Entry]

    @property
    def items(self) -> list[WireEntry]:
        """The entries in wire form, [seq, epoch, id, message] each."""
        return [entry.to_wire() for entry in self.entries]


@dataclass(frozen=True, slots=True)
class _Waiter:
    seq: int
    w: int


class ReplicationLog:
    """The master's log, idempotency index, secondary progress and commit waiters."""

    def __init__(
        self,
        *,
        epoch: int | None = 1,
        expected_secondaries: int = 0,
        health: HealthPolicy | None = None,
        max_batch_entries: int = MAX_BATCH_ENTRIES,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_inflight_batches: int = MAX_INFLIGHT_BATCHES,
    ) -> None:
        # None until a restarted master has recovered the cluster's log.
        self.epoch = epoch
        # How long the log was when this epoch opened: every later entry is ours.
        self.epoch_start = 0
        # The master's own copy: 1..durable_seq are on its disk (or in memory,
        # for an in-memory master). It counts as a holder only of those.
        self.durable_seq = 0
        self.expected_secondaries = expected_secondaries
        self.health = health or HealthPolicy()
        self.max_batch_entries = max_batch_entries
        self.max_batch_bytes = max_batch_bytes
        self.max_inflight_batches = max_inflight_batches
        # The log, stored by column: an Entry object per message would cost
        # more memory than most messages. Epochs are kept as runs.
        self._messages: list[str] = []
        # Wire bytes of each entry's id and message (and the entry's punctuation),
        # filled in as entries are first sent: computed once, whatever N is.
        self._body_bytes = array("L")
        self._ids: list[ClientId | None] = []
        self._run_first_seq: list[int] = []
        self._run_epoch: list[int] = []
        self._seq_by_id: dict[ClientId, int] = {}
        self._secondaries: dict[str, SecondaryProgress] = {}
        # (id, incarnation) of members removed by an operator: never again.
        self.removed: set[tuple[str, str]] = set()
        self.commit_waiters: dict[Hashable, _Waiter] = {}
        # The commit point, raised by `_update_commit` after every event that
        # can move it; never lowered on a running master.
        self._commit_seq = 0

    # -- the log ---------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return len(self._messages)

    def epoch_at(self, seq: int) -> int:
        return self._run_epoch[bisect.bisect_right(self._run_first_seq, seq) - 1]

    def entry(self, seq: int) -> Entry:
        return Entry(seq, self.epoch_at(seq), self._ids[seq - 1], self._messages[seq - 1])

    def entries(self, start_seq: int = 1, limit: int | None = None) -> list[Entry]:
        """Entries from `start_seq` on, at most `limit` of them."""
        start, stop = self._slice(start_seq, limit)
        return [self.entry(seq) for seq in range(start + 1, stop + 1)]

    @property
    def visible_seq(self) -> int:
        """What readers see: 1..durable_seq. An entry not yet on the master's disk
        stays hidden, since a power cut could give its seq to another message;
        its writer has no answer before then either (`wait_for`)."""
        return self.durable_seq

    @property
    def commit_seq(self) -> int:
        """The highest seq held (durably) by a majority of the cluster's nodes, the
        master's own copy counting as one holder; it never goes back while the
        master runs. A restarted master starts again from 0 and rises as its
        streams open (each hello reports what that secondary holds)."""
        return self._commit_seq

    def _majority_held(self) -> int:
        """The highest seq at least majority(N) nodes hold now."""
        # Holders of seq s: the master if durable_seq >= s, each secondary if
        # acked_seq >= s; the k-th highest of these prefixes is held by k nodes.
        prefixes = sorted(
            [self.durable_seq, *(s.acked_seq for s in self._secondaries.values())], reverse=True
        )
        needed = majority(self.cluster_size)
        return prefixes[needed - 1] if needed <= len(prefixes) else 0

    def _update_commit(self) -> None:
        self._commit_seq = max(self._commit_seq, self._majority_held())

    def public_page(
        self, start_seq: int = 1, limit: int | None = None, end: int | None = None
    ) -> list[PublicMessage]:
        """`GET /`'s messages (the visible prefix, or 1..`end` if less), built straight
        from the columns."""
        visible = self.visible_seq if end is None else min(end, self.visible_seq)
        start, stop = self._slice(start_seq, limit, visible)
        return [
            {"seq": seq, "id": client_id, "message": message}
            for seq, client_id, message in zip(
                range(start + 1, stop + 1),
                self._ids[start:stop],
                self._messages[start:stop],
                strict=True,
            )
        ]

    def _slice(self, start_seq: int, limit: int | None, end: int | None = None) -> tuple[int, int]:
        end = self.last_seq if end is None else end
        start = min(max(start_seq, 1) - 1, end)
        stop = end if limit is None else min(start + limit, end)
        return start, stop

    def append(self, message: str, client_id: ClientId | None) -> Appended:
        """Append one message; see `append_batch`."""
        return self.append_batch([WriteItem(message, client_id)])[0]

    def append_batch(self, items: Sequence[WriteItem]) -> list[Appended]:
        """Append messages in order, atomically: all new ones or none.

        An item whose id already names the same message is a duplicate (nothing
        appended, answered with the original entry, even while read-only); an
        id naming another message is an IdConflict and nothing is appended.
        Check and append happen in one synchronous step, so the order of the
        log and the order of seqs can never disagree.
        """
        found: list[Entry | None] = [self._existing(item) for item in items]
        if any(entry is None for entry in found):
            reason = self.read_only_reason()
            if reason is not None:
                raise self._read_only(reason)
        results = []
        for item, existing in zip(items, found, strict=True):
            if existing is not None:
                results.append(Appended(existing, duplicate=True))
                continue
            assert self.epoch is not None
            entry = Entry(len(self._messages) + 1, self.epoch, item.id, item.message)
            self._store(entry)
            results.append(Appended(entry, duplicate=False))
        return results

    def _read_only(self, reason: str) -> ReadOnly:
        # The answer shows the quorum as it was when the write was refused.
        return ReadOnly(
            reason, quorum=self.quorum, nodes_up=self.nodes_up, cluster_size=self.cluster_size
        )

    def _existing(self, item: WriteItem) -> Entry | None:
        """The entry `item.id` already names, if any (IdConflict if another message)."""
        if item.id is None:
            return None
        if self.epoch is None:
            raise self._read_only("recovering: waiting for the secondaries to report their logs")
        seq = self._seq_by_id.get(item.id)
        if seq is None:
            return None
        if self._messages[seq - 1] != item.message:
            raise IdConflict(item.id, self.entry(seq))
        return self.entry(seq)

    def _store(self, entry: Entry) -> None:
        if not self._run_epoch or self._run_epoch[-1] != entry.epoch:
            self._run_first_seq.append(entry.seq)
            self._run_epoch.append(entry.epoch)
        self._messages.append(entry.message)
        self._ids.append(entry.id)
        if entry.id is not None:
            self._seq_by_id[entry.id] = entry.seq

    def adopt(self, entries: Sequence[Sequence[Any]], epoch: int) -> None:
        """Install a log (replayed from disk or recovered from the secondaries, and
        already durable here) and open for writes in a new epoch.

        `entries`: Entry objects or [seq, epoch, id, message] records, seqs 1..n.
        Built column by column: a restarting master may adopt millions.
        """
        if [e[0] for e in entries] != list(range(1, len(entries) + 1)):
            raise ValueError("a recovered log must hold seqs 1..n in order")
        self._messages = [e[3] for e in entries]
        self._ids = [e[2] for e in entries]
        self._body_bytes = array("L")
        epochs = [e[1] for e in entries]
        pairs = enumerate(itertools.pairwise(epochs), start=2)
        changes = [seq for seq, (before, now) in pairs if before != now]
        self._run_first_seq = [1, *changes] if epochs else []
        self._run_epoch = [epochs[seq - 1] for seq in self._run_first_seq]
        # Ids are unique in a log.
        self._seq_by_id = {
            client_id: seq
            for seq, client_id in enumerate(self._ids, start=1)
            if client_id is not None
        }
        self.epoch = epoch
        self.epoch_start = self.durable_seq = len(entries)
        for progress in self._secondaries.values():
            progress.acked_seq = progress.sent_seq = 0
            progress.inflight.clear()
        # What it can prove now: its own copy, and the secondaries' prefixes as
        # their streams open.
        self._commit_seq = 0
        self._update_commit()

    def matching_prefix(self, epoch_runs: list[list[int]], length: int) -> int:
        """How much of a secondary's log equals ours, from its epoch summary.

        Entries with the same seq and epoch are the same entry, and then so is
        everything before them (each epoch has one master, which never gives a
        seq twice). So "epochs agree at seq k" holds for a prefix of seqs, and
        a binary search finds its end.
        """
        first_seqs = [run[1] for run in epoch_runs]

        def theirs(seq: int) -> int:
            return epoch_runs[bisect.bisect_right(first_seqs, seq) - 1][0]

        low, high = 0, min(length, self.last_seq)
        while low < high:
            mid = (low + high + 1) // 2
            if theirs(mid) == self.epoch_at(mid):
                low = mid
            else:
                high = mid - 1
        return low

    # -- cluster membership and health -----------------------------------

    @property
    def cluster_size(self) -> int:
        """N: the master plus the secondaries the cluster is meant to have."""
        return 1 + max(self.expected_secondaries, len(self._secondaries))

    @property
    def secondaries(self) -> list[SecondaryProgress]:
        return list(self._secondaries.values())

    def progress(self, secondary_id: str) -> SecondaryProgress:
        return self._secondaries[secondary_id]

    def is_member(self, secondary_id: str) -> bool:
        return secondary_id in self._secondaries

    def register(
        self,
        secondary_id: str,
        url: str,
        contiguous_seq: int,
        now: float,
        incarnation: str = "",
        instance: str = "",
    ) -> bool:
        """A secondary announced itself and how much of the log it holds.

        What it reports can only lower what we count it as holding: a
        secondary that restarted with an empty log must be refilled, not
        remembered as already served, while a claim to hold more is only
        believed once its stream's hello has been matched against our log.
        A new incarnation (its data directory is new: it lost its disk) counts
        as holding nothing, whatever it held before. Returns whether the
        membership changed (a new secondary, URL or incarnation).

        A registration is only a claim: it does not count as hearing from the
        secondary (only its stream does), so a node the master cannot reach
        never counts towards quorum. Raises MemberConflict when the id belongs
        to another node that is up (see `conflict`), RemovedMember when this
        node was removed from the cluster.
        """
        if (secondary_id, incarnation) in self.removed:
            raise RemovedMember(secondary_id, incarnation)
        conflict = self.conflict(secondary_id, url, incarnation, now, instance)
        if conflict is not None:
            raise conflict
        progress = self._secondaries.get(secondary_id)
        changed = progress is None or (progress.url, progress.incarnation) != (url, incarnation)
        if progress is None:
            progress = SecondaryProgress(secondary_id, url, incarnation)
            self._secondaries[secondary_id] = progress
        elif progress.incarnation != incarnation:
            progress.acked_seq = 0
        progress.url = url
        progress.incarnation = incarnation
        progress.instance = instance
        progress.acked_seq = progress.sent_seq = min(progress.acked_seq, max(contiguous_seq, 0))
        progress.inflight.clear()
        progress.connected = False
        return changed

    def conflict(
        self, secondary_id: str, url: str, incarnation: str, now: float, instance: str = ""
    ) -> MemberConflict | None:
        """Whether registering `secondary_id` from this node would take the id from another.

        An id is bound to one node (its incarnation, in one process: its
        instance) while that node is up: heard on its stream within the
        unhealthy threshold. The same node restarted with its data (same
        incarnation, its old stream gone) takes its id back at once, from any
        URL; a copy of its data directory running beside it does not. A
        registration at the member's own URL is let through, since whoever
        answers there must prove its incarnation in the stream's hello. Another
        node gets the id only once the holder is down.
        """
        progress = self._secondaries.get(secondary_id)
        if progress is None or url == progress.url:
            return None
        same_node = incarnation == progress.incarnation
        if same_node and (instance == progress.instance or not progress.connected):
            return None
        if self.current_status(secondary_id, now) == Health.UNHEALTHY:
            return None
        return MemberConflict(secondary_id, progress.url, progress.incarnation)

    def remove(self, secondary_id: str) -> None:
        """Take a member out of the cluster for good (an operator's decision).

        It no longer counts in N, in quorum or in any ACK set, and its
        incarnation may not register again (a node that lost its data, or a
        new id, may). N shrinks by one: the expected size too, if it counted.
        """
        progress = self._secondaries.pop(secondary_id)
        self.removed.add((secondary_id, progress.incarnation))
        if self.expected_secondaries > len(self._secondaries):
            self.expected_secondaries -= 1
        # N shrank: a majority may hold more now.
        self._update_commit()

    def restore_member(self, secondary_id: str, url: str, incarnation: str) -> None:
        """A member from the master's persisted membership: known, not yet heard from."""
        self._secondaries[secondary_id] = SecondaryProgress(secondary_id, url, incarnation)

    def membership(self) -> list[dict[str, str]]:
        """What the master persists: each secondary's id, URL and incarnation."""
        return [
            {"id": p.secondary_id, "url": p.url, "incarnation": p.incarnation}
            for p in self._secondaries.values()
        ]

    def heard_from(self, secondary_id: str, now: float) -> None:
        self._secondaries[secondary_id].last_heard = now

    def current_status(self, secondary_id: str, now: float) -> Health:
        """The status as of `now` (the stored one changes only in update_health)."""
        p = self._secondaries[secondary_id]
        silent_for = None if p.last_heard is None else now - p.last_heard
        return self.health.status(silent_for, p.connected)

    def update_health(self, now: float) -> list[StatusChange]:
        """Re-evaluate every secondary's status; returns the transitions."""
        changes = []
        for p in self._secondaries.values():
            silent_for = None if p.last_heard is None else now - p.last_heard
            status = self.health.status(silent_for, p.connected)
            if status != p.status:
                changes.append(StatusChange(p.secondary_id, p.status, status))
                p.status = status
        return changes

    @property
    def nodes_up(self) -> int:
        """The master plus every secondary not judged unhealthy."""
        return 1 + sum(1 for p in self._secondaries.values() if p.status != Health.UNHEALTHY)

    @property
    def quorum(self) -> bool:
        return self.nodes_up >= majority(self.cluster_size)

    def read_only_reason(self) -> str | None:
        if self.epoch is None:
            return "recovering: waiting for the secondaries to report their logs"
        if not self.quorum:
            return (
                f"no quorum: {self.nodes_up} of {self.cluster_size} nodes are up, "
                f"{majority(self.cluster_size)} needed"
            )
        return None

    # -- replication -----------------------------------------------------

    def stream_opened(
        self, secondary_id: str, keep: int, now: float, durable: int | None = None
    ) -> list[Satisfied]:
        """A stream (re)started: the secondary keeps 1..keep, 1..durable of it on disk."""
        progress = self._secondaries[secondary_id]
        progress.sent_seq = min(keep, self.last_seq)
        progress.acked_seq = min(progress.sent_seq, keep if durable is None else durable)
        progress.inflight.clear()
        progress.connected = True
        self.heard_from(secondary_id, now)
        self._update_commit()
        return self._satisfied_waiters()

    def stream_closed(self, secondary_id: str) -> None:
        """Whatever was sent and not acknowledged must be sent again."""
        progress = self._secondaries[secondary_id]
        progress.sent_seq = progress.acked_seq
        progress.inflight.clear()
        progress.connected = False
        if progress.status != Health.UNHEALTHY:
            progress.status = Health.SUSPECTED

    def idle(self, secondary_id: str) -> bool:
        """Connected with nothing in flight: a new entry can go out at once."""
        progress = self._secondaries[secondary_id]
        return progress.connected and not progress.inflight

    def next_batch(self, secondary_id: str) -> Batch | None:
        """The entries the secondary's stream should carry next, if any.

        None when it has been sent everything the master holds durably, or
        when too many batches are unacknowledged (flow control: a slow
        secondary gets bigger batches later instead of an unbounded queue now).
        """
        progress = self._secondaries[secondary_id]
        # Only what the master holds on its own disk goes out (PostgreSQL's WAL
        # sender does the same): a secondary never shows an entry that a master
        # power cut could take back and give another message.
        streamable = self.durable_seq
        if not progress.connected or progress.sent_seq >= streamable:
            return None
        if len(progress.inflight) >= self.max_inflight_batches:
            return None
        start = progress.sent_seq
        stop = min(start + self.max_batch_entries, streamable)
        count = self._batch_length(start, stop)
        # tuple.__new__: twice as fast as Entry(...), and batches are the hot path.
        new = tuple.__new__
        entries = [
            new(Entry, (seq, self.epoch_at(seq), client_id, message))
            for seq, client_id, message in zip(
                range(start + 1, start + count + 1),
                self._ids[start : start + count],
                self._messages[start : start + count],
                strict=True,
            )
        ]
        first, last = start + 1, start + len(entries)
        progress.sent_seq = last
        progress.inflight.append(last)
        return Batch(secondary_id, first, last, entries)

    def _batch_length(self, start: int, stop: int) -> int:
        """How many of the entries start+1..stop fit one frame: at most max_batch_bytes
        on the wire, or one entry if that one is larger.

        Exact for seqs; each entry's epoch is counted with the digits of the
        batch's last epoch (epochs only grow along the log, and a batch almost
        always lies within one). One bisection over running sums.
        """
        body = self._body_bytes
        for index in range(len(body), stop):
            # 6: `[`, three `,` and `]` of the entry, and the `,` after it.
            body.append(
                json_value_bytes(self._ids[index]) + json_string_bytes(self._messages[index]) + 6
            )
        epoch_digits = len(str(self.epoch_at(stop)))
        # The frame carries the commit point too (core.stream.Append).
        budget = (
            self.max_batch_bytes - (APPEND_FRAME_BYTES - 1) - commit_field_bytes(self.commit_seq)
        )
        sizes = list(itertools.accumulate(body[start:stop]))
        seq_digits_before = _digits_through(start)

        def frame_bytes(k: int) -> int:  # entries start+1..start+k+1
            seqs = _digits_through(start + k + 1) - seq_digits_before
            return sizes[k] + seqs + (k + 1) * epoch_digits

        return max(bisect.bisect_right(range(len(sizes)), budget, key=frame_bytes), 1)

    def record_ack(self, secondary_id: str, contiguous_seq: int, now: float) -> list[Satisfied]:
        """The secondary holds 1..contiguous_seq. Returns waiters now satisfied.

        Raises AckBeyondSent for an ACK beyond what this stream matched or
        carried (a secondary acknowledges nothing before `sync`, and then only
        entries it was sent): the caller drops the stream, nothing changes.
        An ACK for a stream that is no longer open is ignored.
        """
        progress = self._secondaries[secondary_id]
        if progress.connected and contiguous_seq > progress.sent_seq:
            raise AckBeyondSent(
                f"ACK of 1..{contiguous_seq}, but the stream carried only 1..{progress.sent_seq}"
            )
        self.heard_from(secondary_id, now)
        if not progress.connected or contiguous_seq <= progress.acked_seq:
            return []
        progress.acked_seq = contiguous_seq
        while progress.inflight and progress.inflight[0] <= contiguous_seq:
            progress.inflight.popleft()
        self._update_commit()
        return self._satisfied_waiters()

    def mark_durable(self, seq: int) -> list[Satisfied]:
        """The master's own copy of 1..seq is on disk. Returns waiters now satisfied."""
        seq = min(seq, self.last_seq)
        if seq <= self.durable_seq:
            return []
        self.durable_seq = seq
        self._update_commit()
        return self._satisfied_waiters()

    # -- write concern ---------------------------------------------------

    def ack_set(self, seq: int) -> tuple[str, ...]:
        """The nodes that hold entry `seq` now, master first."""
        holders = sorted(s.secondary_id for s in self._secondaries.values() if s.acked_seq >= seq)
        return (MASTER, *holders) if self.durable_seq >= seq else tuple(holders)

    def acks(self, seq: int) -> int:
        master = 1 if self.durable_seq >= seq else 0
        return master + sum(1 for s in self._secondaries.values() if s.acked_seq >= seq)

    def wait_for(self, token: Hashable, seq: int, w: int) -> Satisfied | None:
        """Wait until `w` nodes, the master among them, hold `seq`; returns at once if they do.

        The master's own durable copy is always required: an answer must never
        name a write that a restart of the master could lose.
        """
        if self.durable_seq >= seq and self.acks(seq) >= w:
            return Satisfied(token, seq, w, self.ack_set(seq))
        self.commit_waiters[token] = _Waiter(seq, w)
        return None

    def cancel_wait(self, token: Hashable) -> None:
        self.commit_waiters.pop(token, None)

    def _satisfied_waiters(self) -> list[Satisfied]:
        if not self.commit_waiters:
            return []
        # The k-th highest acked_seq tells, for every seq at once, whether
        # k secondaries hold it: one sort per event instead of a scan per waiter.
        acked = sorted((s.acked_seq for s in self._secondaries.values()), reverse=True)
        durable = self.durable_seq
        done = [
            token
            for token, waiter in self.commit_waiters.items()
            if waiter.seq <= durable
            and (waiter.w <= 1 or (waiter.w - 2 < len(acked) and acked[waiter.w - 2] >= waiter.seq))
        ]
        satisfied = []
        for token in done:
            waiter = self.commit_waiters.pop(token)
            satisfied.append(Satisfied(token, waiter.seq, waiter.w, self.ack_set(waiter.seq)))
        return satisfied


def commit_field_bytes(commit_seq: int) -> int:
    """The bytes `,"commit":N` adds to a frame."""
    return len(',"commit":') + len(str(commit_seq))


def _digits_through(n: int) -> int:
    """Decimal digits of all the numbers 1..n together."""
    total, low, width = 0, 1, 1
    while low <= n:
        total += (min(n, low * 10 - 1) - low + 1) * width
        low, width = low * 10, width + 1
    return total
