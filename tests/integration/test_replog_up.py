"""`replog up`: a local cluster that keeps its data under ./replog-data/ across runs."""

from __future__ import annotations

import signal
import stat
import subprocess
from pathlib import Path

from support import http
from support.cluster import BIN, next_host
from support.waiting import wait_until
from tools.chaos.cluster import free_port


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


def children(proc: subprocess.Popen) -> list[int]:
    path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    return [int(pid) for pid in path.read_text().split()]


def check_cluster_token(cwd: Path, host: str, port: int, proc: subprocess.Popen) -> str:
    """Every node has this run's token (auth true), given through the environment."""
    token_file = cwd / "replog-data" / "cluster-token"
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    for offset in range(3):
        assert http.get(f"http://{host}:{port + offset}/health").body["auth"] is True
    pids = children(proc)
    assert len(pids) == 3
    for pid in pids:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert token.encode() not in argv and b"--cluster-token" not in argv  # not in `ps`
    log_url = f"http://{host}:{port + 1}/replication/log"
    assert http.get(log_url).status == 401
    assert http.get(log_url, headers={"Authorization": f"Bearer {token}"}).status == 200
    return token


def test_replog_up_keeps_messages_across_runs_and_fresh_starts_empty(tmp_path):
    host = next_host()
    port = free_port(host)
    master = f"http://{host}:{port}"
    proc = start_up(tmp_path, host, port, "--slow-delay", "0")
    try:
        wait_until(lambda: ready(master), timeout=30, what="replog up cluster ready")
        first_token = check_cluster_token(tmp_path, host, port, proc)
        resp = http.post(master + "/", {"message": "kept", "w": 3, "id": 1})
        assert resp.status == 201
    finally:
        stop(proc)
    for name in ("master", "secondary", "secondary_slow"):
        assert (tmp_path / "replog-data" / name / "identity.json").exists()

    proc = start_up(tmp_path, host, port, "--slow-delay", "0")
    try:
        wait_until(lambda: ready(master), timeout=30, what="restarted cluster ready")
        assert check_cluster_token(tmp_path, host, port, proc) != first_token  # one per run
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
