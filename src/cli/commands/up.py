"""`replog up`: a local three-node cluster in the foreground, without Docker."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replog.common.config import DATA_ROOT, non_negative_float, port
from replog.common.logs import LOG_FORMATS

STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class NodeSpec:
    name: str
    argv: list[str]


def cluster_specs(host: str, base_port: int, slow_delay: float, log_format: str) -> list[NodeSpec]:
    """Master on base_port, a fast secondary on +1, a slow one on +2."""
    master_url = f"http://{host}:{base_port}"
    python = sys.executable
    common = ["--host", host, "--log-format", log_format]
    return [
        NodeSpec(
            "master",
            [
                python,
                "-m",
                "replog.master",
                *common,
                "--port",
                str(base_port),
                "--secondaries",
                "2",
            ],
        ),
        NodeSpec(
            "secondary",
            [
                python,
                "-m",
                "replog.secondary",
                *common,
                "--port",
                str(base_port + 1),
                "--master",
                master_url,
                "--id",
                "secondary",
                "--delay",
                "0",
            ],
        ),
        NodeSpec(
            "secondary_slow",
            [
                python,
                "-m",
                "replog.secondary",
                *common,
                "--port",
                str(base_port + 2),
                "--master",
                master_url,
                "--id",
                "secondary_slow",
                "--delay",
                str(slow_delay),
            ],
        ),
    ]


def wipe_data(specs: list[NodeSpec]) -> None:
    """`--fresh`: remove each node's default data directory (./replog-data/<name>)."""
    for spec in specs:
        path = Path(DATA_ROOT) / spec.name
        if path.exists():
            shutil.rmtree(path)
            print(f"replog up: removed {path}", file=sys.stderr, flush=True)


# This run's cluster token, for whoever needs it (adding a node, removing a member).
TOKEN_FILE = Path(DATA_ROOT) / "cluster-token"


def cluster_env(token: str) -> dict[str, str]:
    """The children's environment: the token in it (never in argv, which `ps` shows)."""
    env = {k: v for k, v in os.environ.items() if k != "REPLOG_CLUSTER_TOKEN_FILE"}
    env["REPLOG_CLUSTER_TOKEN"] = token
    return env


def save_token(token: str) -> None:
    """Write the token to ./replog-data/cluster-token, readable by this user only."""
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    TOKEN_FILE.unlink(missing_ok=True)
    fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")


def run_cluster(specs: list[NodeSpec]) -> int:
    """Run the nodes until Ctrl-C / SIGTERM or until one of them exits.

    A new random cluster token each run, given to every node through its environment.
    """
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    token = secrets.token_urlsafe(32)
    save_token(token)
    env = cluster_env(token)
    procs = {spec.name: subprocess.Popen(spec.argv, env=env) for spec in specs}
    print(
        f"replog up: started {', '.join(procs)}; Ctrl-C stops them. Cluster token (internal "
        f"endpoints only, clients need none) in {TOKEN_FILE}",
        file=sys.stderr,
        flush=True,
    )
    exit_code = 0
    while not stop_requested:
        exited = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
        if exited:
            print(f"replog up: {exited} exited; stopping the cluster", file=sys.stderr, flush=True)
            exit_code = 1
            break
        time.sleep(0.2)
    stop_all(list(procs.values()))
    return exit_code


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def register(commands: Any) -> None:
    up = commands.add_parser(
        "up",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="run a local cluster in the foreground (Ctrl-C stops it)",
        description="Start a master and two secondaries (one fast, one slow) as local "
        f"processes, without Docker. Each keeps its log in ./{DATA_ROOT}/<node> (so a "
        "restart keeps the messages; --fresh starts empty). Their logs go to stdout; "
        "Ctrl-C stops all three. Each run gives the nodes a new random cluster token "
        f"(through their environment) and writes it to ./{DATA_ROOT}/cluster-token.",
    )
    up.add_argument("--host", default="127.0.0.2", help="address all three nodes listen on")
    up.add_argument(
        "--port", default=5000, type=port, help="master port; the secondaries use the next two"
    )
    up.add_argument(
        "--slow-delay",
        default=10.0,
        type=non_negative_float,
        help="artificial delay of the slow secondary, in seconds",
    )
    up.add_argument(
        "--log-format", default="json", choices=LOG_FORMATS, help="log format of the nodes"
    )
    up.add_argument(
        "--fresh",
        action="store_true",
        help=f"delete the nodes' data under ./{DATA_ROOT}/ first and start an empty cluster "
        f"(without it, the nodes keep their logs in ./{DATA_ROOT}/<node> across runs)",
    )
    up.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    specs = cluster_specs(args.host, args.port, args.slow_delay, args.log_format)
    if args.fresh:
        wipe_data(specs)
    return run_cluster(specs)
