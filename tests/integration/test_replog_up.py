"""`replog up`: a local cluster that keeps its data under ./replog-data/ across runs."""

from __future__ import annotations

import stat
from pathlib import Path

from support.cluster import BIN, messages, next_host
from support.waiting import wait_until
from tools.harness import http
from tools.harness.net import free_port
from tools.harness.process import NodeProcess


def start_up(cwd: Path, host: str, port: int, *extra: str) -> NodeProcess:
    argv = [str(BIN / "replog"), "up", "--host", host, "--port", str(port), *extra]
    return NodeProcess("up", argv, f"http://{host}:{port}", cwd / "up.log").start()


def stop(proc: NodeProcess) -> None:
    assert proc.stop(20) == 0


def ready(url: str) -> bool:
    health = http.get(url + "/health").body
    return health["status"] == "ok" and all(s["status"] == "healthy" for s in health["secondaries"])


def children(proc: NodeProcess) -> list[int]:
    path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    return [int(pid) for pid in path.read_text().split()]


def check_cluster_token(cwd: Path, host: str, port: int, proc: NodeProcess) -> str:
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
        assert [m["message"] for m in messages(master + "/")] == ["kept"]
        second = f"http://{host}:{port + 1}/"
        assert [m["message"] for m in messages(second)] == ["kept"]
    finally:
        stop(proc)

    proc = start_up(tmp_path, host, port, "--slow-delay", "0", "--fresh")
    try:
        wait_until(lambda: ready(master), timeout=30, what="fresh cluster ready")
        assert messages(master + "/") == []
        resp = http.post(master + "/", {"message": "msg1", "w": 1, "id": 1})
        assert resp.status == 201 and resp.body["seq"] == 1
    finally:
        stop(proc)
