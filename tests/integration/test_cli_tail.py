"""`replog tail -f` against a stand-in for a node's `GET /stream` (the issue 11 contract),
served by Tornado in this test process, so that the test decides when a connection drops
(after whole events, and in the middle of one) and sees each reconnection's
`Last-Event-ID`. What the CLI prints must be every entry once, in order, across drops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

from support.cluster import BIN, next_host
from tools.harness.process import environment

LINE_TIMEOUT = 15.0


@dataclass
class StreamState:
    """The log served, the script of each connection, and what each request asked for."""

    entries: list[dict[str, Any]]
    # Per connection, in order: ("drop", n) sends n entries then drops the connection;
    # ("half", n) sends n entries and half of the next one, then drops; ("replay", n)
    # starts one entry early (what a careless server might do), sends n, then drops.
    # Past the script: everything, then live.
    script: list[tuple[str, int]]
    requests: list[dict[str, Any]] = field(default_factory=list)
    grown: asyncio.Event | None = None


def event(entry: dict[str, Any]) -> bytes:
    return f"id: {entry['seq']}\ndata: {json.dumps(entry)}\n\n".encode()


class StreamHandler(tornado.web.RequestHandler):
    async def get(self) -> None:
        state: StreamState = self.settings["state"]
        connection = len(state.requests)
        last_id = self.request.headers.get("Last-Event-ID")
        start_arg = self.get_query_argument("from", None)
        state.requests.append(
            {
                "last_event_id": last_id,
                "from": start_arg,
                "read": self.get_query_argument("read", None),
            }
        )
        if start_arg == "999":
            self.set_status(400)
            self.write({"error": "from 999 is beyond the log"})
            return
        start = int(last_id) + 1 if last_id is not None else int(start_arg or 1)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        await self.flush()
        kind, count = state.script[connection] if connection < len(state.script) else ("live", 0)
        if kind == "replay":
            start -= 1
        if kind != "live":
            for entry in state.entries[start - 1 : start - 1 + count]:
                self.write(event(entry))
            if kind == "half":
                self.write(event(state.entries[start - 1 + count])[:20])
            await self.flush()
            self.request.connection.stream.close()  # dropped, not ended
            return
        self.write(b": keepalive\n\n")
        sent = start - 1
        assert state.grown is not None
        while not self.request.connection.stream.closed():
            state.grown.clear()
            for entry in state.entries[sent:]:
                self.write(event(entry))
            sent = len(state.entries)
            await self.flush()
            # Woken by append; the timeout only notices that the client went away.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.grown.wait(), 0.5)


class MessagesHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        state: StreamState = self.settings["state"]
        state.requests.append(dict(self.request.query_arguments))
        self.write({"messages": state.entries})


class StreamServer:
    """The Tornado app on its own event loop in a thread."""

    def __init__(self, state: StreamState) -> None:
        self.state = state
        self.host = next_host()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=asyncio.run, args=(self.serve(),), daemon=True)

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.state.grown = asyncio.Event()
        self.stopped = asyncio.Event()
        app = tornado.web.Application(
            [("/stream", StreamHandler), ("/", MessagesHandler)], state=self.state
        )
        sockets = tornado.netutil.bind_sockets(0, self.host)
        self.port = sockets[0].getsockname()[1]
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        self.ready.set()
        await self.stopped.wait()
        server.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> StreamServer:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(10)

    def append(self, *messages: str) -> None:
        def add() -> None:
            for message in messages:
                seq = len(self.state.entries) + 1
                self.state.entries.append({"seq": seq, "id": f"k{seq}", "message": message})
            assert self.state.grown is not None
            self.state.grown.set()

        self.loop.call_soon_threadsafe(add)


def log_of(count: int) -> list[dict[str, Any]]:
    return [{"seq": s, "id": f"k{s}", "message": f"m{s}\nline 2"} for s in range(1, count + 1)]


class Tail:
    """`replog tail -f ...` running, its stdout lines read on a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "replog"), "tail", "-f", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(drop_prefix="REPLOG_"),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def take(self, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + LINE_TIMEOUT
        out = []
        while len(out) < count:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"printed {out} only; stderr: {self.stop()[1]}") from None
            out.append(json.loads(line))
        return out

    def stop(self) -> tuple[int, str]:
        """Ctrl-C; its exit status and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=10)
        finally:
            self.proc.kill()
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


def test_tail_follow_resumes_after_drops_with_no_gap_and_no_duplicate():
    state = StreamState(log_of(10), script=[("drop", 3), ("replay", 2), ("half", 2)])
    with StreamServer(state) as server:
        tail = Tail(server.url, "--read", "majority")
        try:
            assert tail.take(10) == log_of(10)
            server.append("live 11", "live 12")
            assert [e["message"] for e in tail.take(2)] == ["live 11", "live 12"]
            assert tail.lines.empty()
        finally:
            code, stderr = tail.stop()
    assert code == 0  # Ctrl-C ends a follow normally
    # from=1 the first time; then each reconnection asks to resume after the last seq
    # printed (the replayed entry 3 and the half event 6 were not printed twice / at all).
    asked = [(r["from"], r["last_event_id"], r["read"]) for r in state.requests]
    assert asked == [
        ("1", None, "majority"),
        (None, "3", "majority"),
        (None, "4", "majority"),
        (None, "6", "majority"),
    ]
    assert stderr.count("reconnecting in") == 3
    assert "resuming after seq 3" in stderr and "resuming after seq 6" in stderr


def test_tail_follow_from_n():
    state = StreamState(log_of(5), script=[])
    with StreamServer(state) as server:
        tail = Tail(server.url, "--from", "4")
        try:
            assert tail.take(2) == log_of(5)[3:]
        finally:
            code, _ = tail.stop()
    assert code == 0
    assert state.requests == [{"last_event_id": None, "from": "4", "read": None}]


def test_tail_follow_server_error_first_exits_1_with_its_text():
    state = StreamState(log_of(1), script=[])
    with StreamServer(state) as server:
        done = subprocess.run(
            [str(BIN / "replog"), "tail", "-f", "--from", "999", server.url],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "replog tail: from 999 is beyond the log (HTTP 400)\n"


@pytest.mark.parametrize("concern", ["majority", "local"])
def test_get_passes_the_read_concern_through(concern):
    state = StreamState(log_of(2), script=[])
    with StreamServer(state) as server:
        done = subprocess.run(
            [str(BIN / "replog"), "get", server.url, "--read", concern, "--from", "1"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 0
    assert state.requests == [{"read": [concern.encode()], "from": [b"1"]}]
