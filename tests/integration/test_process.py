"""How the node processes exit when they cannot serve."""

from __future__ import annotations

import socket
import subprocess

from support.cluster import BIN, next_host


def test_an_address_in_use_exits_1_saying_so(tmp_path):
    host = next_host()
    with socket.socket() as taken:
        taken.bind((host, 0))
        taken.listen()
        port = taken.getsockname()[1]
        for name, argv in (
            ("master", [str(BIN / "replog-master")]),
            ("s1", [str(BIN / "replog-secondary"), "--master", f"http://{host}:1", "--id", "s1"]),
        ):
            result = subprocess.run(
                [*argv, "--host", host, "--port", str(port), "--data-dir", str(tmp_path / name)],
                capture_output=True,
                text=True,
                timeout=30,
                cwd=tmp_path,
            )
            assert result.returncode == 1
            assert f"cannot listen on {host}:{port}" in result.stderr
            assert "Traceback" not in result.stderr
