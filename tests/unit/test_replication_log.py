"""The master's state machine, driven with events and no sockets."""

import pytest

from core import MASTER, Entry, IdConflict, ReplicationLog


def make_log(secondaries=("s1", "s2"), expected=2, **kw) -> ReplicationLog:
    log = ReplicationLog(expected_secondaries=expected, **kw)
    for name in secondaries:
        log.register(name, f"http://{name}", 0)
        log.stream_opened(name, 0)
    return log


def test_append_assigns_consecutive_seqs():
    log = make_log()
    seqs = [log.append(f"m{i}", None).entry.seq for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert [e.message for e in log.entries()] == ["m0", "m1", "m2", "m3", "m4"]


def test_same_id_same_message_is_a_duplicate_without_a_new_entry():
    log = make_log()
    first = log.append("hello", 7)
    again = log.append("hello", 7)
    assert not first.duplicate and again.duplicate
    assert again.entry is first.entry
    assert log.last_seq == 1


def test_same_id_other_message_conflicts_and_changes_nothing():
    log = make_log()
    log.append("hello", 7)
    with pytest.raises(IdConflict) as err:
        log.append("bye", 7)
    assert err.value.existing.seq == 1
    assert log.last_seq == 1


def test_ids_are_compared_as_json_values():
    log = make_log()
    assert not log.append("a", 1).duplicate
    assert not log.append("a", "1").duplicate
    assert log.last_seq == 2


def test_messages_without_id_are_never_deduplicated():
    log = make_log()
    log.append("same", None)
    assert not log.append("same", None).duplicate
    assert log.last_seq == 2


def test_w1_is_satisfied_at_once():
    log = make_log()
    seq = log.append("a", None).entry.seq
    done = log.wait_for("t", seq, 1)
    assert done is not None and done.acked_by == (MASTER,)
    assert not log.commit_waiters


def test_waiter_resolves_when_ack_set_reaches_w():
    log = make_log()
    seq = log.append("a", None).entry.seq
    assert log.wait_for("t", seq, 3) is None
    assert log.record_ack("s1", 1) == []
    (done,) = log.record_ack("s2", 1)
    assert done.token == "t" and done.acked_by == (MASTER, "s1", "s2")
    assert not log.commit_waiters


def test_ack_of_a_later_prefix_covers_earlier_entries():
    log = make_log()
    for i in range(3):
        log.append(f"m{i}", None)
    log.wait_for("first", 1, 2)
    log.wait_for("third", 3, 2)
    satisfied = {s.token for s in log.record_ack("s1", 3)}
    assert satisfied == {"first", "third"}
    assert log.ack_set(2) == (MASTER, "s1")


def test_ack_below_a_waiting_seq_does_not_resolve_it():
    log = make_log()
    log.append("a", None)
    log.append("b", None)
    log.wait_for("t", 2, 2)
    assert log.record_ack("s1", 1) == []
    assert "t" in log.commit_waiters


def test_cancelled_waiter_is_forgotten():
    log = make_log()
    log.append("a", None)
    log.wait_for("t", 1, 3)
    log.cancel_wait("t")
    assert log.record_ack("s1", 1) == [] and log.record_ack("s2", 1) == []
    assert not log.commit_waiters


def test_cluster_size_counts_expected_or_registered_secondaries():
    assert ReplicationLog().cluster_size == 1
    assert ReplicationLog(expected_secondaries=2).cluster_size == 3
    log = make_log(secondaries=("a", "b", "c"), expected=2)
    assert log.cluster_size == 4


def test_next_batch_sends_what_the_secondary_lacks_in_order():
    log = make_log(max_batch_entries=2)
    for i in range(5):
        log.append(f"m{i}", None)
    batches = []
    while (batch := log.next_batch("s1")) is not None:
        batches.append((batch.seq_from, batch.seq_to))
    assert batches == [(1, 2), (3, 4), (5, 5)]
    assert log.next_batch("s1") is None


def test_inflight_window_limits_unacknowledged_batches():
    log = make_log(max_batch_entries=1, max_inflight_batches=2)
    for i in range(5):
        log.append(f"m{i}", None)
    assert log.next_batch("s1").seq_to == 1
    assert log.next_batch("s1").seq_to == 2
    assert log.next_batch("s1") is None
    log.record_ack("s1", 1)
    assert log.next_batch("s1").seq_to == 3


def test_closed_stream_resends_everything_unacknowledged():
    log = make_log()
    for i in range(4):
        log.append(f"m{i}", None)
    log.next_batch("s1")
    log.record_ack("s1", 2)
    log.stream_closed("s1")
    assert log.next_batch("s1") is None  # not connected: nothing to send
    log.stream_opened("s1", 2)
    batch = log.next_batch("s1")
    assert (batch.seq_from, batch.seq_to) == (3, 4)


def test_reregistration_with_an_empty_log_refills_from_the_start():
    log = make_log()
    for i in range(3):
        log.append(f"m{i}", None)
    log.next_batch("s1")
    log.record_ack("s1", 3)
    assert log.ack_set(3) == (MASTER, "s1")
    # The secondary restarted and lost everything: it must not count as holding it.
    log.register("s1", "http://s1", 0)
    assert log.ack_set(1) == (MASTER,)
    log.stream_opened("s1", 0)
    batch = log.next_batch("s1")
    assert (batch.seq_from, batch.seq_to) == (1, 3)


def test_acks_beyond_the_log_are_capped():
    log = make_log()
    log.append("a", None)
    log.record_ack("s1", 99)
    assert log.progress("s1").acked_seq == 1


def test_stream_open_resolves_waiters_already_covered():
    log = make_log()
    log.append("a", None)
    log.wait_for("t", 1, 2)
    (done,) = log.stream_opened("s2", 1)
    assert done.token == "t"


def test_batches_respect_the_byte_budget_but_always_carry_one_entry():
    log = make_log(max_batch_bytes=100)
    log.append("x" * 500, None)
    log.append("y" * 10, None)
    log.append("z" * 10, None)
    first = log.next_batch("s1")
    assert [e.seq for e in first.entries] == [1]
    second = log.next_batch("s1")
    assert [e.seq for e in second.entries] == [2, 3]


def test_entries_paging():
    log = make_log()
    for i in range(10):
        log.append(f"m{i}", None)
    assert [e.seq for e in log.entries(4, 3)] == [4, 5, 6]
    assert log.entries(11) == []
    assert log.entry(1) == Entry(1, 1, None, "m0")
