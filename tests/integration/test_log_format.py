"""Logs for people: a node and `replog up` on a terminal log console lines (coloured); piped,
they log JSON, and `replog up` prefixes every line with the node's name."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

from support.cluster import BIN, next_host
from support.terminal import ANSI_ESCAPE, Terminal
from support.waiting import wait_until
from tools.harness import http
from tools.harness.net import free_port
from tools.harness.process import environment

NAMES = ("master", "secondary", "secondary_slow")
PREFIX = re.compile(r"^(master|secondary|secondary_slow) *\| (.*)$")
# The colours and the format are decided by the terminal, not by a caller's shell.
ENV = {"TERM": "xterm-256color"}


def node_env() -> dict[str, str]:
    env = environment(ENV, drop_prefix="REPLOG_")
    for name in ("NO_COLOR", "FORCE_COLOR"):
        env.pop(name, None)
    return env


def master_argv(host: str, port: int) -> list[str]:
    return [str(BIN / "replog-master"), "--host", host, "--port", str(port), "--secondaries", "0"]


def test_a_master_on_a_terminal_logs_coloured_console_lines(tmp_path):
    host = next_host()
    port = free_port(host)
    term = Terminal()
    try:
        proc = term.spawn(master_argv(host, port), env=node_env(), cwd=tmp_path)
        out = term.read_until(lambda b: b"listening" in b, 30, "the master's listening event")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        out = term.read_to_eof()
    finally:
        term.close()
    assert ANSI_ESCAPE in out
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.decode())
    line = next(line for line in text.splitlines() if "listening" in line)
    assert "[info" in line and "node=master" in line and f"port={port}" in line
    assert not any(line.lstrip().startswith("{") for line in text.splitlines())


def test_a_master_piped_logs_json(tmp_path):
    host = next_host()
    port = free_port(host)
    proc = subprocess.Popen(
        master_argv(host, port),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=node_env(),
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    events = []
    while not events or events[-1]["event"] != "listening":  # each line a JSON object
        line = proc.stdout.readline()
        assert line, f"EOF before listening: {events}"
        events.append(json.loads(line))
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    events += [json.loads(line) for line in rest.splitlines()]
    assert all(e["node"] == "master" and e["level"] and e["timestamp"] for e in events)
    assert {"listening", "stopped"} <= {e["event"] for e in events}
    assert b"\x1b[" not in rest


def up_argv(host: str, port: int, *extra: str) -> list[str]:
    return [str(BIN / "replog"), "up", "--host", host, "--port", str(port), "--slow-delay", "0"]


def ready(url: str) -> bool:
    health = http.get(url + "/health").body
    return health["status"] == "ok" and all(s["status"] == "healthy" for s in health["secondaries"])


def run_up_piped(tmp_path: Path, *extra: str) -> tuple[list[str], list[str]]:
    """`replog up` with stdout and stderr in files: ready, one write, SIGTERM; their lines."""
    host = next_host()
    port = free_port(host)
    out_path, err_path = tmp_path / "up.out", tmp_path / "up.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [*up_argv(host, port), *extra],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=node_env(),
            cwd=tmp_path,
        )
    try:
        master = f"http://{host}:{port}"
        wait_until(lambda: ready(master), timeout=30, what="replog up cluster ready")
        assert http.post(master + "/", {"message": "m", "w": 3, "id": 1}).status == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0  # as before: a stop asked for is a success
    out_bytes = out_path.read_bytes()
    assert out_bytes.endswith(b"\n")  # the last line whole too
    return out_bytes.decode().splitlines(), err_path.read_text().splitlines()


def test_replog_up_piped_prefixes_every_json_line_with_its_node(tmp_path):
    out, err = run_up_piped(tmp_path)
    seen: dict[str, set[str]] = {name: set() for name in NAMES}
    for line in out:
        match = PREFIX.match(line)
        assert match, f"a line without its node's prefix: {line!r}"
        name, rest = match.groups()
        assert line.index("|") == len("secondary_slow") + 1  # padded to the longest name
        event = json.loads(rest)  # a whole JSON line: never cut, never interleaved
        assert event["node"] == name
        seen[name].add(event["event"])
    for name in NAMES:
        assert {"listening", "stopping", "stopped"} <= seen[name], name  # drained at shutdown
    assert "write_concern_met" in seen["master"] and "applied" in seen["secondary_slow"]
    assert any(line.startswith("replog up: started") for line in err)
    assert any(re.fullmatch(r"replog up: live cluster page: http://[\d.]+:\d+/ui", e) for e in err)
    assert "\x1b[" not in "".join(out + err)


def test_replog_up_no_prefix_writes_pure_json_lines(tmp_path):
    out, _ = run_up_piped(tmp_path, "--no-prefix")
    events = [json.loads(line) for line in out]
    for name in NAMES:
        assert {"listening", "stopped"} <= {e["event"] for e in events if e["node"] == name}


def test_replog_up_on_a_terminal_shows_coloured_console_lines_per_node(tmp_path):
    host = next_host()
    port = free_port(host)
    term = Terminal()
    try:
        proc = term.spawn(up_argv(host, port), env=node_env(), cwd=tmp_path)

        def plain(output: bytes) -> str:
            return re.sub(r"\x1b\[[0-9;]*m", "", output.decode(errors="replace"))

        def all_listening(output: bytes) -> bool:
            lines = plain(output).splitlines()
            return all(
                any(re.match(rf"{name} *\| .*listening", line) for line in lines) for name in NAMES
            )

        term.read_until(all_listening, 30, "every node's listening line")
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(30) == 0
        out = term.read_to_eof()
    finally:
        term.close()
    assert ANSI_ESCAPE in out
    lines = [line for line in plain(out).splitlines() if line.strip()]
    for name in NAMES:
        mine = [line for line in lines if re.match(rf"{name} *\| ", line)]
        assert any("[info" in line and f"node={name}" in line for line in mine)
        assert any("stopped" in line for line in mine)  # drained after Ctrl-C
        assert not any(line.split("| ", 1)[1].startswith("{") for line in mine)  # not JSON
