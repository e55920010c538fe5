"""The replication stream's messages (one WebSocket frame each).

The master connects to the secondary's /replication?epoch=E&secondary=ID&cluster=C
(E: its epoch; C: its cluster id, which a secondary of another cluster refuses).

secondary -> master  {"type": "hello", "secondary": id, "contiguous_seq": k, "durable_seq": d,
                      "last_epoch": e, "sync_epoch": s, "epoch_runs": [[epoch, first_seq], ...],
                      "incarnation": i}
master -> secondary  {"type": "sync", "epoch": E, "keep": k, "epoch_start": n}
master -> secondary  {"type": "append", "entries": [[seq, epoch, id, message], ...]}
master -> secondary  {"type": "heartbeat"}
secondary -> master  {"type": "ack", "contiguous_seq": k}

`sync` tells the secondary that its first `keep` entries match the master's
log (the rest is discarded), and how long that log was when the master
opened. Acknowledgements carry the contiguous prefix the secondary holds on
disk (`durable_seq` in hello), never its highest seq, so one ACK covers every
earlier batch and a lost one costs nothing. Every heartbeat is answered with an ACK.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.entry import Entry
from core.write_request import is_client_id

REPLICATION_PATH = "/replication"
# A secondary's log with epochs, for a restarting master: GET ?from=&limit=.
LOG_PATH = "/replication/log"
# Largest stream message either end accepts; batches stay far below it.
MAX_MESSAGE_BYTES = 256 << 20
HEARTBEAT = orjson.dumps({"type": "heartbeat"})
# Seqs and epochs anywhere in the protocol stay below this (an epoch also
# travels as a query parameter of at most 18 digits; the clock-based epochs of
# an in-memory master are about 2e12).
MAX_INT = 10**15


class WireError(ValueError):
    """A stream message that does not follow the protocol."""


def encode_append(items: list[list]) -> bytes:
    """`items`: entries in wire form, [seq, epoch, id, message] each."""
    return orjson.dumps({"type": "append", "entries": items})


def encode_ack(contiguous_seq: int) -> bytes:
    return orjson.dumps({"type": "ack", "contiguous_seq": contiguous_seq})


def encode_sync(epoch: int, keep: int, epoch_start: int) -> bytes:
    return orjson.dumps({"type": "sync", "epoch": epoch, "keep": keep, "epoch_start": epoch_start})


def encode_hello(hello: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "hello", **hello})


def decode(raw: str | bytes, *expected_types: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") not in expected_types:
        raise WireError(f"expected one of {expected_types}")
    return doc


def valid_int(value: object) -> bool:
    """A seq or epoch: an integer in 0..MAX_INT (booleans are not integers)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT


def decode_int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if not valid_int(value):
        raise WireError(f"{key!r} must be an integer from 0 to {MAX_INT}")
    return value  # type: ignore[return-value]


def decode_seq(doc: dict[str, Any], key: str = "contiguous_seq") -> int:
    return decode_int(doc, key)


def decode_epoch_runs(doc: dict[str, Any], length: int) -> list[list[int]]:
    """[[epoch, first_seq], ...] describing a log of `length` entries: starts at seq 1,
    first seqs ascending and within the log."""
    runs = doc.get("epoch_runs")
    ok = isinstance(runs, list) and all(
        isinstance(r, list)
        and len(r) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in r)
        for r in runs
    )
    if ok and length:
        firsts = [r[1] for r in runs]
        ok = (
            bool(runs) and firsts[0] == 1 and firsts == sorted(set(firsts)) and firsts[-1] <= length
        )
    if not ok:
        raise WireError("'epoch_runs' must be [epoch, first_seq] pairs describing the log")
    return runs


def decode_entries(doc: dict[str, Any]) -> list[Entry]:
    """`entries`: [seq, epoch, id, message] each, checked before anything stores them."""
    items = doc.get("entries")
    if not isinstance(items, list):
        raise WireError("'entries' must be a list")
    entries = []
    for item in items:
        if not (
            type(item) is list
            and len(item) == 4
            and valid_int(item[0])
            and item[0] > 0
            and valid_int(item[1])
            and is_client_id(item[2])
            and type(item[3]) is str
        ):
            raise WireError(
                f"bad entry {str(item)[:80]}: want [seq > 0, epoch, id (string, 64-bit "
                "integer or null), message (string)]"
            )
        entries.append(Entry(*item))
    return entries
