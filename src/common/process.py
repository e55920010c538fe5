"""Running a node process: listen, log, stop cleanly on SIGINT/SIGTERM (common.signals)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from replog.common.signals import STOP_SIGNALS, StopRequested

# A stop is bounded: the process must be gone within 2 s of the signal.
STOP_TIMEOUT_SECONDS = 1.5

log = structlog.get_logger("replog")


@contextmanager
def starting() -> Iterator[None]:
    """Open storage and build the node in here: a signal before or meanwhile exits 0 at once.

    Afterwards a signal is kept for the event loop instead (see common.signals).
    """
    try:
        if STOP_SIGNALS.received is not None:
            raise StopRequested(STOP_SIGNALS.received)
        STOP_SIGNALS.raising(True)
        yield
    except StopRequested:
        STOP_SIGNALS.raising(False)
        log.info("stopping", signal=STOP_SIGNALS.name, during="start-up")
        raise  # a SystemExit: status 0
    STOP_SIGNALS.raising(False)


async def serve_until_signalled(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    """Run `start`, serve until SIGINT or SIGTERM, then run `stop` (bounded in time)."""
    stopping = asyncio.Event()
    with STOP_SIGNALS.waking(asyncio.get_running_loop(), stopping.set):
        if not stopping.is_set():
            await start()
            await stopping.wait()
        log.info("stopping", signal=STOP_SIGNALS.name)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                await stop()
        except TimeoutError:
            # Never expected; if it happens the process still goes (storage
            # survives any stop), saying what it could not finish.
            log.error("stop_timed_out", seconds=STOP_TIMEOUT_SECONDS)
            return
    log.info("stopped")


class ListenError(Exception):
    """The node cannot listen on its address (in use, not ours): exit 1 saying so."""


def listen(server: Any, port: int, host: str) -> None:
    """`server.listen`, its OSError told apart from any other (a failed dial is not one)."""
    try:
        server.listen(port, host)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc}") from None
