"""The command-line client's pure parts: argument types, request bodies, the SSE parser,
the table renderers (what a terminal shows), the status table from /health answers."""

from __future__ import annotations

import argparse
import io

import pytest

from replog.cli import sse
from replog.cli.commands import post, status
from replog.cli.options import node_url, write_concern
from replog.cli.render import entry_line, message_row, message_table


@pytest.mark.parametrize("raw,value", [("1", 1), ("3", 3), ("majority", "majority")])
def test_write_concern_accepts_integers_from_1_and_majority(raw, value):
    assert write_concern(raw) == value


@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "two", "", " 2", "Majority", "+2"])
def test_write_concern_refuses_anything_else(raw):
    with pytest.raises(argparse.ArgumentTypeError):
        write_concern(raw)


def test_node_url_adds_http_and_drops_the_trailing_slash_but_refuses_other_schemes():
    assert node_url("127.0.0.2:5000") == "http://127.0.0.2:5000"
    assert node_url("https://h:1/") == "https://h:1"
    with pytest.raises(argparse.ArgumentTypeError):
        node_url("ftp://h:1")


def namespace(**kw):
    return argparse.Namespace(**{"w": None, "wtimeout": None, "id": None, **kw})


def test_one_message_body_carries_only_what_was_given():
    assert post.single_body(namespace(), "m") == {"message": "m"}
    body = post.single_body(namespace(w="majority", wtimeout=0, id="k"), "m")
    assert body == {"message": "m", "w": "majority", "wtimeout": 0, "id": "k"}


def test_batch_ids_are_numbered_across_batches():
    body = post.batch_body(namespace(id="x", w=2), ["a", "b"], 100)
    assert body == {
        "messages": [{"message": "a", "id": "x-100"}, {"message": "b", "id": "x-101"}],
        "w": 2,
    }
    assert post.batch_body(namespace(), ["a"], 0) == {"messages": [{"message": "a"}]}
    assert list(post.batches(map(str, range(5)), 2)) == [["0", "1"], ["2", "3"], ["4"]]


def parse(text: str) -> list[sse.Event]:
    return list(sse.events(text.split("\n")))


def test_sse_events_comments_and_multiline_data():
    text = ': keepalive\n\nid: 7\ndata: {"seq": 7}\n\nid:8\ndata: a\ndata: b\nevent: x\n\n'
    assert parse(text) == [sse.Event("7", '{"seq": 7}'), sse.Event("8", "a\nb")]


def test_sse_event_cut_off_before_its_blank_line_is_never_dispatched():
    assert parse('id: 1\ndata: {"seq": 1}\n\nid: 2\ndata: {"seq"') == [sse.Event("1", '{"seq": 1}')]


def test_sse_blank_lines_without_data_dispatch_nothing_and_reset_the_id():
    assert parse("id: 3\n\ndata: x\n\n") == [sse.Event(None, "x")]


ENTRIES = [
    {"seq": 1, "id": 1, "message": "msg1"},
    {"seq": 12, "id": None, "message": "two\nlines"},
    {"seq": 100, "id": "a-long-key", "message": "x" * 200},
]


def test_message_table_aligns_columns_escapes_newlines_and_fits_the_width():
    lines = message_table(ENTRIES, width=40).split("\n")
    assert lines[0].split() == ["SEQ", "ID", "MESSAGE"]
    assert lines[1].split() == ["1", "1", "msg1"]
    assert lines[2].split() == ["12", "-", "two\\nlines"]
    assert all(len(line) <= 40 for line in lines)
    assert lines[3].endswith("…") and lines[3].startswith("100  a-long-key  x")
    starts = {line.index(word) for line, word in zip(lines[1:], ["msg1", "two", "xx"], strict=True)}
    assert len(starts) == 1  # messages in one column


def test_message_table_without_width_keeps_whole_messages():
    assert message_table(ENTRIES).split("\n")[3].endswith("x" * 200)


def test_message_row_fixed_columns_for_a_live_table():
    row = message_row({"seq": 7, "id": "k", "message": "hello"}, width=80)
    assert row == "       7  k                 hello"
    assert len(message_row(ENTRIES[2], width=50)) == 50


def test_entry_line_is_compact_json_with_only_the_entry_fields():
    assert entry_line({"seq": 1, "id": None, "message": "é", "x": 1}) == (
        '{"seq":1,"id":null,"message":"é"}'
    )


def test_status_rows_from_the_master_and_secondaries_health():
    collected = {
        "url": "http://h:5000",
        "master": {
            "status": "ok",
            "last_seq": 9,
            "commit_seq": 8,
            "storage": "disk",
            "fsync": "always",
            "secondaries": [
                {
                    "id": "s1",
                    "url": "http://h:5001",
                    "status": "healthy",
                    "acked_seq": 9,
                    "lag": 0,
                    "last_heartbeat_ms_ago": 112,
                },
                {
                    "id": "s2",
                    "url": "http://h:5002",
                    "status": "unhealthy",
                    "acked_seq": 3,
                    "lag": 6,
                    "last_heartbeat_ms_ago": 4200,
                },
            ],
        },
        "secondaries": {
            "s1": {"storage": "memory", "commit_seq": 8},
            "s2": {"error": "cannot reach http://h:5002/health: connection refused"},
        },
    }
    rows, notes = status.rows(collected)
    assert rows == [
        ["master", "master", "http://h:5000", "ok", 9, 8, None, None, "disk (fsync always)"],
        ["s1", "secondary", "http://h:5001", "healthy", 9, 8, 0, "112 ms ago", "memory"],
        ["s2", "secondary", "http://h:5002", "unhealthy", 3, None, 6, "4.2 s ago", "unreachable"],
    ]
    assert notes == ["s2: cannot reach http://h:5002/health: connection refused"]
    text = status.render(collected).split("\n")
    assert text[0].split() == list(status.HEADERS)
    assert text[1].split()[:6] == ["master", "master", "http://h:5000", "ok", "9", "8"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_post_progress_is_redrawn_on_a_terminal_only():
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = post.Progress(stream)
        progress.add(100)
        progress.add(50)
        progress.done()
    assert pipe.getvalue() == ""
    shown = terminal.getvalue()
    assert shown.startswith("\rsent 100 messages (") and "\rsent 150 messages (" in shown
    assert shown.endswith("/s)\n") and shown.count("\n") == 1
