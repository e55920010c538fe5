"""Readers waiting for the log to grow: `GET /?wait=` and `GET /stream` on every node.

A waiter is a token that needs entry `seq` to be readable (under its read
concern). The node tells the structure how far its readable prefix reached
(`advance`); it hands back exactly the tokens now satisfied, in seq order.
Kept in a heap keyed by seq, so an advance costs O(woken * log n) whatever the
number of readers still waiting: thousands of idle long polls cost writes
nothing. A cancelled token (its client went away, its wait ran out) is
forgotten at once in the index and its heap slot skipped when reached.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable


class ReadWaiters:
    """Tokens keyed by the seq they need, woken as the readable prefix grows."""

    def __init__(self, readable_seq: int = 0) -> None:
        # The readable prefix as last told (`advance`): a waiter at or below it is
        # satisfied at once.
        self.readable_seq = readable_seq
        self._heap: list[tuple[int, int, Hashable]] = []
        # token -> its heap entry's order number; a token not here is no longer waiting.
        self._waiting: dict[Hashable, int] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._waiting)

    def register(self, token: Hashable, seq: int) -> bool:
        """Wait for `seq` to be readable. False (nothing registered) if it already is."""
        if seq <= self.readable_seq:
            return False
        if token in self._waiting:
            raise ValueError(f"{token!r} is already waiting")
        order = next(self._order)
        self._waiting[token] = order
        heapq.heappush(self._heap, (seq, order, token))
        return True

    def cancel(self, token: Hashable) -> None:
        """Forget `token` (a no-op if it is not waiting)."""
        self._waiting.pop(token, None)
        # Slots of forgotten tokens are dropped when they reach the top; if most of
        # the heap is dead, rebuild it so memory follows the live waiters.
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._waiting):
            self._heap = [item for item in self._heap if self._waiting.get(item[2]) == item[1]]
            heapq.heapify(self._heap)

    def advance(self, readable_seq: int) -> list[Hashable]:
        """The readable prefix is now 1..`readable_seq`: the tokens now satisfied,
        lowest seq first, each forgotten as it is returned. (A secondary's prefix
        can shrink when a new master's `sync` cuts it; then nothing wakes.)"""
        self.readable_seq = readable_seq
        woken = []
        heap = self._heap
        while heap and heap[0][0] <= readable_seq:
            _, order, token = heapq.heappop(heap)
            if self._waiting.get(token) == order:
                del self._waiting[token]
                woken.append(token)
        return woken
