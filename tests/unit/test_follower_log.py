"""The secondary's state machine: gap buffer, duplicates, contiguous prefix."""

import tracemalloc

from replog.core import Entry, FollowerLog


def e(seq, message=None, epoch=1, id=None):
    return Entry(seq, epoch, id, message or f"m{seq}")


def test_in_order_entries_are_applied():
    log = FollowerLog()
    result = log.apply([e(1), e(2)])
    assert result.applied == [1, 2]
    assert log.contiguous_seq == 2


def test_entry_after_a_gap_waits_until_the_gap_closes():
    log = FollowerLog()
    log.apply([e(1), e(2)])
    result = log.apply([e(4)])
    assert result.buffered == [4] and result.applied == []
    assert [x.seq for x in log.entries()] == [1, 2]
    result = log.apply([e(3)])
    assert result.applied == [3, 4]
    assert [x.seq for x in log.entries()] == [1, 2, 3, 4]
    assert log.out_of_order == {}


def test_resent_entries_are_duplicates_and_change_nothing():
    log = FollowerLog()
    log.apply([e(1), e(2)])
    result = log.apply([e(1), e(2), e(3)])
    assert result.duplicates == [1, 2] and result.applied == [3]
    assert log.contiguous_seq == 3


def test_buffered_entry_received_twice_is_a_duplicate():
    log = FollowerLog()
    log.apply([e(3)])
    result = log.apply([e(3)])
    assert result.duplicates == [3]
    assert len(log.out_of_order) == 1


def test_different_entry_at_a_held_seq_is_a_conflict_not_an_overwrite():
    log = FollowerLog()
    log.apply([e(1, "a")])
    result = log.apply([e(1, "b", epoch=2)])
    assert result.conflicts == [1]
    assert log.entries()[0].message == "a"


def test_reverse_order_arrival_ends_contiguous():
    log = FollowerLog()
    for seq in range(10, 0, -1):
        log.apply([e(seq)])
    assert [x.seq for x in log.entries()] == list(range(1, 11))
    assert log.last_epoch == 1


def test_paging():
    log = FollowerLog()
    log.apply([e(i) for i in range(1, 6)])
    assert [x.seq for x in log.entries(2, 2)] == [2, 3]


def test_sync_discards_a_conflicting_suffix_and_the_buffer():
    log = FollowerLog()
    log.apply([e(1), e(2), e(3), e(5)])
    log.mark_durable(3)
    discarded = log.sync(master_epoch=2, keep=2, epoch_start=2)
    assert discarded == [3]
    assert [x.seq for x in log.entries()] == [1, 2]
    assert log.out_of_order == {}
    assert log.stream_epoch == 2 and log.sync_epoch == 2  # holds 1..2 = the master's log


def test_sync_epoch_moves_only_once_caught_up_with_the_master():
    log = FollowerLog()
    log.sync(master_epoch=3, keep=0, epoch_start=3)
    assert log.sync_epoch == 0
    log.apply([e(1, epoch=1), e(2, epoch=1)], master_epoch=3)
    log.mark_durable(2)
    assert log.sync_epoch == 0
    log.apply([e(3, epoch=3)], master_epoch=3)
    assert log.sync_epoch == 0  # held, but not on disk yet
    log.mark_durable(3)
    assert log.sync_epoch == 3


def test_batches_from_another_master_epoch_are_dropped():
    log = FollowerLog()
    log.sync(master_epoch=2, keep=0, epoch_start=0)
    result = log.apply([e(1, epoch=1)], master_epoch=1)  # a late batch from the old master
    assert result.stale and log.contiguous_seq == 0
    assert log.apply([e(1, epoch=2)], master_epoch=2).applied == [1]


def test_epoch_runs_summarise_the_log():
    log = FollowerLog()
    log.apply([e(1, epoch=1), e(2, epoch=1), e(3, epoch=4), e(4, epoch=4), e(5, epoch=7)])
    assert log.epoch_runs() == [[1, 1], [4, 3], [7, 5]]
    log.sync(master_epoch=9, keep=3, epoch_start=3)
    assert log.epoch_runs() == [[1, 1], [4, 3]]


def test_entries_the_current_master_created_count_as_caught_up():
    """A secondary still catching up, but holding entries of the current epoch, holds the
    master's whole opening log: it must rank as synced (a restarted master picks by it)."""
    log = FollowerLog()
    log.sync(master_epoch=3, keep=0, epoch_start=120)  # the master opened with 120 entries
    log.apply([e(i, epoch=1) for i in range(1, 121)], master_epoch=3)
    log.mark_durable(120)
    assert log.sync_epoch == 3  # holds the opening log even before any epoch-3 entry
    log2 = FollowerLog()
    log2.sync(master_epoch=3, keep=0, epoch_start=120)
    log2.apply([e(i, epoch=1) for i in range(1, 100)], master_epoch=3)
    log2.mark_durable(99)
    assert log2.sync_epoch == 0


def test_the_durable_prefix_is_what_gets_acknowledged():
    log = FollowerLog()
    log.apply([e(1), e(2), e(3)])
    assert log.contiguous_seq == 3 and log.durable_seq == 0
    log.mark_durable(2)
    assert log.durable_seq == 2
    log.mark_durable(9)  # never beyond what it holds
    assert log.durable_seq == 3


def test_sync_clamps_the_durable_prefix_to_what_is_kept():
    log = FollowerLog()
    log.apply([e(1), e(2), e(3)])
    log.mark_durable(3)
    log.sync(master_epoch=2, keep=1, epoch_start=1)
    assert log.durable_seq == 1 and log.contiguous_seq == 1


def test_restore_starts_from_the_replayed_log_and_epochs():
    log = FollowerLog()
    log.restore([e(1, epoch=1), e(2, epoch=1), e(3, epoch=4)], stream_epoch=4, sync_epoch=4)
    assert log.contiguous_seq == log.durable_seq == 3
    assert log.epoch_runs() == [[1, 1], [4, 3]]
    assert (log.stream_epoch, log.sync_epoch, log.epoch_of(3), log.epoch_of(0)) == (4, 4, 4, 0)
    assert log.applied_entries(log.apply([e(4, epoch=4)], master_epoch=4)) == [e(4, epoch=4)]


# -- bounds: a batch no correct master sends is refused whole ----------------------


def synced(**bounds) -> FollowerLog:
    log = FollowerLog(**bounds)
    log.sync(master_epoch=1, keep=0, epoch_start=0)
    log.apply([e(1), e(2)], master_epoch=1)
    return log


def test_a_seq_too_far_ahead_refuses_the_batch_and_discards_the_buffer():
    log = synced(max_ahead=100)
    assert log.apply([e(5)], master_epoch=1).buffered == [5]
    result = log.apply([e(3), e(4), e(103)], master_epoch=1)  # 2 + 100 is the most
    assert result.refused is not None and "103" in result.refused
    assert result.applied == [] and log.contiguous_seq == 2  # not even 3 and 4
    assert log.out_of_order == {} and log.buffered_bytes == 0
    # The limit itself is fine: the master's window is within it.
    assert log.apply([e(102)], master_epoch=1).refused is None


def test_one_batch_of_far_ahead_seqs_is_refused_at_once_without_buffering_anything():
    log = synced()
    far = [e(10**12 + i, "x" * 50) for i in range(100_000)]
    tracemalloc.start()
    try:
        result = log.apply(far, master_epoch=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.refused is not None
    assert log.out_of_order == {} and log.contiguous_seq == 2
    assert peak < 64 * 1024  # refused on the first entry: nothing per entry was kept


def test_the_buffer_is_bounded_in_bytes():
    one = e(10, "y" * 100).wire_bytes()
    log = synced(max_buffered_bytes=3 * one)
    assert log.apply([e(10, "y" * 100), e(11, "y" * 100)], master_epoch=1).buffered == [10, 11]
    assert log.buffered_bytes == 2 * one
    result = log.apply([e(12, "y" * 100), e(13, "y" * 100)], master_epoch=1)
    assert result.refused is not None and "bytes" in result.refused
    assert log.out_of_order == {} and log.buffered_bytes == 0
    # What closes a gap is never counted: a whole window in order always goes through.
    assert log.apply([e(i, "y" * 100) for i in range(3, 20)], master_epoch=1).applied
    assert log.contiguous_seq == 19


def test_buffered_bytes_follow_the_buffer():
    log = synced()
    log.apply([e(5, "abc"), e(6, "é")], master_epoch=1)
    assert log.buffered_bytes == e(5, "abc").wire_bytes() + e(6, "é").wire_bytes()
    assert log.apply([e(5, "abc")], master_epoch=1).duplicates == [5]  # counted once
    assert log.apply([e(6, "other")], master_epoch=1).conflicts == [6]  # the first stays
    log.apply([e(3), e(4)], master_epoch=1)
    assert log.contiguous_seq == 6 and log.out_of_order == {} and log.buffered_bytes == 0
    log.apply([e(9)], master_epoch=1)
    log.sync(master_epoch=2, keep=6, epoch_start=6)
    assert log.out_of_order == {} and log.buffered_bytes == 0


def test_an_entry_from_a_later_epoch_than_its_master_is_refused():
    log = synced()
    result = log.apply([e(3), e(4, epoch=2)], master_epoch=1)
    assert result.refused is not None and log.contiguous_seq == 2
    assert log.apply([e(3, epoch=0)], master_epoch=1).refused is None  # older: fine


def test_a_summary_reports_at_most_max_runs():
    log = FollowerLog()
    log.apply([e(1, epoch=1), e(2, epoch=2), e(3, epoch=2), e(4, epoch=5), e(5, epoch=6)])
    assert log.summary(10) == (5, [[1, 1], [2, 2], [5, 4], [6, 5]])
    # Too many runs: the prefix the first ones cover (the master resends the rest).
    assert log.summary(2) == (3, [[1, 1], [2, 2]])
    assert FollowerLog().summary(2) == (0, [])


def test_readers_see_only_the_durable_prefix():
    # Applied but not on disk: a power cut could take it back, so nobody sees it.
    log = FollowerLog()
    log.apply([e(1), e(2), e(3)])
    assert log.contiguous_seq == 3 and log.visible_seq == 0
    assert log.public_page() == []
    log.mark_durable(2)
    assert [m["seq"] for m in log.public_page()] == [1, 2]
    assert [m["seq"] for m in log.public_page(2, 5)] == [2]
    assert log.public_page(3) == []
    log.mark_durable(3)
    assert [m["seq"] for m in log.public_page(2, 1)] == [2]
    assert [m["seq"] for m in log.public_page()] == [1, 2, 3]


def test_the_commit_point_is_what_the_master_told_within_the_visible_prefix():
    log = FollowerLog()
    log.apply([e(1), e(2), e(3)])
    assert log.commit_seq == 0
    assert log.note_commit(5) and log.told_commit == 5
    assert log.commit_seq == 0  # nothing on disk yet
    log.mark_durable(2)
    assert log.commit_seq == 2
    log.mark_durable(3)
    assert log.commit_seq == 3
    assert not log.note_commit(4)  # told less than before: nothing moves
    assert log.told_commit == 5
    assert [m["seq"] for m in log.public_page(1, None, end=log.commit_seq)] == [1, 2, 3]
    assert [m["seq"] for m in log.public_page(2, 1, end=3)] == [2]


def test_a_sync_that_cuts_the_log_cuts_what_was_told_of_it():
    log = FollowerLog()
    log.sync(1, 0, 0)
    log.apply([e(1), e(2), e(3)], master_epoch=1)
    log.mark_durable(3)
    log.note_commit(3)
    log.sync(2, 1, 1)  # a new master keeps 1 only
    assert log.told_commit == 1 and log.commit_seq == 1
    log.apply([e(2, "other", epoch=2)], master_epoch=2)
    log.mark_durable(2)
    assert log.commit_seq == 1  # the new entry 2 is not the one told committed
