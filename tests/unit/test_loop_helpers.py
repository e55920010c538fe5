"""common.loop: stopping tasks and fetches without tracebacks."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from tornado.concurrent import future_set_exception_unless_cancelled

from replog.common.loop import cancel_and_wait, left_alone_if_cancelled


def test_a_fetch_that_fails_after_its_waiter_was_cancelled_logs_nothing(caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        fetch = asyncio.get_running_loop().create_future()
        waiter = asyncio.create_task(left_alone_if_cancelled(fetch))
        await asyncio.sleep(0)
        waiter.cancel()  # the node stops mid-registration
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not fetch.cancelled()
        # Then the master's connection resets: Tornado reports it on the fetch's future.
        future_set_exception_unless_cancelled(fetch, ConnectionResetError(104, "reset"))
        await asyncio.sleep(0)

    asyncio.run(scenario())
    gc.collect()
    assert "Exception after Future was cancelled" not in caplog.text
    assert "never retrieved" not in caplog.text


def test_cancel_and_wait_does_not_raise_what_a_task_ended_with():
    async def fails() -> None:
        raise OSError("a dial that failed earlier")

    async def scenario() -> None:
        failed = asyncio.create_task(fails())
        await asyncio.sleep(0)
        sleeping = asyncio.create_task(asyncio.sleep(60))
        await cancel_and_wait(failed, sleeping, None)
        assert failed.done() and sleeping.cancelled()

    asyncio.run(scenario())
