"""tools.harness: what the tests, the benchmark and the fault campaign rely on it for.

The JSON client against small stdlib servers that answer, stall or hang up;
node processes against tiny Python scripts (SIGTERM ignored, paused, exiting
at once); addresses that cannot be bound. Node-level use is covered by every
integration and fault test.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tools.harness import http
from tools.harness.net import first_bindable, free_port
from tools.harness.process import NodeProcess
from tools.harness.waiting import WaitFailed, wait_until

HOST = "127.0.0.1"


class EchoHandler(BaseHTTPRequestHandler):
    """Answers with what it got: method, path, Authorization, JSON body.

    /text answers text that is not JSON, /missing a 404."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/text":
            payload, kind = b"plain words", "text/plain"
        else:
            doc = {
                "method": self.command,
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "body": json.loads(body) if body else None,
            }
            payload, kind = json.dumps(doc).encode(), "application/json"
        status = 201 if self.command == "POST" else 200
        self.send_response(404 if self.path == "/missing" else status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer((HOST, 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{HOST}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent() -> Iterator[str]:
    """A listener that accepts connections (the kernel does) and never answers."""
    sock = socket.create_server((HOST, 0))
    yield f"http://{HOST}:{sock.getsockname()[1]}"
    sock.close()


def test_json_client_sends_json_and_headers_and_reads_status_headers_and_json(echo):
    resp = http.post(echo + "/x?a=1", {"message": "m", "w": 2}, headers=http.bearer("tok"))
    assert resp.status == 201
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.body == {
        "method": "POST",
        "path": "/x?a=1",
        "auth": "Bearer tok",
        "body": {"message": "m", "w": 2},
    }
    assert http.delete(echo + "/secondaries/s1").body["method"] == "DELETE"
    assert http.get_json(echo + "/") == {"method": "GET", "path": "/", "auth": None, "body": None}


def test_an_answer_that_is_not_json_has_no_body_but_its_raw_bytes(echo):
    resp = http.get(echo + "/text")
    assert (resp.status, resp.body, resp.raw) == (200, None, b"plain words")


def test_request_raises_the_real_error_and_attempt_says_what_kind_of_failure(silent):
    dead = f"http://{HOST}:{free_port(HOST)}"  # nobody listens there
    with pytest.raises(ConnectionRefusedError):
        http.get(dead)
    with pytest.raises(http.RequestFailed) as refused:
        http.attempt("GET", dead)
    assert refused.value.kind == "refused"
    # Connected, sent, never answered: the request may have arrived.
    with pytest.raises(http.RequestFailed) as stalled:
        http.attempt("POST", silent + "/", {"message": "m"}, timeout=0.3)
    assert stalled.value.kind == "timeout"

    # A server that reads the request and closes without an answer.
    listener = socket.create_server((HOST, 0))
    url = f"http://{HOST}:{listener.getsockname()[1]}"

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()

    closer = threading.Thread(target=hang_up)
    closer.start()
    with pytest.raises(http.RequestFailed) as cut:
        http.attempt("GET", url + "/", timeout=5)
    closer.join(5)
    listener.close()
    assert cut.value.kind == "error"


def test_get_json_refuses_an_answer_other_than_200(echo):
    with pytest.raises(http.RequestFailed) as wrong:
        http.get_json(echo + "/missing")
    assert wrong.value.kind == "status" and "404" in wrong.value.detail
    assert http.get_json(echo + "/text") is None  # a 200 that is not JSON: no body


def script_node(tmp_path: Path, name: str, code: str, **kwargs: object) -> NodeProcess:
    argv = [sys.executable, "-c", code]
    return NodeProcess(name, argv, "http://unused", tmp_path / f"{name}.log", **kwargs)  # type: ignore[arg-type]


# Printed once the script's signal handling is in place: a signal sent after "ready" must
# meet the handler, never the default action.
READY = "; print('ready', flush=True); "


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    code += READY + "time.sleep(60)"
    node = script_node(tmp_path, "stubborn", code).start()
    wait_until(lambda: "ready" in node.log_text(), timeout=10, what="script started")
    assert node.stop(timeout=0.5) == -signal.SIGKILL
    assert not node.alive()


def test_stop_wakes_a_paused_process_so_that_sigterm_stops_it(tmp_path):
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))"
    code += READY + "time.sleep(60)"
    node = script_node(tmp_path, "paused", code).start()
    wait_until(lambda: "ready" in node.log_text(), timeout=10, what="script started")
    node.signal(signal.SIGSTOP)
    assert node.stop(timeout=5) == 0  # its own clean exit, not a SIGKILL after 5 s
    assert node.starts == 1


def test_environment_adds_variables_and_drops_the_prefix_it_is_told(tmp_path, monkeypatch):
    monkeypatch.setenv("REPLOG_IN_MEMORY", "1")
    monkeypatch.setenv("HARNESS_KEPT", "yes")
    code = "import json, os; print(json.dumps({k: v for k, v in os.environ.items()}))"
    node = script_node(
        tmp_path, "env", code, env={"REPLOG_CLUSTER_TOKEN": "t"}, drop_env_prefix="REPLOG_"
    ).start()
    assert node.proc is not None and node.proc.wait(10) == 0
    [seen] = node.events()
    assert seen["HARNESS_KEPT"] == "yes" and seen["REPLOG_CLUSTER_TOKEN"] == "t"
    assert "REPLOG_IN_MEMORY" not in seen
    # Started again: the log is appended to, not replaced.
    node.start().proc.wait(10)  # type: ignore[union-attr]
    assert len(node.events()) == 2 and node.starts == 2


def test_wait_until_fails_at_once_when_a_watched_process_exits(tmp_path):
    node = script_node(tmp_path, "short", "import sys; sys.exit(3)").start()
    started = time.monotonic()
    with pytest.raises(WaitFailed, match="short exited with 3"):
        wait_until(lambda: False, timeout=30, what="never", watch=[node])
    assert time.monotonic() - started < 10


def test_wait_until_returns_the_value_counts_ignored_errors_as_not_yet_and_times_out():
    calls = iter([ConnectionRefusedError("not up"), 0, "up"])

    def condition() -> object:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(condition, timeout=5, interval=0) == "up"
    with pytest.raises(WaitFailed, match=r"timed out after 0.1s waiting for nothing: None"):
        wait_until(lambda: None, timeout=0.1, what="nothing")
    with pytest.raises(KeyError):  # not in `ignore`: a bug, not "not yet"
        wait_until(lambda: {}["missing"], timeout=5, ignore=(OSError,))


def test_first_bindable_skips_addresses_that_cannot_be_bound():
    not_ours = "192.0.2.1"  # TEST-NET-1: no interface of this machine has it
    assert first_bindable(iter([not_ours, "127.0.0.1"])) == "127.0.0.1"
    with pytest.raises(RuntimeError):
        first_bindable(iter([not_ours] * 5), tries=5)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert first_bindable(iter(["127.0.0.1", "127.0.0.2"]), port=port) == "127.0.0.2"
