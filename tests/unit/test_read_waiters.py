"""Waiting readers keyed by the seq they need (core.read_waiters)."""

import pytest

from replog.core.read_waiters import ReadWaiters


def test_a_waiter_for_a_readable_seq_is_not_registered():
    waiters = ReadWaiters(readable_seq=3)
    assert not waiters.register("r", 3)
    assert len(waiters) == 0
    assert waiters.register("r", 4) and len(waiters) == 1


def test_advance_wakes_exactly_the_satisfied_waiters_lowest_seq_first():
    waiters = ReadWaiters()
    for token, seq in [("c", 5), ("a", 1), ("b", 3), ("b2", 3), ("d", 9)]:
        assert waiters.register(token, seq)
    assert waiters.advance(0) == []
    assert waiters.advance(3) == ["a", "b", "b2"]
    assert waiters.advance(3) == []  # each token is woken once
    assert waiters.advance(8) == ["c"]
    assert len(waiters) == 1 and waiters.readable_seq == 8
    assert waiters.advance(100) == ["d"] and len(waiters) == 0


def test_a_cancelled_waiter_is_never_woken_and_its_token_may_wait_again():
    waiters = ReadWaiters()
    waiters.register("gone", 2)
    waiters.register("stays", 2)
    waiters.cancel("gone")
    waiters.cancel("never-registered")  # a no-op
    assert len(waiters) == 1
    waiters.register("gone", 4)  # a new wait under the same token
    assert waiters.advance(2) == ["stays"]
    assert waiters.advance(4) == ["gone"]


def test_a_token_waits_once_at_a_time():
    waiters = ReadWaiters()
    waiters.register("r", 2)
    with pytest.raises(ValueError):
        waiters.register("r", 3)


def test_cancelled_waiters_do_not_pile_up_in_memory():
    waiters = ReadWaiters()
    for i in range(10_000):
        waiters.register(i, 10)
        waiters.cancel(i)
    assert len(waiters) == 0 and len(waiters._heap) <= 64 + 1
    waiters.register("last", 10)
    assert waiters.advance(10) == ["last"]


def test_a_prefix_that_shrinks_wakes_nothing_and_later_growth_still_does():
    """A secondary's prefix shrinks when a new master's sync cuts it."""
    waiters = ReadWaiters(readable_seq=5)
    waiters.register("r", 6)
    assert waiters.advance(2) == [] and waiters.readable_seq == 2
    assert waiters.register("early", 4)
    assert waiters.advance(6) == ["early", "r"]
