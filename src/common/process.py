"""Running a node process: listen, log, stop cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import structlog


async def serve_until_signalled(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await start()
    await stopping.wait()
    structlog.get_logger("replog").info("stopping")
    await stop()


class ListenError(Exception):
    """The node cannot listen on its address (in use, not ours): exit 1 saying so."""


def listen(server: Any, port: int, host: str) -> None:
    """`server.listen`, its OSError told apart from any other (a failed dial is not one)."""
    try:
        server.listen(port, host)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc}") from None
