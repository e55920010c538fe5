"""Wait on conditions with deadlines: never sleep-and-hope.

`wait_until` (processes, from outside) is the harness's; `async_wait_until` is
for in-process tests on an event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from tools.harness.waiting import wait_until

__all__ = ["async_wait_until", "wait_until"]

T = TypeVar("T")


async def async_wait_until(
    condition: Callable[[], T], timeout: float = 5.0, interval: float = 0.01, what: str = ""
) -> T:
    """`wait_until` for in-process tests: polls without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while not (last := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or condition}: {last!r}"
            )
        await asyncio.sleep(interval)
    return last
