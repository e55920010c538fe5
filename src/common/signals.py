"""SIGINT and SIGTERM stop a node cleanly, exit status 0, at any moment of its life.

A node catches both from the first lines its entry module runs (before the
slow imports) to its exit, so no signal ever meets the default action
(SIGTERM kills the process, status -15; SIGINT raises KeyboardInterrupt with
a traceback). The first signal decides, depending on the phase:

- imports and flags: it is noted, and the node exits 0 as soon as it gets
  to `starting` (common.process), before it touches its data directory.
  (Nothing is raised there: an exception raised in an import can come out
  as another one, a RuntimeError from a class body say.)
- starting (opening and replaying storage, building the node, which can
  take seconds for a long log): it raises StopRequested where the process
  is, and the node exits 0 without serving. Nothing has been answered yet,
  and storage is built to survive a stop at any point (kill -9 included).
- serving: it wakes the event loop, which stops the node in order
  (common.process.serve_until_signalled).

Every later signal is ignored (SIG_IGN, which the interpreter keeps until
the process is gone): a second Ctrl-C or SIGTERM cannot interrupt a stop.

These are plain Python handlers, not `loop.add_signal_handler`: an asyncio
loop puts the default action back when it closes, so a signal in the last
steps of a stop would kill the process. While the loop serves, a wake-up
file descriptor (`signal.set_wakeup_fd`) makes the loop run the handler at
once whichever thread the kernel delivered the signal to.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(SystemExit):
    """SIGINT or SIGTERM before the node serves: unwind and exit 0.

    A SystemExit (status 0): `except Exception` does not catch it, and the
    event loop lets it through, as it does sys.exit().
    """

    def __init__(self, signum: int) -> None:
        super().__init__(0)
        self.signum = signum


class StopSignals:
    def __init__(self) -> None:
        self.received: int | None = None
        self.installed = False
        self._raising = False
        self._wake: Callable[[], None] | None = None

    @property
    def name(self) -> str | None:
        return None if self.received is None else signal.Signals(self.received).name

    def install(self) -> None:
        """Catch SIGINT and SIGTERM from now on (main thread only; idempotent)."""
        if self.installed:
            return
        self.installed = True
        for sig in SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            return  # (only before SIG_IGN below is in place)
        self.received = signum
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if self._wake is not None:
            self._wake()
        elif self._raising:
            raise StopRequested(signum)

    def raising(self, on: bool) -> None:
        """Whether a signal raises StopRequested at once (while the node starts), or is
        only noted: for `starting` to see, or for the loop (`waking`), which stops the
        node in order."""
        self._raising = on

    def ignore_from_now_on(self) -> None:
        """The node is stopping or stopped: later signals change nothing."""
        if self.received is None:
            self.received = signal.SIGTERM  # (no signal came: the node stopped by itself)
            for sig in SIGNALS:
                signal.signal(sig, signal.SIG_IGN)

    @contextmanager
    def waking(self, loop: Any, wake: Callable[[], None]) -> Iterator[None]:
        """While the loop serves: a signal calls `wake` on the loop instead of raising."""
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        # Any byte here wakes the loop; running the callback runs the pending handler.
        loop.add_reader(reader.fileno(), _drain, reader)
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._wake = lambda: loop.call_soon_threadsafe(wake)
        try:
            if self.received is not None:
                wake()  # it came before the loop ran
            yield
        finally:
            self._wake = None
            self.ignore_from_now_on()
            signal.set_wakeup_fd(previous)
            loop.remove_reader(reader.fileno())
            reader.close()
            writer.close()


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(256):
            pass
    except (BlockingIOError, InterruptedError):
        pass


# One per process: signal dispositions are process-wide.
STOP_SIGNALS = StopSignals()
