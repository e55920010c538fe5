"""The replication stream's frames are checked before anything stores them."""

import orjson
import pytest

from replog.common import wire
from replog.core import APPEND_FRAME_BYTES, Entry
from replog.core.entry import json_string_bytes, wire_bytes
from replog.core.limits import MAX_BATCH_ENTRIES, MAX_EPOCH_RUNS
from replog.core.replication_log import commit_field_bytes


def test_well_formed_entries_decode():
    doc = {"entries": [[1, 2, None, "a"], [2, 2, "k", ""], [3, 2, -(2**63), "c"]]}
    assert wire.decode_entries(doc) == [
        Entry(1, 2, None, "a"),
        Entry(2, 2, "k", ""),
        Entry(3, 2, -(2**63), "c"),
    ]


@pytest.mark.parametrize(
    "item",
    [
        [0, 1, None, "seq 0"],
        [-1, 1, None, "negative"],
        [True, 1, None, "bool seq"],
        [1, "1", None, "string epoch"],
        [1, 10**18, None, "epoch out of bounds"],
        [1, 1, {"a": 1}, "object id"],
        [1, 1, 2**63, "id beyond 64 bits"],
        [1, 1, 1.5, "float id"],
        [1, 1, None, 5],
        [1, 1, None],
        [1, 1, None, "x", "extra"],
        {"seq": 1},
        "1",
    ],
)
def test_malformed_entries_are_refused(item):
    with pytest.raises(wire.WireError):
        wire.decode_entries({"entries": [[1, 1, None, "ok"], item]})


def test_entries_must_be_a_list():
    for doc in ({}, {"entries": None}, {"entries": {"1": 1}}):
        with pytest.raises(wire.WireError):
            wire.decode_entries(doc)


# -- sizes: the master's batch sizing counts the bytes orjson writes -----------------


def test_json_string_bytes_is_exact_for_every_character():
    singles = [chr(c) for c in range(0x3000) if not 0xD800 <= c <= 0xDFFF]
    singles += ["\uffff", "\U0001f600", "\U0010ffff", "\u2028"]
    for ch in singles:
        assert json_string_bytes(ch) == len(orjson.dumps(ch)), repr(ch)
    text = 'plain "quoted" \\ back\tslash\n\x01\x7f é 中文 😀 \u2028' * 50
    assert json_string_bytes(text) == len(orjson.dumps(text))


@pytest.mark.parametrize(
    "entry",
    [
        Entry(1, 1, None, ""),
        Entry(wire.MAX_INT, wire.MAX_INT, -(2**63), "x"),
        Entry(42, 7, 2**63 - 1, "\x00" * 100),
        Entry(3, 2, 'id "with" \\ escapes\n', "中文" * 30),
        Entry(9, 9, "é", "😀" * 7),
    ],
)
def test_wire_bytes_is_the_entrys_encoded_size(entry):
    assert entry.wire_bytes() == wire_bytes(*entry) == len(orjson.dumps(entry.to_wire()))


def test_the_append_frame_overhead_matches_the_encoder():
    assert len(wire.encode_append([])) == APPEND_FRAME_BYTES


@pytest.mark.parametrize(
    "message",
    ["x", "\x01", '"', "中", "😀", "\u2028"],
    ids=["ascii", "control", "quote", "cjk", "astral", "separator"],
)
def test_an_entry_from_the_largest_body_fits_the_frame_limit(message):
    """A body of --max-body-bytes, however its message is written, makes a frame within
    frame_limit(--max-body-bytes): orjson never writes a string longer than the client."""
    max_body = 2 << 20  # above the batch bound, so the entry decides
    for escaped in (True, False):
        unit = len(orjson.dumps(message)) - 2 if escaped else len(message.encode())
        if not escaped and message in ('"', "\x01"):
            continue  # these must be escaped in JSON
        overhead = len(b'{"message":"","id":""}')
        count = (max_body - overhead) // 2 // unit
        client_id = "k" * ((max_body - overhead) // 2)
        body_len = overhead + count * unit + len(client_id)
        assert body_len <= max_body
        frame = wire.encode_append([[wire.MAX_INT, wire.MAX_INT, client_id, message * count]])
        assert len(frame) <= wire.frame_limit(max_body)
    assert wire.frame_limit(wire.DEFAULT_MAX_ENTRY_BYTES) == (1 << 20) + wire.FRAME_SLACK


# -- frames: exact fields, checked values --------------------------------------------


@pytest.mark.parametrize(
    ("raw", "types"),
    [
        (b"{not json", ("append",)),
        (b"\xff\xfe", ("append",)),
        (b"[1, 2]", ("append",)),
        (b'"append"', ("append",)),
        (b'{"type": "ack", "contiguous_seq": 1}', ("append", "sync", "heartbeat")),
        (b'{"type": ["append"], "entries": []}', ("append",)),
        (b'{"type": "bogus"}', ("append",)),
        (b'{"type": "append"}', ("append",)),
        (b'{"type": "heartbeat", "extra": 1}', ("heartbeat",)),
        (b'{"type": "ack", "contiguous_seq": 1, "commit": 1}', ("ack",)),
        (b'{"type": "sync", "epoch": 1, "keep": 0, "epoch_start": 0, "commit": 1}', ("sync",)),
        (b'{"type": "sync", "epoch": 1, "keep": 0}', ("sync",)),
        (b'{"entries": []}', ("append",)),
    ],
)
def test_frames_of_the_wrong_shape_are_refused(raw, types):
    with pytest.raises(wire.WireError):
        wire.decode(raw, *types)


def test_well_formed_frames_decode():
    assert wire.decode(wire.HEARTBEAT, "heartbeat") == {"type": "heartbeat"}
    sync = wire.decode_sync(wire.decode(wire.encode_sync(3, 2, 1), "sync"))
    assert sync == wire.Sync(epoch=3, keep=2, epoch_start=1)
    assert wire.decode_seq(wire.decode(wire.encode_ack(5), "ack")) == 5
    frame = wire.encode_append([[1, 1, None, "a"], [2, 1, "k", "b"], [3, 2, 5, "c"]])
    assert [e.seq for e in wire.decode_append(wire.decode(frame, "append"))] == [1, 2, 3]


@pytest.mark.parametrize("value", ["1", 1.0, True, -1, wire.MAX_INT + 1, None, [1]])
def test_a_commit_point_must_be_an_integer_in_bounds_or_absent(value):
    for frame in (
        {"type": "heartbeat", "commit": value},
        {"type": "append", "entries": [[1, 1, None, "a"]], "commit": value},
    ):
        with pytest.raises(wire.WireError, match="commit"):
            wire.decode_message(orjson.dumps(frame), "append", "heartbeat")


def test_a_commit_point_is_optional_and_encoded_only_when_known():
    assert wire.encode_heartbeat() == wire.HEARTBEAT == b'{"type":"heartbeat"}'
    assert wire.encode_heartbeat(7) == b'{"type":"heartbeat","commit":7}'
    frame = wire.encode_append([[1, 1, None, "a"]], commit=0)
    assert frame == b'{"type":"append","entries":[[1,1,null,"a"]],"commit":0}'
    assert len(wire.encode_append([], 123)) == APPEND_FRAME_BYTES + commit_field_bytes(123)


@pytest.mark.parametrize("value", ["1", 1.0, True, -1, wire.MAX_INT + 1, None, [1]])
def test_sync_numbers_must_be_integers_in_bounds(value):
    for key in ("epoch", "keep", "epoch_start"):
        doc = {"type": "sync", "epoch": 1, "keep": 0, "epoch_start": 0, key: value}
        with pytest.raises(wire.WireError):
            wire.decode_sync(doc)


@pytest.mark.parametrize(
    "entries",
    [
        [],
        [[1, 1, None, "a"], [3, 1, None, "gap"]],
        [[2, 1, None, "a"], [1, 1, None, "back"]],
        [[1, 1, None, "a"], [1, 1, None, "again"]],
        [[1, 2, None, "a"], [2, 1, None, "older epoch"]],
        [[i, 1, None, ""] for i in range(1, MAX_BATCH_ENTRIES + 2)],
    ],
    ids=["empty", "gap", "backwards", "repeated", "epoch-back", "too-many"],
)
def test_an_append_is_a_stretch_of_a_log(entries):
    with pytest.raises(wire.WireError):
        wire.decode_append({"type": "append", "entries": entries})


# -- hello ------------------------------------------------------------------------


def hello(**changes):
    doc = {
        "type": "hello",
        "secondary": "s1",
        "contiguous_seq": 5,
        "durable_seq": 4,
        "last_epoch": 3,
        "sync_epoch": 3,
        "epoch_runs": [[1, 1], [3, 4]],
        "incarnation": "inc",
        **changes,
    }
    return wire.decode(orjson.dumps(doc), "hello")


def test_a_well_formed_hello_decodes():
    decoded = wire.decode_hello(hello())
    assert decoded.contiguous_seq == 5 and decoded.durable_seq == 4
    assert decoded.epoch_runs == [[1, 1], [3, 4]]
    empty = wire.decode_hello(hello(contiguous_seq=0, durable_seq=0, epoch_runs=[]))
    assert empty.epoch_runs == []


@pytest.mark.parametrize(
    "changes",
    [
        {"durable_seq": 6},
        {"contiguous_seq": "5"},
        {"durable_seq": True},
        {"last_epoch": -1},
        {"sync_epoch": wire.MAX_INT + 1},
        {"epoch_runs": None},
        {"epoch_runs": [[1, 2]]},
        {"epoch_runs": [[1, 1], [3, 1]]},
        {"epoch_runs": [[1, 1], [3, 6]]},
        {"epoch_runs": [[1, 1], [3]]},
        {"epoch_runs": [[1, 1], ["3", 4]]},
        {"epoch_runs": [[1, 1], [-3, 4]]},
        {"epoch_runs": []},
        {"contiguous_seq": 0, "durable_seq": 0},
        {"secondary": ""},
        {"secondary": "x" * 65},
        {"secondary": 5},
        {"incarnation": "a\nb"},
    ],
)
def test_a_bad_hello_is_refused(changes):
    with pytest.raises(wire.WireError):
        wire.decode_hello(hello(**changes))


def test_a_hello_with_too_many_epoch_runs_is_refused_before_they_are_read():
    runs = [[1, 1]] * 2_000_000  # the same pair: cheap to build, counted before read
    with pytest.raises(wire.WireError, match="more than 10000"):
        wire.decode_epoch_runs({"epoch_runs": runs}, 10**6)
    just_enough = [[epoch, epoch] for epoch in range(1, MAX_EPOCH_RUNS + 1)]
    assert wire.decode_epoch_runs({"epoch_runs": just_enough}, MAX_EPOCH_RUNS) == just_enough


def test_the_largest_hello_fits_what_the_master_reads():
    big = wire.MAX_INT
    runs = [[big - i, big - MAX_EPOCH_RUNS + i] for i in range(MAX_EPOCH_RUNS)]
    frame = wire.encode_hello(
        {
            "secondary": "\x7f" * wire.MAX_ID_CHARS,
            "contiguous_seq": big,
            "durable_seq": big,
            "last_epoch": big,
            "sync_epoch": big,
            "epoch_runs": runs,
            "incarnation": "中" * wire.MAX_ID_CHARS,
        }
    )
    assert len(frame) <= wire.MASTER_READ_LIMIT
    assert len(wire.encode_ack(big)) <= wire.MASTER_READ_LIMIT


def test_ids_are_short_strings_without_control_characters():
    assert wire.valid_id("secondary_slow") and wire.valid_id("x" * wire.MAX_ID_CHARS)
    for bad in ("", "x" * (wire.MAX_ID_CHARS + 1), "a\x00b", "tab\t", None, 5):
        assert not wire.valid_id(bad)


# -- log pages ---------------------------------------------------------------------


def test_a_log_page_stops_at_its_byte_budget_but_holds_one_entry():
    entries = [Entry(i, 1, None, "m" * 100) for i in range(1, 101)]
    page = wire.log_page(entries, max_bytes=1000)
    items = orjson.loads(page)["entries"]
    assert len(page) <= 1000 and len(items) == 8
    assert len(orjson.dumps({"entries": [e.to_wire() for e in entries[:9]]})) > 1000
    huge = [Entry(1, 1, None, "z" * 5000), Entry(2, 1, None, "y")]
    assert [i[0] for i in orjson.loads(wire.log_page(huge, max_bytes=1000))["entries"]] == [1]
    assert orjson.loads(wire.log_page([])) == {"entries": []}
