"""The replication stream's messages (one WebSocket text frame each).

secondary -> master  {"type": "hello", "secondary": id, "contiguous_seq": k, "last_epoch": e}
master -> secondary  {"type": "append", "entries": [[seq, epoch, id, message], ...]}
secondary -> master  {"type": "ack", "contiguous_seq": k}

Acknowledgements carry the contiguous prefix the secondary holds, never its
highest seq, so one ACK covers every earlier batch and a lost one costs nothing.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.entry import Entry

REPLICATION_PATH = "/replication"
# Largest stream message either end accepts; batches stay far below it.
MAX_MESSAGE_BYTES = 256 << 20


class WireError(ValueError):
    """A stream message that does not follow the protocol."""


def encode_append(entries: list[Entry]) -> bytes:
    return orjson.dumps({"type": "append", "entries": [e.to_wire() for e in entries]})


def encode_ack(contiguous_seq: int) -> bytes:
    return orjson.dumps({"type": "ack", "contiguous_seq": contiguous_seq})


def encode_hello(secondary_id: str, contiguous_seq: int, last_epoch: int) -> bytes:
    return orjson.dumps(
        {
            "type": "hello",
            "secondary": secondary_id,
            "contiguous_seq": contiguous_seq,
            "last_epoch": last_epoch,
        }
    )


def decode(raw: str | bytes, expected_type: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != expected_type:
        raise WireError(f"expected a {expected_type!r} message")
    return doc


def decode_seq(doc: dict[str, Any], key: str = "contiguous_seq") -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WireError(f"{key!r} must be a non-negative integer")
    return value


def decode_append(raw: str | bytes) -> list[Entry]:
    doc = decode(raw, "append")
    try:
        return [Entry.from_wire(item) for item in doc["entries"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad entries: {exc}") from None
