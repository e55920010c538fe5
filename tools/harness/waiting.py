"""Wait on conditions with deadlines: never sleep-and-hope."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tools.harness.process import NodeProcess

T = TypeVar("T")


class WaitFailed(AssertionError):
    """A condition did not hold in time, or a node it depends on exited.

    An AssertionError, so that a test reports it as a failed expectation."""


def wait_until(
    condition: Callable[[], T],
    timeout: float = 15.0,
    interval: float = 0.02,
    what: str = "",
    *,
    watch: Iterable[NodeProcess] = (),
    ignore: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    An exception of a type in `ignore` counts as "not yet" (a node not up yet
    refuses connections). Fails after `timeout` seconds, or as soon as a
    process in `watch` has exited, since then the condition cannot come true.
    """
    watched = list(watch)
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = condition()
        except ignore as exc:
            last = exc
        else:
            if last:
                return last
        for process in watched:
            if process.proc is not None and process.proc.poll() is not None:
                raise WaitFailed(
                    f"{process.name} exited with {process.proc.returncode} while waiting for "
                    f"{what or condition}; see {process.log_path}"
                )
        if time.monotonic() >= deadline:
            raise WaitFailed(
                f"timed out after {timeout}s waiting for {what or condition}: {last!r}"
            )
        time.sleep(interval)
