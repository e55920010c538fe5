"""Helpers shared by the deployment tests (compose, Kubernetes): they run a manifest's
container commands and environment as local processes."""

from __future__ import annotations

import functools
import os
import re
import socket
import subprocess

import pytest

from support.cluster import BIN, next_host


@functools.cache
def accepted_env_names(script: str) -> frozenset[str]:
    """The variables a console script reads, from its own --help ("[env: $NAME]")."""
    result = subprocess.run(
        [str(BIN / script), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    )
    return frozenset(re.findall(r"\$([A-Z][A-Z0-9_]*)", result.stdout))


def all_env_names() -> frozenset[str]:
    """Every variable the node scripts read."""
    return accepted_env_names("replog-master") | accepted_env_names("replog-secondary")


def address_with_free_port(port: int) -> str:
    """A loopback address of our own on which `port` is free to listen."""
    for _ in range(20):
        host = next_host()
        try:
            with socket.socket() as sock:
                sock.bind((host, port))
        except OSError:
            continue
        return host
    pytest.fail(f"no loopback address with port {port} free (is something on 0.0.0.0:{port}?)")
