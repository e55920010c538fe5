"""--idle-timeout and --body-timeout: slow or idle clients are cut off, replication is not.

A master (flags) and a secondary (environment variables) run with 0.5 s
timeouts; raw-socket clients send half their headers, half their body, or
nothing after an answer, and the node must close the connection after about
that long, changing nothing.
"""

from __future__ import annotations

import socket
import subprocess
import time
from urllib.parse import urlsplit

import pytest

from support.cluster import BIN, Cluster

TIMEOUT = 0.5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("timeouts"), secondaries=1)
    cluster.start_master("--idle-timeout", str(TIMEOUT), "--body-timeout", str(TIMEOUT))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REPLOG_IDLE_TIMEOUT", str(TIMEOUT))
        env.setenv("REPLOG_BODY_TIMEOUT", str(TIMEOUT))
        cluster.add_secondary("s1")
    assert cluster.write("before", w=2).status == 201
    yield cluster
    cluster.stop()


def closed_after(url: str, data: bytes, limit: float = 5.0) -> tuple[float, bytes]:
    """Send `data`, then wait: how long until the server closes, and what it sent."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=limit) as sock:
        sock.sendall(data)
        began = time.monotonic()
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return time.monotonic() - began, received


def nodes(cluster):
    return [("master", cluster.master_url), ("s1", cluster.secondaries["s1"].url)]


@pytest.mark.parametrize("which", [0, 1])
def test_half_the_headers_then_silence_is_cut_off(cluster, which):
    name, url = nodes(cluster)[which]
    took, received = closed_after(url, b"GET /health HTTP/1.1\r\nHost: replog\r\nAcc")
    assert TIMEOUT * 0.8 <= took < TIMEOUT + 2, name
    assert received == b""


@pytest.mark.parametrize("which", [0, 1])
def test_half_the_body_then_silence_is_cut_off(cluster, which):
    name, url = nodes(cluster)[which]
    before = cluster.master.messages()
    head = b"POST / HTTP/1.1\r\nHost: replog\r\nContent-Length: 100\r\n\r\n"
    took, received = closed_after(url, head + b'{"message": "sl')
    assert TIMEOUT * 0.8 <= took < TIMEOUT + 2, name
    assert received == b""
    assert cluster.master.messages() == before


@pytest.mark.parametrize("which", [0, 1])
def test_an_idle_keep_alive_connection_is_closed(cluster, which):
    name, url = nodes(cluster)[which]
    took, received = closed_after(url, b"GET /health HTTP/1.1\r\nHost: replog\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 ")  # answered, kept alive, then closed
    assert TIMEOUT * 0.8 <= took < TIMEOUT + 2, name


def test_a_slow_but_steady_client_gets_its_answer(cluster):
    """The timeouts bound the whole headers and the whole body, each under 0.5 s here."""
    parts = urlsplit(cluster.master_url)
    body = b'{"message": "steady", "w": 2}'
    head = b"POST / HTTP/1.1\r\nHost: replog\r\nContent-Length: %d\r\n\r\n" % len(body)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        for piece in (head[:20], head[20:], body[:10], body[10:]):
            sock.sendall(piece)
            time.sleep(TIMEOUT / 4)
        assert sock.recv(65536).startswith(b"HTTP/1.1 201 ")


def test_replication_streams_outlive_the_idle_timeout(cluster):
    def opened() -> int:
        return sum(e["event"] == "stream_opened" for e in cluster.master.events())

    before = opened()
    time.sleep(TIMEOUT * 4)  # (what must not happen meanwhile: the stream dropped)
    assert cluster.write("after", w=2).status == 201
    assert opened() == before


@pytest.mark.parametrize("script", ["replog-master", "replog-secondary"])
def test_the_flags_are_in_help_with_their_variables_and_defaults(script):
    out = subprocess.run(
        [str(BIN / script), "--help"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    flat = " ".join(out.split())
    for flag, env in (
        ("--idle-timeout", "REPLOG_IDLE_TIMEOUT"),
        ("--body-timeout", "REPLOG_BODY_TIMEOUT"),
    ):
        assert flag in flat and f"${env}" in flat
    assert flat.count("(default: 60.0)") >= 2
