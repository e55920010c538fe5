"""A pseudo-terminal for tests: a process's stdout that `isatty()`, read with deadlines."""

from __future__ import annotations

import errno
import os
import pty
import select
import subprocess
import time
from collections.abc import Callable
from typing import Any

ANSI_ESCAPE = b"\x1b["


class Terminal:
    """The two ends of a pty: give `slave` to a process, read what it wrote from here."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.output = b""
        self.eof = False

    def spawn(self, argv: list[str], **popen: Any) -> subprocess.Popen[bytes]:
        """Start `argv` with this terminal as its stdout and stderr (stdin closed)."""
        proc = subprocess.Popen(
            argv, stdout=self.slave, stderr=self.slave, stdin=subprocess.DEVNULL, **popen
        )
        self.close_slave()
        return proc

    def close_slave(self) -> None:
        """Our copy of the slave end, once the process has its own (EOF when it exits)."""
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1

    def close(self) -> None:
        self.close_slave()
        os.close(self.master)

    def _read_some(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError as exc:  # Linux: EIO once every slave end is closed
            if exc.errno != errno.EIO:
                raise
            data = b""
        if data:
            self.output += data
        else:
            self.eof = True

    def read_until(
        self, condition: Callable[[bytes], object], timeout: float = 30.0, what: str = ""
    ) -> bytes:
        """Read until `condition(output so far)` holds; fail after `timeout` seconds or at EOF."""
        deadline = time.monotonic() + timeout
        while not condition(self.output):
            if self.eof or time.monotonic() >= deadline:
                raise AssertionError(
                    f"{'EOF' if self.eof else f'timed out after {timeout}s'} waiting for "
                    f"{what or condition}; output: {self.output[-2000:]!r}"
                )
            self._read_some(deadline - time.monotonic())
        return self.output

    def read_to_eof(self, timeout: float = 30.0) -> bytes:
        """Everything until every writer has closed the slave end."""
        self.close_slave()
        return self.read_until(lambda _: self.eof, timeout, "EOF") if not self.eof else self.output
