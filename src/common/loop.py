"""Event loop choice: uvloop when installed (and not disabled), else asyncio's own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, None]) -> None:
    if os.environ.get("REPLOG_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.install()
    asyncio.run(main)


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel `tasks` and wait until they are done, whatever they ended with.

    (Awaiting a finished task again re-raises its old exception, which a stop
    must not do: the task's owner has logged it already.)
    """
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def left_alone_if_cancelled(future: asyncio.Future[T]) -> T:
    """Await `future` (an AsyncHTTPClient fetch), leaving it alone if we are cancelled.

    Cancelling a fetch's future does not stop the fetch, and when the fetch then
    fails (the peer is stopping too), Tornado logs "Exception after Future was
    cancelled" with a traceback. Shielded, the fetch ends on its own, and what it
    ends with is collected here.
    """
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_collect)
        raise


def _collect(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
