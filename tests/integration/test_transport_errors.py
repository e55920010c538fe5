"""Requests broken at the HTTP level get a JSON error, never Tornado's bare 400, and change nothing.

Exact bytes go over raw sockets to a real master (--max-body-bytes 250000) and
a real secondary; each answer's status, Content-Type and JSON body are
checked, and that the connection then closes (for the framing errors) with
nothing after the answer. Afterwards both logs are what they were, and
neither node printed a traceback.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from support.cluster import Cluster, TlsFiles
from tools.harness import http

LIMIT = 250_000  # (a body nested 100,000 deep fits)
HOST = b"Host: replog\r\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict
    rest: bytes  # what came after the first answer
    closed: bool  # the server closed the connection


def exchange(url: str, data: bytes, timeout: float = 5.0) -> Answer:
    """Send `data` as is; read until the server closes (or `timeout`); parse the first answer."""
    parts = urlsplit(url)
    received = b""
    closed = False
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            received += chunk
            if b"\r\n\r\n" in received and not _expects_close(received):
                head, _, rest = received.partition(b"\r\n\r\n")
                if len(rest) >= _length(head):
                    break  # a kept-alive connection: the answer is complete
    head, _, rest = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), received
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    return Answer(
        int(lines[0].split()[1]), headers, json.loads(rest[:length]), rest[length:], closed
    )


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _expects_close(received: bytes) -> bool:
    return b"\r\nconnection: close\r\n" in received.split(b"\r\n\r\n")[0].lower() + b"\r\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("transport"), secondaries=1)
    cluster.start_master("--max-body-bytes", str(LIMIT))
    cluster.add_secondary("s1")
    for i in range(3):
        assert cluster.write(f"m{i}", w=2).status == 201
    yield cluster
    cluster.stop()


@pytest.fixture
def unchanged(cluster):
    """Both logs (and the master's sequence) are the same after the test, and no traceback."""
    before = [node.messages() for node in cluster.nodes()]
    last_seq = cluster.master.health()["last_seq"]
    yield
    assert [node.messages() for node in cluster.nodes()] == before
    assert cluster.master.health()["last_seq"] == last_seq
    for node in cluster.nodes():
        assert "Traceback" not in node.log_path.read_text(errors="replace"), node.name


def post(headers: bytes, body: bytes = b"") -> bytes:
    return b"POST / HTTP/1.1\r\n" + HOST + headers + b"\r\n" + body


# (request bytes, status, a piece of the error): refused, then the connection closes.
FRAMING = {
    "content-length not a number": (post(b"Content-Length: abc\r\n"), 400, "Content-Length"),
    "negative content-length": (post(b"Content-Length: -5\r\n", b"hello"), 400, "'-5'"),
    "content-length with a sign": (post(b"Content-Length: +5\r\n", b"hello"), 400, "'+5'"),
    "two different content-lengths": (
        post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
        400,
        "different Content-Length",
    ),
    "content-length and transfer-encoding": (
        post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
        400,
        "both Content-Length and Transfer-Encoding",
    ),
    "transfer-encoding other than chunked": (
        post(b"Transfer-Encoding: gzip\r\n"),
        400,
        "'gzip' is not supported",
    ),
    "chunk size not hex": (
        post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"),
        400,
        "bad chunked body",
    ),
    "chunk without its CRLF": (
        post(b"Transfer-Encoding: chunked\r\n", b"5\r\nhelloXX0\r\n\r\n"),
        400,
        "bad chunked body",
    ),
    "chunked body over the limit": (
        post(b"Transfer-Encoding: chunked\r\n", (b"186A0\r\n" + b"x" * 100_000 + b"\r\n") * 3),
        413,
        f"larger than {LIMIT} bytes (--max-body-bytes)",
    ),
    "declared length over the limit, no body sent": (
        post(b"Content-Length: %d\r\n" % (LIMIT + 1)),
        413,
        f"larger than {LIMIT} bytes",
    ),
    "declared length of 5 GiB": (post(b"Content-Length: 5368709120\r\n"), 413, "larger"),
    "declared length of 40 digits": (
        post(b"Content-Length: " + b"9" * 40 + b"\r\n"),
        413,
        "larger",
    ),
    "malformed request line": (b"POST / HTTP/1.1 extra\r\n" + HOST + b"\r\n", 400, "request line"),
    "HTTP/2 request line": (b"GET / HTTP/2.0\r\n" + HOST + b"\r\n", 400, "HTTP version"),
    "header without a colon": (b"GET / HTTP/1.1\r\n" + HOST + b"Oops\r\n\r\n", 400, "colon"),
    "no Host": (b"GET / HTTP/1.1\r\n\r\n", 400, "Host"),
    "two Hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host"),
}


@pytest.mark.parametrize("name", FRAMING)
def test_a_malformed_request_to_the_master_is_a_json_error(cluster, unchanged, name):
    data, status, hint = FRAMING[name]
    answer = exchange(cluster.master_url, data)
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    assert hint in answer.body["error"]
    assert answer.headers["connection"] == "close"
    assert answer.closed and answer.rest == b""  # no bare 400 after it


@pytest.mark.parametrize(
    "name",
    [
        "content-length not a number",
        "two different content-lengths",
        "content-length and transfer-encoding",
        "chunk size not hex",
        "malformed request line",
        "no Host",
    ],
)
def test_a_malformed_request_to_a_secondary_is_a_json_error(cluster, unchanged, name):
    data, status, hint = FRAMING[name]
    answer = exchange(cluster.secondaries["s1"].url, data)
    assert (answer.status, answer.headers["content-type"]) == (status, "application/json")
    assert hint in answer.body["error"]
    assert answer.closed and answer.rest == b""


def test_a_secondary_bounds_bodies_too(cluster, unchanged):
    url = cluster.secondaries["s1"].url
    answer = exchange(url, post(b"Content-Length: 2000000\r\n"))
    assert answer.status == 413 and "larger than 1048576 bytes" in answer.body["error"]
    assert answer.closed
    # Under the bound, a write sent to a secondary still learns where the master is.
    body = b'{"message": "m"}'
    answer = exchange(url, post(b"Content-Length: %d\r\nConnection: close\r\n" % len(body), body))
    assert answer.status == 405 and answer.body["master"] == cluster.master_url


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(cluster, unchanged):
    """The 413 comes while the client is still sending, and the rest is not waited for."""
    parts = urlsplit(cluster.master_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(post(b"Content-Length: 100000000\r\n", b"x" * 5000))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 413 ")
    assert b'"error":"the body is larger than 250000 bytes (--max-body-bytes)"' in received


# (request target, status, a piece of the error)
BAD_TARGETS = {
    "from not a number": ("/?from=%zz", 400, '"from" must be a positive integer'),
    "from not UTF-8": ("/?from=%ff", 400, '"from" is not valid UTF-8'),
    "limit not UTF-8": ("/?limit=%C3%28", 400, '"limit" is not valid UTF-8'),
    "bad escape in the path": ("/%zz", 404, "no such endpoint"),
    "path not UTF-8": ("/%ff", 404, "no such endpoint"),
    "bad escape after a real path": ("/health%zz", 404, "no such endpoint"),
}


@pytest.mark.parametrize("name", BAD_TARGETS)
@pytest.mark.parametrize("node", ["master", "s1"])
def test_bad_percent_encoding_is_a_json_error(cluster, unchanged, name, node):
    target, status, hint = BAD_TARGETS[name]
    url = cluster.master_url if node == "master" else cluster.secondaries["s1"].url
    request = b"GET " + target.encode() + b" HTTP/1.1\r\n" + HOST + b"\r\n"
    answer = exchange(url, request)
    assert (answer.status, answer.headers["content-type"]) == (status, "application/json")
    assert hint in answer.body["error"]
    assert not answer.closed  # an ordinary answer: the connection stays usable


def test_a_bad_request_after_good_ones_on_one_connection(cluster, unchanged):
    """Pipelined: the good request is answered normally, the bad one in JSON."""
    data = b"GET /health HTTP/1.1\r\n" + HOST + b"\r\n" + post(b"Content-Length: x\r\n")
    parts = urlsplit(cluster.master_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    first, second = received.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ") and b'"role":"master"' in first
    assert second.startswith(b"400 ") and b"Content-Length must be a whole number" in second


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_bodies_are_a_400(cluster, unchanged, depth):
    raw = b'{"message": ' + b"[" * depth + b"]" * depth + b"}"
    resp = http.post(cluster.master_url + "/", raw=raw)
    assert resp.status == 400
    assert "nests deeper" in resp.body["error"] or "not valid JSON" in resp.body["error"]


def test_refusals_are_logged_as_events(cluster):
    exchange(cluster.master_url, post(b"Content-Length: nope\r\n"))
    events = [e for e in cluster.master.events() if e["event"] == "request_refused"]
    assert events and events[-1]["status"] == 400 and "nope" in events[-1]["error"]
    assert events[-1]["peer"].startswith("127.")


def test_over_tls_too(cluster_factory):
    """An https node answers the same JSON (no half-close on TLS: the client closes)."""
    trustme = pytest.importorskip("trustme")
    cluster = cluster_factory()
    ca = trustme.CA()
    directory = cluster.tmp_path / "tls"
    directory.mkdir()
    cert = ca.issue_cert(cluster.host)
    files = TlsFiles(directory / "cert.pem", directory / "key.pem", directory / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(str(files.cert))
    cert.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    cluster.tls = files
    cluster.start_master("--max-body-bytes", str(LIMIT))
    parts = urlsplit(cluster.master_url)
    for data, status, hint in (
        FRAMING["content-length not a number"],
        FRAMING["chunk size not hex"],
        FRAMING["declared length over the limit, no body sent"],
    ):
        with (
            socket.create_connection((parts.hostname, parts.port), timeout=5) as raw,
            files.context().wrap_socket(raw, server_hostname=parts.hostname) as sock,
        ):
            sock.sendall(data)
            received = b""
            while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < _length(
                received.partition(b"\r\n\r\n")[0]
            ):
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % status)
        assert b"content-type: application/json" in head.lower()
        assert hint in json.loads(body)["error"]
