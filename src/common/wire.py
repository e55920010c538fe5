"""The replication stream's codec (one WebSocket frame per message), and its bounds.

The messages themselves, and the protocol's rules between them, are core.stream's
(Hello, Sync, Append, Heartbeat, Ack; MasterStream, SecondaryStream): this module
turns them into bytes and back (`encode`, `decode_message`), checking every frame.

The master connects to the secondary's
/replication?epoch=E&secondary=ID&cluster=C&max_frame=F
(E: its epoch, 1..MAX_INT; C: its cluster id, which a secondary of another
cluster refuses; F: the largest frame it may send, see below).

secondary -> master  {"type": "hello", "secondary": id, "contiguous_seq": k, "durable_seq": d,
                      "last_epoch": e, "sync_epoch": s, "epoch_runs": [[epoch, first_seq], ...],
                      "incarnation": i}
master -> secondary  {"type": "sync", "epoch": E, "keep": k, "epoch_start": n}
master -> secondary  {"type": "append", "entries": [[seq, epoch, id, message], ...], "commit": c}
master -> secondary  {"type": "heartbeat", "commit": c}
secondary -> master  {"type": "ack", "contiguous_seq": k}

`sync` tells the secondary that its first `keep` entries match the master's
log (the rest is discarded), and how long that log was when the master
opened. `commit` (optional on append and heartbeat: an older master sends
none, read as unknown) is the master's commit point, the highest seq a
majority of the cluster holds; a master sends a heartbeat for it when it
advances with no append going out. Acknowledgements carry the contiguous
prefix the secondary holds on disk (`durable_seq` in hello), never its
highest seq, so one ACK covers every earlier batch and a lost one costs
nothing. Every heartbeat is answered with an ACK.

Strict input: every frame is checked here before anything acts on it, and
anything else drops the stream (the receiver logs `bad_replication_message`
with a `reason`): a frame has exactly its type's fields; seqs and epochs are
integers in 0..MAX_INT (booleans are not integers), seqs of entries from 1;
`commit`, when present, is such an integer too (not null);
an entry is [seq, epoch, id, message] with id a string, a 64-bit integer or
null and message a string; an append carries 1..MAX_BATCH_ENTRIES entries of
consecutive seqs and non-decreasing epochs; the first frame after hello is
`sync`, and there is one; a hello reports at most MAX_EPOCH_RUNS epoch runs
(core.limits), starting at seq 1, within its log, and `durable_seq <=
contiguous_seq`; an ACK never covers more than the stream carried.

Frame sizes. The master sizes each append by its bytes on the wire: at most
MAX_BATCH_BYTES (1 MiB), or a single entry if that entry alone is larger. An
entry is at most about the size of the POST body that wrote it, the master's
`--max-body-bytes` (default 1 MiB, at most 64 MiB), so its largest frame is
`frame_limit(max_body_bytes)`. A secondary cannot trust a bound the dialler
announces (anyone can dial it when no cluster token is set), so it takes its
own: `frame_limit(--max-entry-bytes)`, its flag, default 1 MiB like the
master's `--max-body-bytes` and to be raised with it. The master announces its
bound in the dial query (`max_frame`) only so that a secondary set lower
warns at once (`frame_limit_below_master`) instead of at the first big entry.
The master reads small frames only (hello and ACKs: MASTER_READ_LIMIT). A
larger frame is refused by the WebSocket layer as its header arrives (close
code 1009), before its payload is read; the stream is dropped and resumes
from the secondary's contiguous prefix at the next dial.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any, TypeGuard

import orjson

from replog.core import limits
from replog.core.entry import Entry, WireEntry, wire_bytes
from replog.core.limits import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_EPOCH_RUNS
from replog.core.stream import Ack, Append, Heartbeat, Hello, Message, Sync
from replog.core.write_request import is_client_id

REPLICATION_PATH = "/replication"
# A secondary's log with epochs, for a restarting master: GET ?from=&limit=.
LOG_PATH = "/replication/log"
HEARTBEAT = orjson.dumps({"type": "heartbeat"})
# Seqs and epochs anywhere in the protocol stay within 0..MAX_INT (core.limits).
MAX_INT = limits.MAX_INT
# Secondary ids (and data-directory incarnations): at most this many characters,
# none of them a control character (ID_PATTERN, as the OpenAPI document says it).
MAX_ID_CHARS = 64
ID_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
_CONTROL = re.compile("[\\u0000-\\u001f\\u007f-\\u009f]")

# The master's --max-body-bytes: its default and its ceiling. An entry's frame
# is at most the body that wrote it plus FRAME_SLACK (the frame around it, two
# 16-digit numbers; orjson never writes a string longer than a client's JSON).
DEFAULT_MAX_ENTRY_BYTES = 1 << 20
MAX_ENTRY_BYTES_LIMIT = 64 << 20
FRAME_SLACK = 1024
# What the master reads on a stream: a hello of MAX_EPOCH_RUNS runs of
# 16-digit numbers is 0.36 MB, an ACK a few dozen bytes.
MASTER_READ_LIMIT = 512 << 10
# A page of GET /replication/log stops once it holds this many bytes (it
# always holds one entry, whatever its size); a master's fetch reads no more.
LOG_PAGE_BYTES = 4 << 20
LOG_PAGE_LIMIT = max(LOG_PAGE_BYTES, MAX_ENTRY_BYTES_LIMIT) + FRAME_SLACK
# The most entries such a page can hold: the smallest entry, [1,1,null,""], and a comma.
LOG_PAGE_MAX_ENTRIES = LOG_PAGE_BYTES // 14
# `{"entries":[]}`: the bytes of a log page around its entries.
_PAGE_FRAME_BYTES = 14

# Every frame's fields, exactly.
FIELDS = {
    "hello": frozenset(
        {
            "type",
            "secondary",
            "contiguous_seq",
            "durable_seq",
            "last_epoch",
            "sync_epoch",
            "epoch_runs",
            "incarnation",
        }
    ),
    "sync": frozenset({"type", "epoch", "keep", "epoch_start"}),
    "append": frozenset({"type", "entries"}),
    "heartbeat": frozenset({"type"}),
    "ack": frozenset({"type", "contiguous_seq"}),
}
# Fields a frame may carry besides its own (absent from an older peer's frames).
OPTIONAL_FIELDS = {
    "append": frozenset({"commit"}),
    "heartbeat": frozenset({"commit"}),
}


def frame_limit(max_entry_bytes: int) -> int:
    """The largest frame a master whose entries are at most `max_entry_bytes` sends."""
    return max(MAX_BATCH_BYTES, max_entry_bytes) + FRAME_SLACK


class WireError(ValueError):
    """A stream message that does not follow the protocol."""

    def __init__(self, reason: str, frame: str | None = None) -> None:
        super().__init__(reason)
        # The frame's type, once it is known to be one the receiver expects.
        self.frame = frame


def encode_append(
    entries: Sequence[Entry] | Sequence[WireEntry], commit: int | None = None
) -> bytes:
    """`entries`: Entry objects or wire items, [seq, epoch, id, message] each;
    `commit`: the master's commit point (None: left out)."""
    # orjson writes lists, not named tuples; map(list) is the cheapest conversion.
    frame: dict[str, Any] = {"type": "append", "entries": list(map(list, entries))}
    if commit is not None:
        frame["commit"] = commit
    return orjson.dumps(frame)


def encode_heartbeat(commit: int | None = None) -> bytes:
    if commit is None:
        return HEARTBEAT
    return orjson.dumps({"type": "heartbeat", "commit": commit})


def encode_ack(contiguous_seq: int) -> bytes:
    return orjson.dumps({"type": "ack", "contiguous_seq": contiguous_seq})


def encode_sync(epoch: int, keep: int, epoch_start: int) -> bytes:
    return orjson.dumps({"type": "sync", "epoch": epoch, "keep": keep, "epoch_start": epoch_start})


def encode_hello(hello: Hello | dict[str, Any]) -> bytes:
    if isinstance(hello, Hello):
        hello = {
            "secondary": hello.secondary,
            "contiguous_seq": hello.contiguous_seq,
            "durable_seq": hello.durable_seq,
            "last_epoch": hello.last_epoch,
            "sync_epoch": hello.sync_epoch,
            "epoch_runs": hello.epoch_runs,
            "incarnation": hello.incarnation,
        }
    return orjson.dumps({"type": "hello", **hello})


def encode(message: Message) -> bytes:
    """One message of the stream (core.stream) as its frame."""
    if isinstance(message, Append):
        return encode_append(message.entries, message.commit)
    if isinstance(message, Ack):
        return encode_ack(message.contiguous_seq)
    if isinstance(message, Heartbeat):
        return encode_heartbeat(message.commit)
    if isinstance(message, Sync):
        return encode_sync(message.epoch, message.keep, message.epoch_start)
    return encode_hello(message)


def decode(raw: str | bytes, *expected_types: str) -> dict[str, Any]:
    """A frame of one of `expected_types`, with exactly its fields."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise WireError(f"expected a JSON object of type {' or '.join(expected_types)}")
    kind = doc.get("type")
    if not isinstance(kind, str) or kind not in expected_types:
        raise WireError(f"expected type {' or '.join(expected_types)}, got {str(kind)[:40]!r}")
    fields = FIELDS[kind]
    allowed = fields | OPTIONAL_FIELDS.get(kind, frozenset())
    if not fields <= doc.keys() <= allowed:
        missing = sorted(fields - doc.keys())
        unknown = sorted(str(k)[:40] for k in doc.keys() - allowed)
        raise WireError(f"{kind} frame: missing fields {missing}, unknown fields {unknown}")
    return doc


def valid_int(value: object) -> TypeGuard[int]:
    """A seq or epoch: an integer in 0..MAX_INT (booleans are not integers)."""
    return type(value) is int and 0 <= value <= MAX_INT


def decode_int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if not valid_int(value):
        raise WireError(f"{key!r} must be an integer from 0 to {MAX_INT}, got {str(value)[:40]}")
    return value


def decode_seq(doc: dict[str, Any], key: str = "contiguous_seq") -> int:
    return decode_int(doc, key)


def valid_id(value: object) -> TypeGuard[str]:
    """A secondary id or an incarnation: 1..MAX_ID_CHARS characters, no control characters."""
    return (
        isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and _CONTROL.search(value) is None
    )


def decode_epoch_runs(doc: dict[str, Any], length: int) -> list[list[int]]:
    """[[epoch, first_seq], ...] describing a log of `length` entries: at most
    MAX_EPOCH_RUNS runs (counted before anything else is looked at), starting
    at seq 1, first seqs ascending and within the log; none for an empty log."""
    runs = doc.get("epoch_runs")
    if not isinstance(runs, list):
        raise WireError("'epoch_runs' must be a list of [epoch, first_seq] pairs")
    if len(runs) > MAX_EPOCH_RUNS:
        raise WireError(
            f"'epoch_runs' has {len(runs)} runs, more than {MAX_EPOCH_RUNS} (a log has one "
            "run per master epoch that wrote to it)"
        )
    previous = 0
    for run in runs:
        if not (type(run) is list and len(run) == 2 and valid_int(run[0]) and valid_int(run[1])):
            raise WireError(f"bad epoch run {str(run)[:80]}: want [epoch, first_seq]")
        first = run[1]
        if (first != 1 if previous == 0 else first <= previous) or first > length:
            raise WireError(
                "'epoch_runs' must start at seq 1 with ascending first seqs within the log "
                f"of {length} entries"
            )
        previous = first
    if length and not runs:
        raise WireError(f"'epoch_runs' is empty for a log of {length} entries")
    return runs


def decode_hello(doc: dict[str, Any]) -> Hello:
    """A `hello` frame (from `decode(raw, "hello")`), checked whole."""
    for key in ("secondary", "incarnation"):
        if not valid_id(doc[key]):
            raise WireError(f"{key!r} must be 1 to {MAX_ID_CHARS} characters, none a control one")
    length = decode_seq(doc)
    durable = decode_seq(doc, "durable_seq")
    if durable > length:
        raise WireError(f"'durable_seq' {durable} is beyond 'contiguous_seq' {length}")
    return Hello(
        secondary=doc["secondary"],
        incarnation=doc["incarnation"],
        contiguous_seq=length,
        durable_seq=durable,
        last_epoch=decode_int(doc, "last_epoch"),
        sync_epoch=decode_int(doc, "sync_epoch"),
        epoch_runs=decode_epoch_runs(doc, length),
    )


def decode_sync(doc: dict[str, Any]) -> Sync:
    return Sync(
        epoch=decode_int(doc, "epoch"),
        keep=decode_int(doc, "keep"),
        epoch_start=decode_int(doc, "epoch_start"),
    )


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


def check_run(entries: list[Entry], first_seq: int | None = None) -> None:
    """Consecutive seqs (from `first_seq`, if given) and non-decreasing epochs, as any
    stretch of a log has."""
    if entries and first_seq is not None and entries[0].seq != first_seq:
        raise WireError(f"entries start at seq {entries[0].seq}, not {first_seq}")
    for before, entry in itertools.pairwise(entries):
        if entry.seq != before.seq + 1:
            raise WireError(f"seq {entry.seq} follows seq {before.seq}: seqs must be consecutive")
        if entry.epoch < before.epoch:
            raise WireError(f"entry {entry.seq} has an older epoch than entry {before.seq}")


def decode_append(doc: dict[str, Any]) -> list[Entry]:
    """An `append` frame's entries: 1..MAX_BATCH_ENTRIES of them, a stretch of a log."""
    items = doc.get("entries")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_BATCH_ENTRIES:
        raise WireError(f"'entries' must be a list of 1 to {MAX_BATCH_ENTRIES} entries")
    entries = decode_entries(doc)
    check_run(entries)
    return entries


def decode_commit(doc: dict[str, Any]) -> int | None:
    """The optional `commit` of an append or heartbeat: an integer in 0..MAX_INT, or absent."""
    return decode_int(doc, "commit") if "commit" in doc else None


def decode_message(raw: str | bytes, *expected_types: str) -> Message:
    """A frame of one of `expected_types`, checked whole, as its message (core.stream).

    The WireError's `frame` names the frame's type once that is known."""
    doc = decode(raw, *expected_types)
    kind = doc["type"]
    try:
        if kind == "append":
            return Append(decode_append(doc), decode_commit(doc))
        if kind == "ack":
            return Ack(decode_seq(doc))
        if kind == "heartbeat":
            return Heartbeat(decode_commit(doc))
        if kind == "sync":
            return decode_sync(doc)
        return decode_hello(doc)
    except WireError as exc:
        exc.frame = kind
        raise


def log_page(entries: list[Entry], max_bytes: int = LOG_PAGE_BYTES) -> bytes:
    """A page of GET /replication/log: the first entries whose page stays within
    `max_bytes`, and always the first one."""
    size = _PAGE_FRAME_BYTES - 1
    items: list[WireEntry] = []
    for entry in entries:
        size += 1 + wire_bytes(*entry)
        if items and size > max_bytes:
            break
        items.append(entry.to_wire())
    return orjson.dumps({"entries": items})
