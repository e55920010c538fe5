"""One log entry: what every node stores and replicates."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

# A client's idempotency key: compared as a JSON value, so 1 and "1" differ.
ClientId = int | str
# An entry in wire form, [seq, epoch, id, message]: on the replication stream and on disk.
WireEntry = list[int | str | None]
# An entry as `GET /` shows it: {"seq", "id", "message"}.
PublicMessage = dict[str, int | str | None]


class Entry(NamedTuple):
    """A message at its place in the total order.

    `seq` is the position in the log (1, 2, 3, ...). `epoch` is the master run
    that created the entry; it lets a node tell two different entries that
    claim the same `seq` apart. A tuple, not a dataclass: a restarting node
    builds a million of them from its log, three times faster.
    """

    seq: int
    epoch: int
    id: ClientId | None
    message: str

    def to_wire(self) -> WireEntry:
        """Compact form used on the replication stream and on disk."""
        return [self.seq, self.epoch, self.id, self.message]

    def wire_bytes(self) -> int:
        """Bytes of `to_wire()` as compact JSON."""
        return wire_bytes(*self)

    @classmethod
    def from_wire(cls, item: Sequence[Any]) -> Entry:
        """`item`: an entry in wire form whose fields are already checked (common.wire)."""
        seq, epoch, client_id, message = item
        return cls(seq, epoch, client_id, message)


@dataclass(frozen=True, slots=True)
class Appended:
    """One item of a write: the entry it names, and whether it was already in the log."""

    entry: Entry
    duplicate: bool


# -- sizes on the wire ---------------------------------------------------------
#
# The master sizes its replication batches by the bytes they take on the wire
# (compact JSON as orjson writes it: UTF-8, no spaces), not by characters: a
# message of control characters or quotes takes up to six bytes per character,
# one of CJK text three. These give the exact size, without encoding anything.

# Characters JSON must escape: `"`, `\` and the control characters.
_ESCAPED = re.compile(r'["\\\x00-\x1f]')
# Those written as two bytes (\" \\ \b \t \n \f \r); the others take six (\u00XX).
_SHORT_ESCAPES = frozenset('"\\\b\t\n\f\r')


def json_string_bytes(text: str) -> int:
    """Bytes of `text` as a JSON string, quotes included."""
    if text.isascii():
        # The common case, with C-level scans only: printable ASCII without `"` or `\`.
        if text.isprintable() and '"' not in text and "\\" not in text:
            return len(text) + 2
        size = len(text)
    else:
        size = len(text.encode("utf-8", "surrogatepass"))
    if _ESCAPED.search(text) is not None:
        size += sum(1 if c in _SHORT_ESCAPES else 5 for c in _ESCAPED.findall(text))
    return size + 2


def json_value_bytes(value: ClientId | None) -> int:
    """Bytes of an id (null, an integer or a string) as JSON."""
    if value is None:
        return 4
    if isinstance(value, str):
        return json_string_bytes(value)
    return len(str(value))


def wire_bytes(seq: int, epoch: int, client_id: ClientId | None, message: str) -> int:
    """Bytes of the entry `[seq, epoch, id, message]` as compact JSON."""
    return (
        len(str(seq))
        + len(str(epoch))
        + json_value_bytes(client_id)
        + json_string_bytes(message)
        + 5  # [ , , , ]
    )
