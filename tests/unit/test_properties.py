"""Each property of `tools.properties` on a minimal history that keeps it and one
that breaks it: the violation has the property's name and names the seq or node
at fault. Histories are built directly in the model, as the simulator builds them."""

from __future__ import annotations

from collections import Counter

import pytest

from tools import properties as p
from tools.properties import Entry, HoldingLog, PendingWaiter, ReadSample, Shown, WriteAttempt

NODES = ["master", "s1", "s2"]


def ack(client_id, message, seq, acked_by, w=None, sent=1.0, answered=1.1, status=201):
    """An acknowledged write: the answer a correct master gives."""
    w = len(acked_by) if w is None else w
    answer = {
        "seq": seq,
        "id": client_id,
        "message": message,
        "w": 2 if w == "majority" else w,
        "acks": len(acked_by),
        "acked_by": acked_by,
        "duplicate": status == 200,
    }
    return WriteAttempt(client_id, message, w, sent, answered, status, answer=answer)


def failed(client_id, message, status=None, error=None, sent=1.0):
    return WriteAttempt(client_id, message, 1, sent, sent + 0.1, status, error, {"error": "..."})


def log(*pairs):
    """Entries at seqs 1.. from (id, message) pairs."""
    return [Entry(seq, client_id, message) for seq, (client_id, message) in enumerate(pairs, 1)]


A, B, C = ("a", "A"), (7, "B"), ("c", "C")


def same_everywhere(entries):
    return {node: list(entries) for node in NODES}


def names(violations):
    return [v.property for v in violations]


# -- end-of-run properties -------------------------------------------------------


def test_not_converged_and_divergence():
    logs = same_everywhere(log(A, B, C))
    assert p.not_converged(logs, NODES) == []

    lagging = {**logs, "s2": log(A, B)}
    [v] = p.not_converged(lagging, NODES)
    assert v.property == "not_converged" and v.evidence["node"] == "s2"
    assert v.detail == "s2 holds 2 entries, master 3"

    reordered = {**logs, "s1": log(B, A, C)}
    [v] = p.not_converged(reordered, NODES)
    assert v.property == "divergence" and v.evidence["node"] == "s1"
    assert v.evidence["theirs"] == {"seq": 1, "id": 7, "message": "B"}
    assert v.evidence["differing"] == 2

    unreadable = {**logs, "master": None}
    first, *others = p.not_converged(unreadable, NODES)
    assert first.detail == "the master's final log could not be read"
    assert [v.evidence["node"] for v in others] == ["s1", "s2"]  # judged against nothing


def test_duplicate():
    assert p.duplicate(same_everywhere(log(A, B))) == []
    [v] = p.duplicate({"s1": log(A, B, A)})
    assert v.property == "duplicate" and v.evidence == {"node": "s1", "id": "a", "seqs": [1, 3]}
    [v] = p.duplicate({"s2": [Entry(1, "a", "A"), Entry(3, "c", "C")]})
    assert v.detail == "s2's final log seqs are not 1..2" and v.evidence["ranges"] == [
        [1, 1],
        [3, 3],
    ]


def test_ids_compare_as_json_values():
    # 1 and "1" are two keys: no duplicate.
    assert p.duplicate({"master": log((1, "x"), ("1", "y"))}) == []


@pytest.mark.parametrize("status", [503, 504])
def test_unexpected_status_allows_what_the_contract_allows(status):
    assert p.unexpected_status([failed("u", "U", status), failed("x", "X", error="refused")]) == []


@pytest.mark.parametrize("status", [400, 409, 500])
def test_unexpected_status(status):
    [v] = p.unexpected_status([failed("z", "Z", status)])
    assert v.property == "unexpected_status" and v.detail.startswith(f"write 'z' got {status}")


def test_ack_quorum():
    good = [ack("a", "A", 1, ["master"]), ack("b", "B", 2, ["master", "s1"], w="majority")]
    assert p.ack_quorum(good, NODES, 3) == []

    short = ack("c", "C", 3, ["master"], w=2)
    [v] = p.ack_quorum([short], NODES, 3)
    assert v.property == "ack_quorum" and "held by 1 known nodes < w=2" in v.detail
    assert v.evidence["write"]["id"] == "c"  # a model attempt shows itself in the record shape

    for acked_by in (["master", "s9"], ["master", "master"], ["s1", "master"]):
        assert names(p.ack_quorum([ack("c", "C", 3, acked_by, w=2)], NODES, 3)) == ["ack_quorum"]


def test_ack_answer():
    writes = [ack("a", "A", 1, ["master"]), ack("a", "A", 1, ["master", "s1"], status=200)]
    logs = same_everywhere(log(A))
    assert p.ack_answer(writes, logs, {}) == []

    other = WriteAttempt("b", "B", 1, 1.0, 1.1, 201, answer={**writes[0].answer, "id": "x"})
    [v] = p.ack_answer([other], logs, {})
    assert v.detail == "write 'b' answered for another write"

    moved = [*writes, ack("a", "A", 2, ["master"], sent=2.0)]
    [v] = p.ack_answer(moved, logs, {})
    assert v.property == "ack_answer" and v.evidence == {"id": "a", "seqs": [1, 2]}


def test_ack_lost():
    writes = [ack("a", "A", 1, ["master"]), ack(7, "B", 2, ["master", "s2"])]
    logs = same_everywhere(log(A, B))
    assert p.ack_lost(writes, logs, {}) == []

    [v] = p.ack_lost(writes, same_everywhere(log(A)), {})
    assert v.property == "ack_lost" and v.evidence["write"]["body"]["seq"] == 2
    assert (
        v.detail == "acknowledged write 7 (seq 2, w=2) is not in the final master log at that seq"
    )


def test_ack_lost_is_excused_only_when_every_holder_was_wiped_after_it_was_sent():
    writes = [ack(7, "B", 2, ["master", "s2"], sent=1.0)]
    logs = same_everywhere(log(A))
    assert names(p.ack_lost(writes, logs, {"s2": [1.5]})) == ["ack_lost"]  # master intact
    assert names(p.ack_lost(writes, logs, {"s2": [1.5], "master": [0.5]})) == ["ack_lost"]
    tally: Counter = Counter()
    assert p.ack_lost(writes, logs, {"s2": [1.5], "master": [1.6]}, tally) == []
    assert tally["acknowledged_lost_allowed"] == 1


def test_acked_by_lost():
    writes = [ack(7, "B", 2, ["master", "s2"])]
    assert p.acked_by_lost(writes, same_everywhere(log(A, B))) == []
    logs = {**same_everywhere(log(A, B)), "s2": log(A)}
    [v] = p.acked_by_lost(writes, logs)
    assert v.property == "acked_by_lost" and v.evidence["node"] == "s2"
    assert v.detail == "s2 acknowledged seq 2 (7) but does not hold it at the end"


def test_phantom():
    writes = [ack("a", "A", 1, ["master"]), failed("t", "T", error="timeout")]
    assert p.phantom(writes, same_everywhere(log(A, ("t", "T")))) == []  # unknown: may be there

    [v] = p.phantom(writes, same_everywhere(log(A, ("ghost", "boo"))))
    assert v.property == "phantom" and v.evidence["entry"]["seq"] == 2

    refused = [*writes, failed("r", "R", 503), failed("r", "R", error="refused")]
    [v] = p.phantom(refused, same_everywhere(log(A, ("r", "R"))))
    assert v.evidence["seqs"] == [2] and v.evidence["attempts"] == [(503, None), (None, "refused")]

    [v] = p.phantom(writes, same_everywhere(log(A, ("t", "not T"))))
    assert v.detail == 'id "t" is in the log with a message never sent'


def test_gap():
    assert p.gap([ReadSample.of("s1", 1.0, [1, 2, 3]), ReadSample.of("s1", 1.0, [])]) == []
    [v] = p.gap([ReadSample.of("s1", 2.0, [1, 2, 4])])
    assert v.property == "gap" and v.detail == "s1 showed seqs [[1, 2], [4, 4]] at t=2.0s"


def test_stale_read():
    logs = same_everywhere(log(A, B))
    assert p.stale_read([Shown("s1", 1.0, 2, 7, "B")], logs, {}) == []
    shown = [Shown("s1", 1.0, 2, "c", "C")]
    [v] = p.stale_read(shown, logs, {})
    assert v.property == "stale_read" and v.evidence["seen"]["seq"] == 2
    assert v.detail.startswith("s1 showed seq 2 = 'c' at t=1.0s")
    # Excused only when both the reader and the master lost their disks after the read.
    assert names(p.stale_read(shown, logs, {"s1": [1.5]})) == ["stale_read"]
    tally: Counter = Counter()
    assert p.stale_read(shown, logs, {"s1": [1.5], "master": [1.6]}, tally) == []
    assert tally["rolled_back_reads"] == 1


def holdings(*steps):
    """A HoldingLog from ("held", t, k) and ("fresh", t) steps."""
    out = HoldingLog()
    for step in steps:
        if step[0] == "fresh":
            out.fresh_disk(step[1])
        else:
            out.holding(step[1], step[2])
    return out


def test_ack_unheld():
    writes = [ack(7, "B", 2, ["master", "s1"], answered=1.1)]
    tally: Counter = Counter()
    assert p.ack_unheld(writes, {"s1": holdings(("held", 0.5, 2))}, tally=tally) == []
    assert tally["ack_evidence_checked"] == 1

    [v] = p.ack_unheld(writes, {"s1": holdings(("held", 0.5, 1), ("held", 2.0, 2))})
    assert v.property == "ack_unheld" and v.evidence["node"] == "s1"
    assert "had logged holding only up to 1" in v.detail

    # Held, then started on an empty disk before the answer: holds nothing.
    wiped = holdings(("held", 0.5, 2), ("fresh", 0.8))
    assert names(p.ack_unheld(writes, {"s1": wiped})) == ["ack_unheld"]
    # ...unless the wipe is within the clock slack of the answer.
    assert p.ack_unheld(writes, {"s1": wiped}, slack=0.5) == []
    # A node without any evidence proves nothing either way.
    assert p.ack_unheld(writes, {"s1": HoldingLog()}) == []
    # The holdings on another clock.
    assert p.ack_unheld(writes, {"s1": holdings(("held", 100.5, 2))}, clock_offset=100.0) == []


def test_check_all_on_a_clean_history_and_a_broken_one():
    history = p.History(
        nodes=NODES,
        cluster_size=3,
        writes=[ack("a", "A", 1, ["master", "s1"]), failed("u", "U", 504)],
        samples=[ReadSample.of("s1", 2.0, [1])],
        shown=[Shown("s1", 2.0, 1, "a", "A")],
        final_logs=same_everywhere(log(A)),
        holdings={"s1": holdings(("held", 1.0, 1))},
    )
    assert p.check_all(history) == []
    history.final_logs["s2"] = []
    assert names(p.check_all(history)) == ["not_converged"]


# -- the simulator's properties ----------------------------------------------------


def test_seq_unique():
    assert p.seq_unique({"s1": [*log(A, B), *log(A)]}) == []  # the same entry again: fine
    [v] = p.seq_unique({"s2": [*log(A, B), Entry(2, "c", "C")]})
    assert v.property == "seq_unique" and v.evidence["node"] == "s2"
    assert v.evidence["before"]["seq"] == 2 and v.evidence["now"]["id"] == "c"


def test_seq_unique_checker_is_incremental_and_forgets_a_wiped_disk():
    checker = p.SeqUniqueChecker()
    assert checker.observe("s1", log(A)) == []
    assert checker.observe("s1", [Entry(2, 7, "B")]) == []
    assert names(checker.observe("s1", [Entry(1, "c", "C")])) == ["seq_unique"]
    checker.wiped("s1")
    assert checker.observe("s1", [Entry(1, "c", "C")]) == []


def test_prefix_of_master():
    logs = {"master": log(A, B, C), "s1": log(A, B), "s2": []}
    assert p.prefix_of_master(logs) == []
    [v] = p.prefix_of_master({**logs, "s1": log(A, C)})
    assert v.property == "prefix_of_master" and v.evidence["node"] == "s1"
    assert v.evidence["theirs"]["seq"] == 2
    [v] = p.prefix_of_master({**logs, "s2": log(A, B, C, A)})
    assert v.evidence == {"node": "s2", "theirs": 4, "master": 3}


def test_prefix_checker_compares_only_what_is_new():
    checker = p.PrefixChecker()
    master, s1 = log(A, B), log(A)
    assert checker.check({"master": master, "s1": s1}) == []
    # What was already found a prefix is not read again (only the new tail is)...
    s1.append(Entry(2, 7, "B"))
    s1[0] = Entry(1, "z", "Z")
    assert checker.check({"master": master, "s1": s1}) == []
    # ...until the log shrinks (a wiped node), which compares it from its start.
    assert names(checker.check({"master": master, "s1": s1[:1]})) == ["prefix_of_master"]
    # A wrong entry is reported on every check until it is gone.
    assert names(checker.check({"master": master, "s1": log(A, C)})) == ["prefix_of_master"]
    assert names(checker.check({"master": master, "s1": log(A, C)})) == ["prefix_of_master"]


def test_no_stuck_waiter():
    prefixes = {"master": 5, "s1": 3, "s2": 0}
    pending = [PendingWaiter("x", 4, 2), PendingWaiter("y", 3, 3), PendingWaiter("z", 9, 1)]
    assert p.no_stuck_waiter(prefixes, pending) == []  # nobody can be answered yet
    [v] = p.no_stuck_waiter(prefixes, [PendingWaiter("c", 3, 2), PendingWaiter("d", 6, 1)])
    assert v.property == "no_stuck_waiter"
    assert v.evidence == {"waiter": "c", "seq": 3, "w": 2, "holders": ["master", "s1"]}


def test_bounded_memory():
    limits = {"s1.buffered": 100, "master.waiters": 10}
    assert p.bounded_memory({"s1.buffered": 100, "master.waiters": 3, "other": 10**9}, limits) == []
    [v] = p.bounded_memory({"s1.buffered": 101}, limits)
    assert v.property == "bounded_memory" and v.evidence["name"] == "s1.buffered"


def test_read_checker_judges_gaps_at_once_and_keeps_only_changes():
    reads = p.ReadChecker()
    assert reads.observe("s1", 1.0, log(A)) == []
    assert reads.observe("s1", 2.0, log(A, B)) == []
    assert [(s.seq, s.t) for s in reads.shown] == [(1, 1.0), (2, 2.0)]
    [v] = reads.observe("s2", 3.0, [Entry(1, "a", "A"), Entry(3, "c", "C")])
    assert v.property == "gap" and v.evidence["sample"]["node"] == "s2"
    final = same_everywhere(log(A, C))
    stale = p.stale_read(reads.shown, final, {})
    assert [(v.evidence["seen"]["node"], v.evidence["seen"]["seq"]) for v in stale] == [
        ("s1", 2),
        ("s2", 3),
    ]


def test_a_visible_log_that_gets_shorter_is_a_rolled_back_read_unless_the_disk_was_lost():
    checker = p.RollbackChecker()
    assert checker.observe("s1", 1.0, 3) == []
    assert checker.observe("s1", 2.0, 5) == []
    (shrunk,) = checker.observe("s1", 3.0, 4)
    assert shrunk.property == "read_rolled_back" and "after having shown 5" in shrunk.detail
    assert checker.observe("s2", 3.0, 0) == []  # another node has its own history
    checker.wiped("s1")
    assert checker.observe("s1", 4.0, 0) == []
