"""The master's state machine, driven with events and no sockets."""

import pytest

from replog.common import wire
from replog.core import (
    MASTER,
    AckBeyondSent,
    Entry,
    FollowerLog,
    Health,
    HealthPolicy,
    IdConflict,
    MemberConflict,
    ReadOnly,
    RemovedMember,
    ReplicationLog,
    WriteItem,
)


class InMemoryLog(ReplicationLog):
    """A master whose own copy is held as soon as it is appended (an in-memory master,
    whose store reports every append durable at once). Durability is tested below."""

    def append_batch(self, items):
        appended = super().append_batch(items)
        self.mark_durable(self.last_seq)
        return appended


def send(log: ReplicationLog, *names: str) -> None:
    """Put everything in the log on these secondaries' streams."""
    for name in names:
        while log.next_batch(name) is not None:
            pass


def make_log(secondaries=("s1", "s2"), expected=2, cls=InMemoryLog, **kw) -> ReplicationLog:
    """An open master whose secondaries are connected and healthy at time 0."""
    log = cls(expected_secondaries=expected, **kw)
    for name in secondaries:
        log.register(name, f"http://{name}", 0, now=0.0)
        log.stream_opened(name, 0, now=0.0)
    log.update_health(0.0)
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
    assert again.entry == first.entry
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
    send(log, "s1", "s2")
    assert log.record_ack("s1", 1, now=0.0) == []
    (done,) = log.record_ack("s2", 1, now=0.0)
    assert done.token == "t" and done.acked_by == (MASTER, "s1", "s2")
    assert not log.commit_waiters


def test_ack_of_a_later_prefix_covers_earlier_entries():
    log = make_log()
    for i in range(3):
        log.append(f"m{i}", None)
    log.wait_for("first", 1, 2)
    log.wait_for("third", 3, 2)
    send(log, "s1")
    satisfied = {s.token for s in log.record_ack("s1", 3, now=0.0)}
    assert satisfied == {"first", "third"}
    assert log.ack_set(2) == (MASTER, "s1")


def test_ack_below_a_waiting_seq_does_not_resolve_it():
    log = make_log()
    log.append("a", None)
    log.append("b", None)
    log.wait_for("t", 2, 2)
    send(log, "s1")
    assert log.record_ack("s1", 1, now=0.0) == []
    assert "t" in log.commit_waiters


def test_cancelled_waiter_is_forgotten():
    log = make_log()
    log.append("a", None)
    log.wait_for("t", 1, 3)
    log.cancel_wait("t")
    send(log, "s1", "s2")
    assert log.record_ack("s1", 1, now=0.0) == [] and log.record_ack("s2", 1, now=0.0) == []
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
    log.record_ack("s1", 1, now=0.0)
    assert log.next_batch("s1").seq_to == 3


def test_closed_stream_resends_everything_unacknowledged():
    log = make_log()
    for i in range(4):
        log.append(f"m{i}", None)
    log.next_batch("s1")
    log.record_ack("s1", 2, now=0.0)
    log.stream_closed("s1")
    assert log.next_batch("s1") is None  # not connected: nothing to send
    log.stream_opened("s1", 2, now=0.0)
    batch = log.next_batch("s1")
    assert (batch.seq_from, batch.seq_to) == (3, 4)


def test_reregistration_with_an_empty_log_refills_from_the_start():
    log = make_log()
    for i in range(3):
        log.append(f"m{i}", None)
    log.next_batch("s1")
    log.record_ack("s1", 3, now=0.0)
    assert log.ack_set(3) == (MASTER, "s1")
    # The secondary restarted and lost everything: it must not count as holding it.
    log.register("s1", "http://s1", 0, now=0.0)
    assert log.ack_set(1) == (MASTER,)
    log.stream_opened("s1", 0, now=0.0)
    batch = log.next_batch("s1")
    assert (batch.seq_from, batch.seq_to) == (1, 3)


def test_an_ack_beyond_what_the_stream_carried_is_refused_and_changes_nothing():
    """A secondary acknowledges only entries its stream carried (nothing before
    `sync`): anything more is not a correct secondary, and the stream is dropped."""
    log = make_log()
    log.append("a", None)
    send(log, "s1")
    with pytest.raises(AckBeyondSent):
        log.record_ack("s1", 99, now=5.0)
    progress = log.progress("s1")
    assert progress.acked_seq == 0 and progress.last_heard == 0.0
    for i in range(4):
        log.append(f"m{i}", None)
    log.stream_opened("s2", keep=3, now=0.0, durable=0)
    with pytest.raises(AckBeyondSent):
        log.record_ack("s2", 5, now=0.1)  # matched 1..3, sent nothing more
    assert log.progress("s2").acked_seq == 0 and "s2" not in log.ack_set(1)
    assert log.record_ack("s2", 3, now=0.2) == [] and log.progress("s2").acked_seq == 3
    assert log.next_batch("s2").seq_from == 4  # 4..5 are still sent


def test_stream_open_resolves_waiters_already_covered():
    log = make_log()
    log.append("a", None)
    log.wait_for("t", 1, 2)
    (done,) = log.stream_opened("s2", 1, now=0.0)
    assert done.token == "t"


def test_batches_respect_the_byte_budget_but_always_carry_one_entry():
    log = make_log(max_batch_bytes=100)
    log.append("x" * 500, None)
    log.append("y" * 10, None)
    log.append("z" * 10, None)
    first = log.next_batch("s1")
    assert [item[0] for item in first.items] == [1]
    second = log.next_batch("s1")
    assert [item[0] for item in second.items] == [2, 3]


def test_entries_paging():
    log = make_log()
    for i in range(10):
        log.append(f"m{i}", None)
    assert [e.seq for e in log.entries(4, 3)] == [4, 5, 6]
    assert log.entries(11) == []
    assert log.entry(1) == Entry(1, 1, None, "m0")


# -- failure detection, quorum, read-only ------------------------------------


def test_status_follows_silence_thresholds():
    log = make_log(health=HealthPolicy(suspect_after=1.0, unhealthy_after=3.0))
    assert log.update_health(0.5) == []
    log.heard_from("s1", 0.5)
    changes = log.update_health(1.2)
    assert [(c.secondary_id, c.after) for c in changes] == [("s2", Health.SUSPECTED)]
    changes = log.update_health(3.2)
    assert {(c.secondary_id, c.after) for c in changes} == {
        ("s1", Health.SUSPECTED),
        ("s2", Health.UNHEALTHY),
    }
    log.heard_from("s2", 3.3)
    changes = log.update_health(3.4)
    assert [(c.secondary_id, c.before, c.after) for c in changes] == [
        ("s2", Health.UNHEALTHY, Health.HEALTHY)
    ]


def test_suspected_nodes_still_count_for_quorum():
    log = make_log(health=HealthPolicy(suspect_after=1.0, unhealthy_after=3.0))
    log.update_health(2.0)  # both suspected
    assert log.quorum and log.read_only_reason() is None
    log.update_health(5.0)  # both unhealthy: 1 of 3 up
    assert not log.quorum
    assert "no quorum" in log.read_only_reason()


def test_no_quorum_refuses_new_writes_but_answers_duplicates():
    log = make_log(health=HealthPolicy(suspect_after=1.0, unhealthy_after=3.0))
    log.append("kept", "k")
    log.update_health(10.0)
    with pytest.raises(ReadOnly):
        log.append("new", "n")
    with pytest.raises(ReadOnly):
        log.append("no id", None)
    assert log.append("kept", "k").duplicate
    assert log.last_seq == 1
    log.heard_from("s1", 10.0)
    log.update_health(10.0)
    assert log.append("new", "n").entry.seq == 2  # writes resume by themselves


def test_expected_but_unregistered_secondaries_count_as_down():
    log = ReplicationLog(expected_secondaries=2)
    assert not log.quorum  # 1 of 3
    log.register("s1", "http://s1", 0, now=0.0)
    log.stream_opened("s1", 0, now=0.0)
    log.update_health(0.0)
    assert log.quorum  # 2 of 3


def test_a_registration_alone_never_counts_towards_quorum():
    """Only the stream counts: a node the master cannot reach is not up, however
    often it registers (each registration used to refresh it)."""
    log = ReplicationLog(expected_secondaries=2, health=HealthPolicy(1.0, 3.0))
    for now in (0.0, 1.0, 2.0, 5.0):
        log.register("s1", "http://s1", 0, now=now)
        log.update_health(now)
        assert log.progress("s1").status == Health.UNHEALTHY and not log.quorum
    log.stream_opened("s1", 0, now=5.0)
    log.update_health(5.0)
    assert log.quorum
    # Its stream falls silent; registering again does not keep it up.
    for now in (6.0, 7.0, 8.5):
        log.register("s1", "http://s1", 0, now=now)
    log.update_health(8.5)
    assert log.progress("s1").status == Health.UNHEALTHY and not log.quorum


# -- membership: an id is bound to one node; removal ---------------------------


def joined(log: ReplicationLog, name: str, incarnation: str, url: str, now: float) -> None:
    log.register(name, url, 0, now=now, incarnation=incarnation)
    log.stream_opened(name, 0, now=now)
    log.update_health(now)


def test_an_id_held_by_a_node_that_is_up_is_refused_to_another_node():
    log = ReplicationLog(expected_secondaries=2, health=HealthPolicy(1.0, 3.0))
    joined(log, "s1", "inc-a", "http://a:1", now=0.0)
    log.append("m", None)
    log.mark_durable(1)
    send(log, "s1")
    log.record_ack("s1", 1, now=0.5)
    with pytest.raises(MemberConflict) as refused:
        log.register("s1", "http://b:1", 0, now=1.0, incarnation="inc-b")
    assert refused.value.url == "http://a:1" and "inc-a" in str(refused.value)
    # Nothing changed: the running node keeps its id, its stream and its ACKs.
    progress = log.progress("s1")
    assert (progress.url, progress.incarnation, progress.connected) == ("http://a:1", "inc-a", True)
    assert log.ack_set(1) == (MASTER, "s1")
    # Still up while merely suspected (stream dropped, not yet unhealthy).
    log.stream_closed("s1")
    with pytest.raises(MemberConflict):
        log.register("s1", "http://b:1", 0, now=3.4, incarnation="inc-b")
    # Down (silent past the unhealthy threshold): another node may take the id,
    # and counts as holding nothing.
    assert log.register("s1", "http://b:1", 0, now=3.6, incarnation="inc-b") is True
    assert log.progress("s1").acked_seq == 0 and log.ack_set(1) == (MASTER,)


def test_the_same_node_takes_its_id_back_at_once():
    log = ReplicationLog(expected_secondaries=1, health=HealthPolicy(1.0, 3.0))
    joined(log, "s1", "inc-a", "http://a:1", now=0.0)
    # Restarted with its data (same incarnation), even on another port: at once.
    assert log.register("s1", "http://a:2", 0, now=0.1, incarnation="inc-a") is True
    assert log.progress("s1").url == "http://a:2"
    # A new incarnation at the member's own URL is let through: the stream's
    # hello proves who answers there.
    assert log.register("s1", "http://a:2", 0, now=0.2, incarnation="inc-z") is True


def test_a_removed_member_no_longer_counts_and_cannot_register_again():
    log = ReplicationLog(expected_secondaries=2, health=HealthPolicy(1.0, 3.0))
    joined(log, "s1", "inc-1", "http://s1", now=0.0)
    joined(log, "s2", "inc-2", "http://s2", now=0.0)
    log.append("m", None)
    log.mark_durable(1)
    send(log, "s1", "s2")
    log.record_ack("s2", 1, now=0.1)
    assert log.cluster_size == 3 and log.ack_set(1) == (MASTER, "s2")
    log.remove("s2")
    assert not log.is_member("s2")
    assert log.cluster_size == 2 and log.expected_secondaries == 1
    assert log.ack_set(1) == (MASTER,) and log.acks(1) == 1
    assert log.nodes_up == 2 and log.quorum
    with pytest.raises(RemovedMember):
        log.register("s2", "http://s2", 1, now=0.2, incarnation="inc-2")
    assert not log.is_member("s2") and log.cluster_size == 2
    # The same id with another incarnation (its data wiped) may join again.
    log.register("s2", "http://s2", 0, now=0.3, incarnation="inc-3")
    assert log.cluster_size == 3


def test_removal_lowers_n_also_when_expected_members_never_registered():
    log = ReplicationLog(expected_secondaries=3)
    log.register("s1", "http://s1", 0, now=0.0)
    assert log.cluster_size == 4
    log.remove("s1")
    assert log.cluster_size == 3


def test_a_dropped_stream_makes_a_healthy_secondary_suspected_at_once():
    log = make_log()
    log.stream_closed("s1")
    assert log.progress("s1").status == Health.SUSPECTED
    assert log.quorum


def test_recovering_master_is_read_only_and_cannot_answer_duplicates_yet():
    log = ReplicationLog(epoch=None)
    assert "recovering" in log.read_only_reason()
    with pytest.raises(ReadOnly):
        log.append("m", "k")


def test_acks_from_a_stream_that_is_not_open_are_ignored():
    log = make_log()
    log.append("a", None)
    log.register("s1", "http://s1", 0, now=0.0)  # re-registered: old stream is gone
    assert log.record_ack("s1", 1, now=0.0) == []
    assert log.ack_set(1) == (MASTER,)


# -- recovery: adopting a log, matching a secondary's log --------------------


def entries(*epochs):
    return [Entry(i, e, f"id{i}", f"m{i}") for i, e in enumerate(epochs, start=1)]


def test_adopt_installs_the_log_and_rebuilds_the_idempotency_index():
    log = ReplicationLog(epoch=None)
    log.adopt(entries(1, 1, 2), epoch=3)
    assert log.last_seq == 3 and log.epoch == 3
    assert log.append("m2", "id2").duplicate
    with pytest.raises(IdConflict):
        log.append("other", "id1")
    assert log.append("new", None).entry == Entry(4, 3, None, "new")


def test_adopt_rejects_a_log_with_holes():
    log = ReplicationLog(epoch=None)
    with pytest.raises(ValueError):
        log.adopt([Entry(1, 1, None, "a"), Entry(3, 1, None, "c")], epoch=2)


@pytest.mark.parametrize(
    ("theirs", "expected"),
    [
        ([], 0),
        ([1, 1], 2),  # a prefix of ours
        ([1, 1, 2, 2, 2], 5),  # all of ours
        ([1, 1, 2, 2, 2, 2, 2], 5),  # longer than ours: the surplus goes
        ([1, 1, 3, 3], 2),  # diverged after seq 2 (another master's epoch 3)
        ([4, 4], 0),  # nothing in common
    ],
)
def test_matching_prefix(theirs, expected):
    log = ReplicationLog(epoch=None)
    log.adopt(entries(1, 1, 2, 2, 2), epoch=5)
    follower = FollowerLog()
    follower.sync(max(theirs, default=0), 0, 0)
    for seq, epoch in enumerate(theirs, start=1):
        follower.stream_epoch = epoch
        follower.apply([Entry(seq, epoch, None, "x")], epoch)
    runs = follower.epoch_runs()
    assert log.matching_prefix(runs, follower.contiguous_seq) == expected


# -- batch append -------------------------------------------------------------


def test_batch_appends_in_order_with_consecutive_seqs():
    log = make_log()
    log.append("first", None)
    results = log.append_batch([WriteItem("a"), WriteItem("b", "kb"), WriteItem("c")])
    assert [r.entry.seq for r in results] == [2, 3, 4]
    assert [e.message for e in log.entries()] == ["first", "a", "b", "c"]


def test_batch_with_a_conflict_appends_nothing():
    log = make_log()
    log.append("taken", "k")
    with pytest.raises(IdConflict):
        log.append_batch([WriteItem("a"), WriteItem("other", "k")])
    assert log.last_seq == 1


def test_batch_mixing_duplicates_and_new_messages():
    log = make_log()
    log.append("x", "kx")
    results = log.append_batch([WriteItem("x", "kx"), WriteItem("y", "ky")])
    assert [(r.entry.seq, r.duplicate) for r in results] == [(1, True), (2, False)]


def test_batches_carry_wire_items_with_each_entrys_epoch():
    log = ReplicationLog(epoch=None)
    log.adopt(entries(1, 1, 2), epoch=5)
    log.register("s1", "http://s1", 0, now=0.0)
    log.stream_opened("s1", 0, now=0.0)
    log.update_health(0.0)
    log.append("new", None)
    log.mark_durable(4)
    batch = log.next_batch("s1")
    assert (batch.seq_from, batch.seq_to) == (1, 4)
    assert batch.items == [
        [1, 1, "id1", "m1"],
        [2, 1, "id2", "m2"],
        [3, 2, "id3", "m3"],
        [4, 5, None, "new"],
    ]


def test_public_page_matches_entries():
    log = make_log()
    for i in range(5):
        log.append(f"m{i}", i)
    assert log.public_page(2, 2) == [
        {"seq": 2, "id": 1, "message": "m1"},
        {"seq": 3, "id": 2, "message": "m2"},
    ]
    assert log.public_page(6) == [] and log.public_page(99, 5) == []
    assert [p["seq"] for p in log.public_page()] == [e.seq for e in log.entries()]


def test_current_status_is_judged_at_the_time_asked():
    log = make_log(health=HealthPolicy(suspect_after=1.0, unhealthy_after=3.0))
    log.update_health(10.0)
    assert log.progress("s1").status == Health.UNHEALTHY
    log.stream_opened("s1", 0, now=10.0)  # a new stream: heard from just now
    assert log.current_status("s1", 10.1) == Health.HEALTHY
    assert log.progress("s1").status == Health.UNHEALTHY  # until the monitor's next pass


# -- the master's own durability ------------------------------------------------


def test_the_master_counts_as_a_holder_only_once_its_copy_is_durable():
    log = make_log(cls=ReplicationLog)
    seq = log.append("m", None).entry.seq
    assert log.acks(seq) == 0 and log.ack_set(seq) == ()
    assert log.wait_for("w1", seq, 1) is None  # w=1 waits for the master's own sync
    (done,) = log.mark_durable(seq)
    assert done.token == "w1" and done.acked_by == (MASTER,)


def test_only_entries_on_the_masters_disk_are_streamed():
    log = make_log(cls=ReplicationLog)
    for message in ("a", "b", "c"):
        log.append(message, None)
    # Nothing is durable yet: a secondary must not show what a power cut takes back.
    assert log.next_batch("s1") is None
    log.mark_durable(2)
    batch = log.next_batch("s1")
    assert (batch.seq_from, batch.seq_to) == (1, 2)
    assert log.next_batch("s1") is None  # seq 3 waits for the master's sync
    log.mark_durable(3)
    assert (log.next_batch("s1").seq_from, log.next_batch("s2").seq_to) == (3, 3)


def test_secondaries_alone_never_satisfy_a_write_the_master_has_not_synced():
    log = make_log(cls=ReplicationLog)
    seq = log.append("m", None).entry.seq
    assert log.wait_for("w2", seq, 2) is None
    # Both secondaries say they hold it (a reopened stream's report): 2 holders,
    # but not the master, whose own durable copy every answer requires.
    assert log.stream_opened("s1", seq, now=0.1, durable=seq) == []
    assert log.stream_opened("s2", seq, now=0.1, durable=seq) == []
    assert log.ack_set(seq) == ("s1", "s2")
    (done,) = log.mark_durable(seq)
    assert done.acked_by == (MASTER, "s1", "s2")


def test_a_duplicate_of_an_entry_not_yet_durable_waits_too():
    log = make_log(cls=ReplicationLog)
    first = log.append("m", "k")
    again = log.append("m", "k")
    assert again.duplicate and log.wait_for("retry", again.entry.seq, 1) is None
    assert [s.token for s in log.mark_durable(first.entry.seq)] == ["retry"]


def test_mark_durable_never_goes_back_or_beyond_the_log():
    log = make_log(cls=ReplicationLog)
    log.append("a", None)
    log.mark_durable(5)
    assert log.durable_seq == 1
    log.mark_durable(0)
    assert log.durable_seq == 1


def test_a_stream_counts_only_the_durable_part_of_what_the_secondary_keeps():
    log = make_log(cls=ReplicationLog)
    for i in range(3):
        log.append(f"m{i}", None)
    log.mark_durable(3)
    log.stream_opened("s1", keep=3, now=1.0, durable=1)
    assert log.progress("s1").acked_seq == 1 and log.progress("s1").sent_seq == 3


def test_a_new_incarnation_counts_as_holding_nothing():
    log = make_log()
    for name in ("s1", "s2"):
        log.register(name, f"http://{name}", 0, now=0.0, incarnation=f"{name}-a")
        log.stream_opened(name, 0, now=0.0)
    seq = log.append("m", None).entry.seq
    log.next_batch("s1")
    log.record_ack("s1", seq, now=0.1)
    assert "s1" in log.ack_set(seq)
    # Same incarnation, reporting what it holds: still counted.
    assert log.register("s1", "http://s1", seq, now=0.2, incarnation="s1-a") is False
    assert log.progress("s1").acked_seq == seq
    # New incarnation (its disk was wiped), whatever it claims: counted as empty.
    assert log.register("s1", "http://s1", seq, now=0.3, incarnation="s1-b") is True
    assert log.progress("s1").acked_seq == 0 and "s1" not in log.ack_set(seq)


def test_membership_is_restored_and_counts_for_cluster_size():
    log = ReplicationLog(expected_secondaries=0)
    log.restore_member("s1", "http://s1", "a")
    log.restore_member("s2", "http://s2", "b")
    assert log.cluster_size == 3 and not log.quorum  # known, not heard from
    assert log.membership() == [
        {"id": "s1", "url": "http://s1", "incarnation": "a"},
        {"id": "s2", "url": "http://s2", "incarnation": "b"},
    ]


def test_adopt_takes_replayed_records_and_rebuilds_the_idempotency_index():
    log = ReplicationLog(epoch=None)
    log.adopt([[1, 3, "a", "x"], [2, 3, None, "y"], [3, 5, 7, "z"]], epoch=6)
    assert log.epoch == 6 and log.durable_seq == 3 and log.epoch_start == 3
    assert [log.epoch_at(s) for s in (1, 2, 3)] == [3, 3, 5]
    assert log.append("x", "a").duplicate and log.append("z", 7).entry.seq == 3
    with pytest.raises(ValueError):
        ReplicationLog().adopt([[2, 1, None, "gap"]], epoch=2)


@pytest.mark.parametrize(
    "message",
    ["plain ascii text", "中文字符" * 4, '"quotes" and \\ back\\slashes', "\x01\x02\x03" * 5],
    ids=["ascii", "cjk", "escaped", "control"],
)
def test_a_batch_frame_is_at_most_max_batch_bytes_on_the_wire(message):
    """Counted in encoded bytes, not characters: a message of control characters takes
    six bytes per character, CJK three."""
    budget = 2000
    log = make_log(max_batch_bytes=budget)
    for i in range(200):
        log.append(message, f"id-{i}" if i % 2 else i)
    sizes = []
    while (batch := log.next_batch("s1")) is not None:
        # As the stream sends it: with the commit point the batch was sized with.
        frame = wire.encode_append(batch.items, log.commit_seq)
        assert len(frame) <= budget
        sizes.append(len(frame))
        if batch.seq_to < log.last_seq:
            # The next entry would not have fitted: the budget is used, not guessed.
            following = log.entry(batch.seq_to + 1).to_wire()
            assert len(wire.encode_append([*batch.items, following], log.commit_seq)) > budget
        log.record_ack("s1", batch.seq_to, now=0.0)
    assert len(sizes) > 1 and sum(s > budget // 2 for s in sizes) >= len(sizes) - 1


def test_an_entry_larger_than_the_budget_travels_alone():
    log = make_log(max_batch_bytes=100)
    log.append("é" * 200, None)
    log.append("a", None)
    first = log.next_batch("s1")
    assert [item[0] for item in first.items] == [1]
    second = log.next_batch("s1")
    assert [item[0] for item in second.items] == [2]


def test_a_copy_of_a_members_data_directory_cannot_take_its_id_while_it_streams():
    """Found by the outside review: a copied data directory (same incarnation) started
    beside the original took the stream from it every few milliseconds."""
    log = ReplicationLog(expected_secondaries=1, health=HealthPolicy(1.0, 3.0))
    log.register("s1", "http://a:1", 0, now=0.0, incarnation="inc", instance="p1")
    log.stream_opened("s1", 0, now=0.0)
    with pytest.raises(MemberConflict):
        log.register("s1", "http://b:1", 0, now=0.5, incarnation="inc", instance="p2")
    assert log.progress("s1").url == "http://a:1" and log.progress("s1").connected
    # The original process ended (its stream closed): its restart takes the id at once.
    log.stream_closed("s1")
    assert log.register("s1", "http://b:1", 0, now=0.6, incarnation="inc", instance="p3")
    assert log.progress("s1").instance == "p3"


# -- the commit point ---------------------------------------------------------------


def test_the_commit_point_is_what_a_majority_holds_the_masters_durable_copy_counting():
    log = make_log(cls=ReplicationLog)  # N = 3: a majority is 2
    for i in range(5):
        log.append(f"m{i}", None)
    assert log.commit_seq == 0
    log.mark_durable(2)
    assert log.commit_seq == 0  # the master alone holds 1..2
    send(log, "s1", "s2")
    log.record_ack("s1", 2, now=0.0)
    assert log.commit_seq == 2  # the master and s1
    log.mark_durable(5)
    send(log, "s1", "s2")
    assert log.commit_seq == 2  # 3..5 on the master's disk only
    log.record_ack("s2", 4, now=0.0)
    assert log.commit_seq == 4
    log.record_ack("s1", 5, now=0.0)
    assert log.commit_seq == 5


def test_the_commit_point_follows_n_and_never_goes_back():
    log = make_log(secondaries=("s1", "s2", "s3", "s4"), expected=4)  # N = 5, majority 3
    for i in range(3):
        log.append(f"m{i}", None)
    send(log, "s1", "s2", "s3", "s4")
    log.record_ack("s1", 3, now=0.0)
    assert log.commit_seq == 0
    log.record_ack("s2", 1, now=0.0)
    assert log.commit_seq == 1
    log.remove("s4")  # N = 4: a majority is still 3
    assert log.commit_seq == 1
    log.remove("s3")  # N = 3: the master and s1 are a majority for 1..3
    assert log.commit_seq == 3
    # A secondary that comes back with nothing (a new disk) takes nothing back.
    log.register("s1", "http://s1", 0, now=0.0, incarnation="new-disk")
    assert log.progress("s1").acked_seq == 0 and log.commit_seq == 3
    log.register("s5", "http://s5", 0, now=0.0)  # N grows: still never lower
    assert log.commit_seq == 3


def test_a_master_alone_commits_what_it_holds():
    log = ReplicationLog()
    log.append("a", None)
    assert log.commit_seq == 0
    log.mark_durable(1)
    assert log.commit_seq == 1


def test_a_restarted_master_proves_its_commit_point_again_from_the_hellos():
    log = ReplicationLog(epoch=None, expected_secondaries=2)
    log.register("s1", "http://s1", 3, now=0.0)
    log.register("s2", "http://s2", 1, now=0.0)
    log.adopt([[1, 1, None, "a"], [2, 1, None, "b"], [3, 1, None, "c"]], epoch=2)
    assert log.commit_seq == 0  # its own copy is one holder of three
    log.stream_opened("s2", 1, now=0.0, durable=1)
    assert log.commit_seq == 1
    log.stream_opened("s1", 3, now=0.0, durable=3)
    assert log.commit_seq == 3


def test_public_page_stops_at_the_end_it_is_given():
    log = make_log()
    for i in range(4):
        log.append(f"m{i}", None)
    assert [m["seq"] for m in log.public_page(1, None, end=2)] == [1, 2]
    assert [m["seq"] for m in log.public_page(2, 5, end=10)] == [2, 3, 4]
    assert log.public_page(3, None, end=2) == []
