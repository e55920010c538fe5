"""`replog up`: a local cluster that keeps its data under ./replog-data/ across runs."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from chaos.cluster import free_port
from support import http
from support.cluster import BIN, next_host
from support.waiting import wait_until


def start_up(cwd: Path, host: str, port: int, *extra: str) -> subprocess.Popen:
    log = (cwd / "up.log").open("ab")
    proc = subprocess.Popen(
        [str(BIN / "replog"), "up", "--host", host, "--port", str(port), *extra],
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def ready(url: str) -> bool:
    health = http.get(url + "/health").body
    return health["status"] == "ok" and all(s["status"] == "healthy" for s in health["secondaries"])


def test_replog_up_keeps_messages_across_runs_and_fresh_starts_empty(tmp_path):
    host = next_host()
    port = free_port(host)
    master = f"http://{host}:{port}"
    proc = start_up(tmp_path, host, port, "--slow-delay", "0")
    try:
        wait_until(lambda: ready(master), timeout=30, what="replog up cluster ready")
        resp = http.post(master + "/", {"message": "kept", "w": 3, "id": 1})
        assert resp.status == 201
    finally:
        stop(proc)
    for name in ("master", "secondary", "secondary_slow"):
        assert (tmp_path / "replog-data" / name / "identity.json").exists()

    proc = start_up(tmp_path, host, port, "--slow-delay", "0")
    try:
        wait_until(lambda: ready(master), timeout=30, what="restarted cluster ready")
        assert [m["message"] for m in http.messages(master + "/")] == ["kept"]
        second = f"http://{host}:{port + 1}/"
        assert [m["message"] for m in http.messages(second)] == ["kept"]
    finally:
        stop(proc)

    proc = start_up(tmp_path, host, port, "--slow-delay", "0", "--fresh")
    try:
        wait_until(lambda: ready(master), timeout=30, what="fresh cluster ready")
        assert http.messages(master + "/") == []
        resp = http.post(master + "/", {"message": "msg1", "w": 1, "id": 1})
        assert resp.status == 201 and resp.body["seq"] == 1
    finally:
        stop(proc)
