"""The secondary's state machine: a gap-free log plus a buffer for early entries.

Entries may arrive more than once (a stream restarted and resent them) or out
of order (a delayed batch finished after a later one). Readers only ever see
the contiguous prefix 1..contiguous_seq: an entry that arrives ahead of a gap
waits in `out_of_order` until the gap closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.entry import Entry


@dataclass(slots=True)
class ApplyResult:
    """What one `apply()` did, for the caller to log and acknowledge."""

    applied: list[int] = field(default_factory=list)
    buffered: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    # seqs where the sender's entry differs from the one held (different epoch).
    conflicts: list[int] = field(default_factory=list)


class FollowerLog:
    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self.out_of_order: dict[int, Entry] = {}

    @property
    def contiguous_seq(self) -> int:
        """Highest seq such that 1..contiguous_seq are all held."""
        return len(self._entries)

    @property
    def last_epoch(self) -> int:
        return self._entries[-1].epoch if self._entries else 0

    def entries(self, start_seq: int = 1, limit: int | None = None) -> list[Entry]:
        start = max(start_seq, 1) - 1
        stop = None if limit is None else start + limit
        return self._entries[start:stop]

    def apply(self, entries: list[Entry]) -> ApplyResult:
        result = ApplyResult()
        for entry in entries:
            self._apply_one(entry, result)
        return result

    def _apply_one(self, entry: Entry, result: ApplyResult) -> None:
        if entry.seq <= self.contiguous_seq:
            held = self._entries[entry.seq - 1]
            (result.duplicates if held == entry else result.conflicts).append(entry.seq)
            return
        if entry.seq > self.contiguous_seq + 1:
            if entry.seq in self.out_of_order:
                result.duplicates.append(entry.seq)
            else:
                result.buffered.append(entry.seq)
            self.out_of_order[entry.seq] = entry
            return
        self._entries.append(entry)
        result.applied.append(entry.seq)
        # The gap just closed for whatever waited right behind it.
        while (nxt := self.out_of_order.pop(self.contiguous_seq + 1, None)) is not None:
            self._entries.append(nxt)
            result.applied.append(nxt.seq)
