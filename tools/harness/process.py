"""Node processes: start a console script with its argv, environment and log file,
signal it, stop it (SIGTERM, then SIGKILL), and read its log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Self

# The console scripts of the replog installed in this interpreter's environment.
BIN = Path(sys.executable).parent
STOP_TIMEOUT = 10.0


def script(name: str, module: str) -> list[str]:
    """The argv that runs console script `name`, or `python -m module` where it is not installed."""
    path = BIN / name
    return [str(path)] if path.exists() else [sys.executable, "-m", module]


def environment(
    extra: dict[str, str] | None = None, drop_prefix: str | None = None
) -> dict[str, str]:
    """This process's environment without the variables named `drop_prefix*`, plus `extra`.

    Dropping REPLOG_* keeps a stray REPLOG_IN_MEMORY=1 in the caller's shell from
    changing what a node does: its settings are then only the flags it is given."""
    base = {
        k: v for k, v in os.environ.items() if drop_prefix is None or not k.startswith(drop_prefix)
    }
    return {**base, **(extra or {})}


@dataclass
class NodeProcess:
    """One process, started (and restarted) with the same argv.

    Its stdout and stderr are appended to `log_path` across restarts, and it runs
    in `cwd` (default: the log's folder, where a node's default ./replog-data
    lands too). `env` is added to this process's environment, from which the
    variables named `drop_env_prefix*` are removed first.
    """

    name: str
    argv: list[str]
    url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    _: KW_ONLY
    drop_env_prefix: str | None = None
    cwd: Path | None = None
    # Its own session: a terminal's Ctrl-C reaches only the parent.
    new_session: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = field(default=0, init=False)
    # When the last start began: wall clock (to compare with the node's log) and perf_counter.
    started_wall: float = field(default=0.0, init=False)
    started: float = field(default=0.0, init=False)

    def start(self) -> Self:
        with self.log_path.open("ab") as log:
            self.started_wall, self.started = time.time(), time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment(self.env, self.drop_env_prefix),
                cwd=self.cwd if self.cwd is not None else self.log_path.parent,
                start_new_session=self.new_session,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None, f"{self.name} was never started"
        self.proc.send_signal(sig)

    def send_kill(self) -> None:
        """SIGKILL without waiting (to kill several nodes at the same moment, then reap)."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()

    def kill(self) -> int | None:
        """SIGKILL and reap: no clean shutdown; what the node wrote to disk stays."""
        self.send_kill()
        if self.proc is None:
            return None
        return self.proc.wait(STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (after SIGCONT: a paused node must run to stop), SIGKILL after `timeout`.

        Returns the exit code (None if it was never started)."""
        stop_all([self], timeout)
        return self.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The node's structured log, one JSON object per line (other lines skipped)."""
        return [json.loads(line) for line in self.log_text().splitlines() if line.startswith("{")]


def stop_all(processes: Iterable[NodeProcess], timeout: float = STOP_TIMEOUT) -> None:
    """Stop every process as `NodeProcess.stop` does, signalling all of them before waiting."""
    running = [p for p in processes if p.alive()]
    for process in running:
        process.signal(signal.SIGCONT)
        process.signal(signal.SIGTERM)
    for process in running:
        assert process.proc is not None
        try:
            process.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            process.proc.kill()
            process.proc.wait(STOP_TIMEOUT)
