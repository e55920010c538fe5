"""The master's replication state machine.

Everything that decides what the master does lives here; the caller does the
network. Events in, decisions out:

- `append()` puts a client's message in the log (or finds it by idempotency key);
- `wait_for()` registers a write-concern waiter, `record_ack()` /
  `stream_opened()` move a secondary's progress and return the waiters that
  are now satisfied, for the caller to resolve;
- `next_batch()` says what a secondary's stream should carry next.

A secondary holds entry `seq` exactly when its acknowledged contiguous prefix
reaches `seq` (secondaries acknowledge their contiguous prefix, never their
highest seq). So an entry's ACK set is derived from per-secondary progress
instead of being stored per entry: nothing to free, nothing to drift.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from core.entry import ClientId, Entry

MASTER = "master"


class IdConflict(Exception):
    """The idempotency key is already used by a different message."""

    def __init__(self, client_id: ClientId, existing: Entry) -> None:
        super().__init__(client_id)
        self.client_id = client_id
        self.existing = existing


@dataclass(frozen=True, slots=True)
class Appended:
    entry: Entry
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Satisfied:
    """A write-concern waiter whose entry now has `w` holders."""

    token: Hashable
    seq: int
    w: int
    acked_by: tuple[str, ...]


@dataclass(slots=True)
class SecondaryProgress:
    """What the master knows of one secondary (Raft's matchIndex/nextIndex)."""

    secondary_id: str
    url: str
    # Highest seq such that the secondary holds 1..acked_seq.
    acked_seq: int = 0
    # Highest seq put on the current stream; entries after it are still to send.
    sent_seq: int = 0
    # Last seq of each batch sent and not yet covered by an ACK.
    inflight: deque[int] = field(default_factory=deque)
    connected: bool = False


@dataclass(frozen=True, slots=True)
class Batch:
    secondary_id: str
    entries: list[Entry]

    @property
    def seq_from(self) -> int:
        return self.entries[0].seq

    @property
    def seq_to(self) -> int:
        return self.entries[-1].seq


@dataclass(frozen=True, slots=True)
class _Waiter:
    seq: int
    w: int


class ReplicationLog:
    """The master's log, idempotency index, secondary progress and commit waiters."""

    def __init__(
        self,
        *,
        epoch: int = 1,
        expected_secondaries: int = 0,
        max_batch_entries: int = 1000,
        max_batch_bytes: int = 1 << 20,
        max_inflight_batches: int = 32,
    ) -> None:
        self.epoch = epoch
        self.expected_secondaries = expected_secondaries
        self.max_batch_entries = max_batch_entries
        self.max_batch_bytes = max_batch_bytes
        self.max_inflight_batches = max_inflight_batches
        self._entries: list[Entry] = []
        self._seq_by_id: dict[ClientId, int] = {}
        self._secondaries: dict[str, SecondaryProgress] = {}
        self.commit_waiters: dict[Hashable, _Waiter] = {}

    # -- the log ---------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return len(self._entries)

    def entry(self, seq: int) -> Entry:
        return self._entries[seq - 1]

    def entries(self, start_seq: int = 1, limit: int | None = None) -> list[Entry]:
        """Entries from `start_seq` on, at most `limit` of them."""
        start = max(start_seq, 1) - 1
        stop = None if limit is None else start + limit
        return self._entries[start:stop]

    def append(self, message: str, client_id: ClientId | None) -> Appended:
        """Append a client's message, or return the entry its key already names.

        Check and append happen in one synchronous step, so the order of the
        log and the order of seqs can never disagree.
        """
        if client_id is not None:
            seq = self._seq_by_id.get(client_id)
            if seq is not None:
                existing = self.entry(seq)
                if existing.message != message:
                    raise IdConflict(client_id, existing)
                return Appended(existing, duplicate=True)
        entry = Entry(self.last_seq + 1, self.epoch, client_id, message)
        self._entries.append(entry)
        if client_id is not None:
            self._seq_by_id[client_id] = entry.seq
        return Appended(entry, duplicate=False)

    # -- cluster membership ---------------------------------------------

    @property
    def cluster_size(self) -> int:
        """N: the master plus the secondaries the cluster is meant to have."""
        return 1 + max(self.expected_secondaries, len(self._secondaries))

    @property
    def secondaries(self) -> list[SecondaryProgress]:
        return list(self._secondaries.values())

    def progress(self, secondary_id: str) -> SecondaryProgress:
        return self._secondaries[secondary_id]

    def register(self, secondary_id: str, url: str, contiguous_seq: int) -> list[Satisfied]:
        """A secondary announced itself and how much of the log it holds.

        Its progress is replaced, not merged: a secondary that restarted with
        an empty log must be refilled, not remembered as already served.
        """
        progress = self._secondaries.get(secondary_id)
        if progress is None:
            progress = SecondaryProgress(secondary_id, url)
            self._secondaries[secondary_id] = progress
        progress.url = url
        return self.stream_opened(secondary_id, contiguous_seq, connected=False)

    def stream_opened(
        self, secondary_id: str, contiguous_seq: int, *, connected: bool = True
    ) -> list[Satisfied]:
        """A replication stream (re)started; the secondary holds 1..contiguous_seq."""
        progress = self._secondaries[secondary_id]
        progress.acked_seq = min(max(contiguous_seq, 0), self.last_seq)
        progress.sent_seq = progress.acked_seq
        progress.inflight.clear()
        progress.connected = connected
        return self._satisfied_waiters()

    def stream_closed(self, secondary_id: str) -> None:
        """Whatever was sent and not acknowledged must be sent again."""
        progress = self._secondaries[secondary_id]
        progress.sent_seq = progress.acked_seq
        progress.inflight.clear()
        progress.connected = False

    # -- replication -----------------------------------------------------

    def next_batch(self, secondary_id: str) -> Batch | None:
        """The entries the secondary's stream should carry next, if any.

        None when it has been sent everything, or when too many batches are
        unacknowledged (flow control: a slow secondary gets bigger batches
        later instead of an unbounded queue now).
        """
        progress = self._secondaries[secondary_id]
        if not progress.connected or progress.sent_seq >= self.last_seq:
            return None
        if len(progress.inflight) >= self.max_inflight_batches:
            return None
        batch: list[Entry] = []
        size = 0
        for entry in self._entries[progress.sent_seq : progress.sent_seq + self.max_batch_entries]:
            size += len(entry.message) + 32
            if batch and size > self.max_batch_bytes:
                break
            batch.append(entry)
        progress.sent_seq = batch[-1].seq
        progress.inflight.append(progress.sent_seq)
        return Batch(secondary_id, batch)

    def record_ack(self, secondary_id: str, contiguous_seq: int) -> list[Satisfied]:
        """The secondary holds 1..contiguous_seq. Returns waiters now satisfied."""
        progress = self._secondaries[secondary_id]
        contiguous_seq = min(contiguous_seq, self.last_seq)
        if contiguous_seq <= progress.acked_seq:
            return []
        progress.acked_seq = contiguous_seq
        progress.sent_seq = max(progress.sent_seq, contiguous_seq)
        while progress.inflight and progress.inflight[0] <= contiguous_seq:
            progress.inflight.popleft()
        return self._satisfied_waiters()

    # -- write concern ---------------------------------------------------

    def ack_set(self, seq: int) -> tuple[str, ...]:
        """The nodes that hold entry `seq` now, master first."""
        holders = sorted(s.secondary_id for s in self._secondaries.values() if s.acked_seq >= seq)
        return (MASTER, *holders)

    def acks(self, seq: int) -> int:
        return 1 + sum(1 for s in self._secondaries.values() if s.acked_seq >= seq)

    def wait_for(self, token: Hashable, seq: int, w: int) -> Satisfied | None:
        """Wait until `w` nodes hold `seq`; returns at once if they already do."""
        if self.acks(seq) >= w:
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
        done = [
            token
            for token, waiter in self.commit_waiters.items()
            if waiter.w <= 1 or (waiter.w - 2 < len(acked) and acked[waiter.w - 2] >= waiter.seq)
        ]
        satisfied = []
        for token in done:
            waiter = self.commit_waiters.pop(token)
            satisfied.append(Satisfied(token, waiter.seq, waiter.w, self.ack_set(waiter.seq)))
        return satisfied
