"""The secondary's state machine: a gap-free log plus a buffer for early entries.

Entries may arrive more than once (a stream restarted and resent them) or out
of order (a delayed batch finished after a later one). The log holds only the
contiguous prefix 1..contiguous_seq: an entry that arrives ahead of a gap
waits in `out_of_order` until the gap closes. Readers see 1..visible_seq, the
part of that prefix already on disk: what a power cut cannot take back.

Epochs: each master run has an epoch. When a master's stream starts, the
master tells the secondary how much of its log matches (`sync`); everything
after that is discarded, and from then on only batches from that master's
epoch are applied. So a secondary never keeps two different entries under one
seq, and a late batch from a dead master cannot slip in after a newer one.

Durability: the caller writes applied entries to disk and reports with
`mark_durable()`; the secondary acknowledges `durable_seq`, the part of its
contiguous prefix that is on disk, so the master never counts it as a holder
of an entry that a crash could take back.

Commit point: the master tells its commit point (the highest seq a majority
of the cluster holds) on its stream; `commit_seq` is that, as last told, but
never beyond what this secondary shows (`visible_seq`): what
`GET /?read=majority` answers from here.

Bounds: a correct master never has an entry in flight more than MAX_AHEAD
seqs beyond what the secondary acknowledged, nor more than
MAX_INFLIGHT_BATCHES frames (core.limits). So `apply` refuses, before it
changes anything, a batch with an entry further ahead than `max_ahead`, from
a later epoch than its master's, or one that would make the buffer hold more
than `max_buffered_bytes` (wire bytes): the caller drops the stream, the
buffer is discarded, and the master resends from the secondary's next hello.
Memory stays bounded whatever a stream sends.

`sync_epoch` is the epoch of the last master whose log, as it stood when that
master opened (its `epoch_start`), this secondary holds in full on disk. A restarted
master ranks the secondaries' logs by it first (see core.recovery). It is set
when the durable prefix reaches `epoch_start`, so also as soon as the
secondary holds any entry that master created.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from replog.core.entry import Entry, PublicMessage
from replog.core.limits import MAX_AHEAD, MAX_BATCH_BYTES, MAX_INFLIGHT_BATCHES


@dataclass(slots=True)
class ApplyResult:
    """What one `apply()` did, for the caller to log and acknowledge."""

    applied: list[int] = field(default_factory=list)
    buffered: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    # seqs where the sender's entry differs from the one held (different epoch).
    conflicts: list[int] = field(default_factory=list)
    # The batch came from another master epoch than the one we synced with.
    stale: bool = False
    # Why the batch was refused (nothing applied, the buffer discarded): the
    # stream must be dropped. None: accepted.
    refused: str | None = None


class FollowerLog:
    def __init__(
        self,
        *,
        max_ahead: int = MAX_AHEAD,
        max_buffered_bytes: int = MAX_INFLIGHT_BATCHES * MAX_BATCH_BYTES,
    ) -> None:
        self._entries: list[Entry] = []
        # 1..durable_seq are on disk: what we acknowledge.
        self.durable_seq = 0
        self.out_of_order: dict[int, Entry] = {}
        # Wire bytes of the entries in `out_of_order`, and the bounds.
        self.buffered_bytes = 0
        self.max_ahead = max_ahead
        self.max_buffered_bytes = max_buffered_bytes
        # Epoch of the master we take batches from (set by `sync`).
        self.stream_epoch = 0
        # Epoch of the last master whose log-at-sync we hold in full.
        self.sync_epoch = 0
        self._catch_up_to = 0
        # Where each run of same-epoch entries starts: seqs and their epochs.
        self._epoch_first_seq: list[int] = []
        self._epoch_of_run: list[int] = []
        # The master's commit point as it last told it (0: not told, or an old master).
        self.told_commit = 0

    @property
    def contiguous_seq(self) -> int:
        """Highest seq such that 1..contiguous_seq are all held."""
        return len(self._entries)

    @property
    def last_epoch(self) -> int:
        return self._entries[-1].epoch if self._entries else 0

    def epoch_of(self, seq: int) -> int:
        """The epoch of entry `seq` (0 for seq 0)."""
        return self._entries[seq - 1].epoch if 0 < seq <= len(self._entries) else 0

    def entries(self, start_seq: int = 1, limit: int | None = None) -> list[Entry]:
        start = max(start_seq, 1) - 1
        stop = None if limit is None else start + limit
        return self._entries[start:stop]

    @property
    def visible_seq(self) -> int:
        """What readers see: the durable prefix. An entry applied but not yet on
        disk stays hidden: a power cut here could lose it, and if the master lost
        its disk too, recovery would give its seq to another message."""
        return self.durable_seq

    @property
    def commit_seq(self) -> int:
        """What `read=majority` shows here: the master's commit point as last told,
        within the visible prefix."""
        return min(self.told_commit, self.visible_seq)

    def note_commit(self, commit_seq: int) -> bool:
        """The master says 1..commit_seq are held by a majority. Returns whether
        `told_commit` moved (it only grows while one master streams)."""
        if commit_seq <= self.told_commit:
            return False
        self.told_commit = commit_seq
        return True

    def public_page(
        self, start_seq: int = 1, limit: int | None = None, end: int | None = None
    ) -> list[PublicMessage]:
        """`GET /`'s messages: the visible prefix (or 1..`end` if less), never what
        waits behind a gap."""
        start = max(start_seq, 1) - 1
        end = self.visible_seq if end is None else min(end, self.visible_seq)
        stop = end if limit is None else min(start + limit, end)
        return [{"seq": e.seq, "id": e.id, "message": e.message} for e in self._entries[start:stop]]

    def epoch_runs(self) -> list[list[int]]:
        """[[epoch, first_seq], ...]: a compact summary the master matches against."""
        return [[e, s] for e, s in zip(self._epoch_of_run, self._epoch_first_seq, strict=True)]

    def summary(self, max_runs: int) -> tuple[int, list[list[int]]]:
        """(length, epoch runs) for a hello of at most `max_runs` runs.

        A log with more runs (more master epochs wrote to it) is reported as
        the prefix the first `max_runs` runs cover: the master keeps at most
        that much at `sync` and sends the rest again.
        """
        runs = self.epoch_runs()
        if len(runs) <= max_runs:
            return self.contiguous_seq, runs
        return runs[max_runs][1] - 1, runs[:max_runs]

    def sync(self, master_epoch: int, keep: int, epoch_start: int) -> list[int]:
        """A master of `master_epoch` says our first `keep` entries match its log.

        Discards everything after `keep` (returned, for a warning) and the
        out-of-order buffer, and accepts batches from that epoch only. Once we
        hold 1..epoch_start, we hold that master's log as it was when it opened.
        """
        keep = max(0, min(keep, self.contiguous_seq))
        discarded = [e.seq for e in self._entries[keep:]]
        del self._entries[keep:]
        self.durable_seq = min(self.durable_seq, keep)
        # Whatever was told of the seqs just cut is void (a new master's entries
        # take them); a majority-held entry is never cut by a correct master.
        self.told_commit = min(self.told_commit, keep)
        cut = bisect.bisect_right(self._epoch_first_seq, keep)
        del self._epoch_first_seq[cut:]
        del self._epoch_of_run[cut:]
        self.discard_buffer()
        self.stream_epoch = master_epoch
        self._catch_up_to = epoch_start
        self._note_caught_up()
        return discarded

    def _note_caught_up(self) -> None:
        if self.durable_seq >= self._catch_up_to:
            self.sync_epoch = self.stream_epoch

    def mark_durable(self, seq: int) -> None:
        """1..seq are on disk now (the caller synced what `apply` returned)."""
        self.durable_seq = max(self.durable_seq, min(seq, self.contiguous_seq))
        self._note_caught_up()

    def restore(self, entries: list[Entry], stream_epoch: int, sync_epoch: int) -> None:
        """Start from the log and epochs replayed from disk."""
        self._entries = entries
        self._epoch_first_seq, self._epoch_of_run = [], []
        last_epoch = None
        for entry in entries:
            if entry.epoch != last_epoch:
                self._epoch_first_seq.append(entry.seq)
                self._epoch_of_run.append(entry.epoch)
                last_epoch = entry.epoch
        self.durable_seq = len(entries)
        self.stream_epoch = stream_epoch
        self.sync_epoch = sync_epoch
        self._catch_up_to = 0

    def applied_entries(self, result: ApplyResult) -> list[Entry]:
        """The entries an `apply` added to the prefix, in order: what to write to disk."""
        if not result.applied:
            return []
        return self._entries[result.applied[0] - 1 : result.applied[-1]]

    def discard_buffer(self) -> None:
        """Forget every entry waiting ahead of a gap (the master sends them again)."""
        self.out_of_order.clear()
        self.buffered_bytes = 0

    def apply(self, entries: Sequence[Entry], master_epoch: int | None = None) -> ApplyResult:
        """Apply a batch from the master of `master_epoch` (None: whatever epoch).

        A batch outside the bounds is refused whole (`result.refused` says
        why): nothing is applied and the buffer is discarded.
        """
        result = ApplyResult()
        if master_epoch is not None and master_epoch != self.stream_epoch:
            result.stale = True
            return result
        result.refused = self._refusal(entries, master_epoch)
        if result.refused is not None:
            self.discard_buffer()
            return result
        for entry in entries:
            self._apply_one(entry, result)
        return result

    def _refusal(self, entries: Sequence[Entry], master_epoch: int | None) -> str | None:
        """Why no correct master could have sent this batch now, or None.

        Checked before anything changes, in one pass that allocates nothing
        per entry: a batch of far-ahead seqs costs no memory.
        """
        limit = self.contiguous_seq + self.max_ahead
        # The prefix as it grows while the batch applies (entries in order close
        # gaps): only what would still wait behind a gap counts for the buffer.
        next_seq = self.contiguous_seq + 1
        incoming = 0
        for entry in entries:
            seq = entry.seq
            if seq < 1 or seq > limit:
                return (
                    f"seq {seq} is outside 1..{limit} (at most {self.max_ahead} beyond the "
                    f"contiguous prefix {self.contiguous_seq})"
                )
            if master_epoch is not None and entry.epoch > master_epoch:
                return (
                    f"entry {seq} has epoch {entry.epoch}, later than the stream's {master_epoch}"
                )
            if seq == next_seq:
                next_seq += 1
                while next_seq in self.out_of_order:
                    next_seq += 1
            elif seq > next_seq and seq not in self.out_of_order:
                incoming += entry.wire_bytes()
        if self.buffered_bytes + incoming > self.max_buffered_bytes:
            return (
                f"entries ahead of the gap at {next_seq} would hold "
                f"{self.buffered_bytes + incoming} bytes, over {self.max_buffered_bytes}"
            )
        return None

    def _apply_one(self, entry: Entry, result: ApplyResult) -> None:
        if entry.seq <= self.contiguous_seq:
            held = self._entries[entry.seq - 1]
            (result.duplicates if held == entry else result.conflicts).append(entry.seq)
            return
        if entry.seq > self.contiguous_seq + 1:
            waiting = self.out_of_order.get(entry.seq)
            if waiting is not None:
                # Kept as it is, like a held entry: a different one is a conflict.
                (result.duplicates if waiting == entry else result.conflicts).append(entry.seq)
                return
            result.buffered.append(entry.seq)
            self.out_of_order[entry.seq] = entry
            self.buffered_bytes += entry.wire_bytes()
            return
        self._append(entry)
        result.applied.append(entry.seq)
        # The gap just closed for whatever waited right behind it.
        while (nxt := self.out_of_order.pop(self.contiguous_seq + 1, None)) is not None:
            self.buffered_bytes -= nxt.wire_bytes()
            self._append(nxt)
            result.applied.append(nxt.seq)

    def _append(self, entry: Entry) -> None:
        if entry.epoch != self.last_epoch or not self._entries:
            self._epoch_first_seq.append(entry.seq)
            self._epoch_of_run.append(entry.epoch)
        self._entries.append(entry)
