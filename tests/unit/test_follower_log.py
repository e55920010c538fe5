"""The secondary's state machine: gap buffer, duplicates, contiguous prefix."""

from core import Entry, FollowerLog


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
