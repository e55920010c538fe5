"""The log format: `auto` is console on a terminal, JSON otherwise; colours per NO_COLOR /
FORCE_COLOR; `replog up`'s relay prefixes whole lines with the node's name."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import structlog

from replog.cli.commands.up import LineRelay, child_environment
from replog.common.logs import configure_logging, resolve_log_format, use_colors
from support.terminal import ANSI_ESCAPE, Terminal


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    yield term
    term.close()


@pytest.fixture
def tty(terminal: Terminal) -> Iterator[io.TextIOWrapper]:
    stream = open(os.dup(terminal.slave), "w", buffering=1)  # noqa: SIM115
    yield stream
    stream.close()


@pytest.fixture
def piped() -> Iterator[io.TextIOWrapper]:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    stream = open(write_fd, "w")  # noqa: SIM115
    yield stream
    stream.close()


@pytest.fixture
def no_color_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def test_auto_is_console_on_a_terminal_and_json_otherwise(tty, piped):
    assert tty.isatty() and not piped.isatty()
    assert resolve_log_format("auto", tty) == "console"
    assert resolve_log_format("auto", piped) == "json"
    for forced in ("json", "console"):
        assert resolve_log_format(forced, tty) == forced
        assert resolve_log_format(forced, piped) == forced


def test_colours_on_a_terminal_unless_no_color_and_forced_by_force_color(tty, piped):
    term = {"TERM": "xterm"}
    assert use_colors(tty, term) is True
    assert use_colors(piped, term) is False
    assert use_colors(tty, {**term, "NO_COLOR": "1"}) is False
    assert use_colors(tty, {**term, "NO_COLOR": ""}) is True  # no-color.org: set and non-empty
    assert use_colors(piped, {**term, "FORCE_COLOR": "1"}) is True
    assert use_colors(tty, {**term, "NO_COLOR": "1", "FORCE_COLOR": "1"}) is False
    assert use_colors(tty, {"TERM": "dumb"}) is False


def log_one_event(log_format: str, stream: io.TextIOWrapper) -> None:
    try:
        configure_logging(log_format, node="n1", stream=stream)
        structlog.get_logger().info("appended_here", seq=7)
        stream.flush()
    finally:
        structlog.reset_defaults()


def test_auto_on_a_terminal_logs_coloured_console_lines(terminal, tty, no_color_env):
    log_one_event("auto", tty)
    out = terminal.read_until(lambda b: b"\n" in b, 5, "a console line")
    assert ANSI_ESCAPE in out
    assert b"appended_here" in out and b"n1" in out and b"seq" in out
    assert not out.lstrip().startswith(b"{")


def test_no_color_on_a_terminal_logs_plain_console_lines(terminal, tty, no_color_env, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    log_one_event("auto", tty)
    out = terminal.read_until(lambda b: b"\n" in b, 5, "a console line")
    assert ANSI_ESCAPE not in out
    assert b"appended_here" in out and b"node=n1" in out and b"seq=7" in out


def test_console_lines_show_a_clients_control_characters_escaped(terminal, tty, no_color_env):
    # A client picks a message's id; the master logs it (append). No escape sequence of
    # its text may reach the operator's terminal, coloured or not.
    client_id = "evil\x1b[31mRED\x1b[0m\x9b2J"
    try:
        configure_logging("console", node="n1", stream=tty)
        structlog.get_logger().info("append", seq=1, id=client_id, ids=["a\x1b"])
        tty.flush()
    finally:
        structlog.reset_defaults()
    out = terminal.read_until(lambda b: b"append" in b and b"\n" in b, 5, "a console line")
    assert b"evil\\x1b[31mRED\\x1b[0m\\x9b2J" in out
    assert b"\x1b[31mRED" not in out and "\x9b".encode() not in out


def test_auto_piped_logs_json(tmp_path, no_color_env):
    path = tmp_path / "out"
    with path.open("w") as stream:
        log_one_event("auto", stream)
    (line,) = path.read_bytes().splitlines()
    event = json.loads(line)
    assert event["event"] == "appended_here" and event["node"] == "n1" and event["seq"] == 7
    assert event["level"] == "info" and event["timestamp"].endswith("Z")


def test_child_environment_passes_our_colours_on():
    coloured = child_environment("t", colors=True)
    assert coloured["FORCE_COLOR"] == "1" and "NO_COLOR" not in coloured
    plain = child_environment("t", colors=False)
    assert plain["NO_COLOR"] == "1" and "FORCE_COLOR" not in plain
    assert coloured["REPLOG_CLUSTER_TOKEN"] == plain["REPLOG_CLUSTER_TOKEN"] == "t"


class LockedBytes(io.BytesIO):
    """A destination that fails the test if two writes overlap (the relay must serialize)."""

    def __init__(self) -> None:
        super().__init__()
        self._busy = threading.Lock()

    def write(self, data) -> int:  # type: ignore[override]
        assert self._busy.acquire(blocking=False), "two writes at once"
        try:
            return super().write(data)
        finally:
            self._busy.release()


CHATTY = """
import sys
name = sys.argv[1]
for i in range(20000):
    sys.stdout.write(f"{name} out {i} " + "x" * (i % 300) + "\\n")
    sys.stderr.write(f"{name} err {i}\\n")
sys.stdout.write(f"{name} last without newline")
"""


def test_relay_prefixes_every_line_whole_and_loses_none():
    names = ["master", "secondary_slow"]
    out, err = LockedBytes(), LockedBytes()
    relay = LineRelay(names, out, err)
    procs = []
    for name in names:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHATTY, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        relay.attach(name, proc)
        procs.append(proc)
    for proc in procs:
        assert proc.wait(60) == 0  # never blocked on a full pipe
    assert relay.join(30)
    out_lines = out.getvalue().decode().split("\n")
    err_lines = err.getvalue().decode().split("\n")
    assert out_lines.pop() == "" and err_lines.pop() == ""  # every line ends with a newline
    for name in names:
        prefix = f"{name:<14} | "
        mine = [line.removeprefix(prefix) for line in out_lines if line.startswith(prefix)]
        expected = [f"{name} out {i} " + "x" * (i % 300) for i in range(20000)]
        assert mine == [*expected, f"{name} last without newline"]
        mine_err = [line.removeprefix(prefix) for line in err_lines if line.startswith(prefix)]
        assert mine_err == [f"{name} err {i}" for i in range(20000)]
    assert len(out_lines) == 2 * 20001 and len(err_lines) == 2 * 20000


def test_relay_without_prefix_copies_lines_unchanged_and_colours_names_on_request():
    plain_out, coloured_out = io.BytesIO(), io.BytesIO()
    plain = LineRelay(["a", "bbb"], plain_out, io.BytesIO(), prefix=False)
    coloured = LineRelay(["a", "bbb"], coloured_out, io.BytesIO(), colors=True)
    for relay in (plain, coloured):
        proc = subprocess.Popen(["echo", '{"event": "x"}'], stdout=subprocess.PIPE)
        relay.attach("a", proc)
        proc.wait(10)
        assert relay.join(10)
    assert plain_out.getvalue() == b'{"event": "x"}\n'
    assert coloured_out.getvalue() == b'\x1b[36ma   | \x1b[0m{"event": "x"}\n'
