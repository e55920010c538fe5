"""Wait on conditions with deadlines: never sleep-and-hope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 15.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = condition()
        except Exception as exc:  # a node not up yet counts as "not yet"
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or condition}: {last!r}"
            )
        time.sleep(interval)


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
