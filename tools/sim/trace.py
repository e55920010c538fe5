"""A bounded trace of simulation events, printable as readable lines.

The simulator records every event (frames, faults, clock jumps...) here. Only the
newest `capacity` are kept, so a long run costs bounded memory and a failure still
shows what led to it; `total` counts every event ever recorded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

# (virtual time, kind, parts): formatted only when printed, recording stays cheap.
TraceEntry = tuple[float, str, tuple[object, ...]]


class Trace:
    def __init__(self, clock: Callable[[], float], capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("a trace keeps at least one event")
        self._clock = clock
        self._entries: deque[TraceEntry] = deque(maxlen=capacity)
        self.total = 0

    def record(self, kind: str, *parts: object) -> None:
        self._entries.append((self._clock(), kind, parts))
        self.total += 1

    def entries(self) -> list[TraceEntry]:
        """The kept events, oldest first, exactly as recorded (for bit-for-bit comparison)."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lines(self, last: int | None = None) -> Iterator[str]:
        entries = list(self._entries)
        if last is not None:
            entries = entries[-last:]
        for when, kind, parts in entries:
            yield f"{when:16.6f} {kind:<12} {' '.join(str(part) for part in parts)}"

    def format(self, last: int | None = None) -> str:
        dropped = self.total - len(self._entries)
        head = [f"... {dropped} earlier events not kept"] if dropped else []
        return "\n".join([*head, *self.lines(last)])
