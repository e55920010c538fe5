"""`replog up`: a local three-node cluster in the foreground, without Docker."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from replog.common.config import DATA_ROOT, non_negative_float, port
from replog.common.logs import LOG_FORMATS, resolve_log_format, use_colors

STOP_GRACE_SECONDS = 5.0
# After the nodes exit, how long to wait for the rest of their output (EOF on their pipes).
DRAIN_SECONDS = 5.0
# The colours of the node names on a terminal (ANSI: cyan, yellow, green, magenta, blue).
NAME_COLORS = ("36", "33", "32", "35", "34")


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


class LineRelay:
    """Copies the nodes' stdout and stderr to ours, line by line, each line prefixed with the
    node's name (padded to the longest, `name | line`, as docker compose does).

    One thread per pipe reads continuously, so a node printing a lot never blocks on a full
    pipe; one lock makes every line a single write, so lines are never interleaved mid-line.
    A node's stdout goes to our stdout, its stderr to our stderr. `prefix=False` copies the
    lines unchanged (`--no-prefix`: pure JSON lines; every event carries `node` anyway).
    A reader whose destination has gone (a closed pipe) keeps draining its node's pipe.
    """

    def __init__(
        self,
        names: list[str],
        out: IO[bytes],
        err: IO[bytes],
        prefix: bool = True,
        colors: bool = False,
    ) -> None:
        self._out, self._err = out, err
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        width = max((len(name) for name in names), default=0)
        self._prefixes: dict[str, bytes] = {}
        for index, name in enumerate(names):
            text = f"{name:<{width}} | " if prefix else ""
            if prefix and colors:
                text = f"\x1b[{NAME_COLORS[index % len(NAME_COLORS)]}m{text}\x1b[0m"
            self._prefixes[name] = text.encode()

    def attach(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        """Start relaying `proc`'s piped stdout and stderr under `name`."""
        for pipe, dest in ((proc.stdout, self._out), (proc.stderr, self._err)):
            if pipe is None:
                continue
            thread = threading.Thread(
                target=self._pump, args=(self._prefixes[name], pipe, dest), daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def write(self, dest: IO[bytes], line: bytes) -> bool:
        """One whole line to `dest`, under the lock; False when `dest` is gone."""
        with self._lock:
            try:
                dest.write(line)
                dest.flush()
            except (BrokenPipeError, ValueError, OSError):
                return False
        return True

    def _pump(self, prefix: bytes, pipe: IO[bytes], dest: IO[bytes]) -> None:
        alive = True
        with pipe:
            for line in iter(pipe.readline, b""):
                if alive:
                    end = b"" if line.endswith(b"\n") else b"\n"  # a last line without newline
                    alive = self.write(dest, prefix + line + end)

    def join(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Wait until every pipe reached EOF (the nodes exited); False if some did not in time."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)


def child_environment(token: str, colors: bool) -> dict[str, str]:
    """`cluster_env`, plus our terminal's colours: the nodes write to pipes, not to it."""
    env = cluster_env(token)
    env.pop("FORCE_COLOR" if not colors else "NO_COLOR", None)
    if colors:
        env["FORCE_COLOR"] = "1"
    else:
        env["NO_COLOR"] = "1"
    return env


def run_cluster(
    specs: list[NodeSpec],
    prefix: bool = True,
    colors: bool | None = None,
    master_url: str | None = None,
) -> int:
    """Run the nodes until Ctrl-C / SIGTERM or until one of them exits.

    A new random cluster token each run, given to every node through its environment.
    The nodes' output is relayed line by line (`LineRelay`) until their pipes close.
    `colors` (default: whether our stdout is a coloured terminal) colours the names and
    the nodes' console lines.
    """
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    token = secrets.token_urlsafe(32)
    save_token(token)
    if colors is None:
        colors = use_colors(sys.stdout)
    env = child_environment(token, colors)
    relay = LineRelay(
        [spec.name for spec in specs], sys.stdout.buffer, sys.stderr.buffer, prefix, colors
    )

    def say(text: str) -> None:
        relay.write(sys.stderr.buffer, f"replog up: {text}\n".encode())

    procs: dict[str, subprocess.Popen[bytes]] = {}
    for spec in specs:
        procs[spec.name] = subprocess.Popen(
            spec.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        relay.attach(spec.name, procs[spec.name])
    say(
        f"started {', '.join(procs)}; Ctrl-C stops them. Cluster token (internal "
        f"endpoints only, clients need none) in {TOKEN_FILE}"
    )
    if master_url is not None:
        say(f"live cluster page: {master_url}/ui")
    exit_code = 0
    while not stop_requested:
        exited = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
        if exited:
            say(f"{exited} exited; stopping the cluster")
            exit_code = 1
            break
        time.sleep(0.2)
    stop_all(list(procs.values()))
    if not relay.join():
        say("some output was still open after the nodes exited; not waiting for it")
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
        "restart keeps the messages; --fresh starts empty). Their logs go to stdout (stderr to "
        "stderr), each line prefixed with the node's name; "
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
        "--log-format",
        default="auto",
        choices=LOG_FORMATS,
        help="log format of the nodes; auto: console when this command's stdout is a terminal "
        "(coloured unless NO_COLOR is set; FORCE_COLOR forces colours), else json",
    )
    up.add_argument(
        "--no-prefix",
        dest="prefix",
        action="store_false",
        default=argparse.SUPPRESS,  # (no "default: True" in --help: absent means prefix)
        help="relay the nodes' lines unchanged, without the 'name |' prefix (with json: one "
        "JSON object per line for jq; every event carries its node)",
    )
    up.add_argument(
        "--fresh",
        action="store_true",
        help=f"delete the nodes' data under ./{DATA_ROOT}/ first and start an empty cluster "
        f"(without it, the nodes keep their logs in ./{DATA_ROOT}/<node> across runs)",
    )
    up.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    log_format = resolve_log_format(args.log_format, sys.stdout)
    specs = cluster_specs(args.host, args.port, args.slow_delay, log_format)
    if args.fresh:
        wipe_data(specs)
    return run_cluster(
        specs, prefix=getattr(args, "prefix", True), master_url=f"http://{args.host}:{args.port}"
    )
