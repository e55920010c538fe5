"""The consistency checker on hand-made runs: one clean, and one per broken property.

Each broken run differs from the clean one in one way, so each test shows the
checker catches that property (and names it).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from tools.chaos import checker
from tools.chaos.clients import ranges

NODES = ["master", "s1", "s2"]


def write(client_id, message, w, status, seq=None, acked_by=None, error=None, t0=1.0):
    record = {
        "type": "write",
        "client": 0,
        "id": client_id,
        "message": message,
        "w": w,
        "attempt": 1,
        "t0": t0,
        "t1": t0 + 0.01,
        "status": status,
    }
    if status in (200, 201):
        resolved = 2 if w == "majority" else w
        record["body"] = {
            "seq": seq,
            "id": client_id,
            "message": message,
            "w": resolved,
            "acks": len(acked_by),
            "acked_by": acked_by,
            "duplicate": status == 200,
        }
    elif status is not None:
        record["body"] = {"error": "..."}
    else:
        record["error"] = error
    return record


def entry(seq, client_id, message):
    return {"seq": seq, "id": client_id, "message": message}


def sample(node, count, t=2.0):
    seqs = list(range(1, count + 1))
    return {
        "type": "sample",
        "node": node,
        "t": t,
        "ok": True,
        "count": count,
        "ranges": ranges(seqs),
    }


def seen(node, e, t=2.0):
    return {"type": "seen", "node": node, "t": t, **e}


@pytest.fixture
def clean():
    """A run with every kind of outcome and nothing wrong."""
    log = [
        entry(1, "a", "A"),
        entry(2, 7, "B"),  # an integer id
        entry(3, "c", "C"),
        entry(4, "d", "D"),
        entry(5, "t", "T"),  # timed out, but appended: allowed
    ]
    records = [
        {"type": "meta", "nodes": NODES, "cluster_size": 3},
        write("a", "A", 1, 201, 1, ["master"]),
        write(7, "B", 2, 201, 2, ["master", "s2"]),
        write("c", "C", 3, 201, 3, ["master", "s1", "s2"]),
        write("d", "D", "majority", 201, 4, ["master", "s1"]),
        write("d", "D", 1, 200, 4, ["master", "s1", "s2"]),  # a retry: duplicate answer
        write("t", "T", 3, None, error="timeout"),
        write("u", "U", 3, 504),  # unknown outcome, not appended: allowed
        write("r", "R", 1, 503),  # read-only: nothing appended
        write("x", "X", 1, None, error="refused"),
        {"type": "fault", "action": "inject", "fault": "kill", "target": "s1", "t": 1.5},
        {"type": "fault", "action": "heal", "fault": "kill", "target": "s1", "t": 2.5},
        sample("s1", 0),
        sample("s1", 3),
        sample("s2", 5),
        *(seen("s1", e) for e in log[:3]),
        *(seen("s2", e) for e in log),
    ]
    return records, {"master": log, "s1": copy.deepcopy(log), "s2": copy.deepcopy(log)}


def run(records, logs):
    return checker.check(records, logs, nodes=NODES, cluster_size=3)


def properties(report):
    return {v.property for v in report.violations}


def test_clean_run_has_no_violations_and_a_summary(clean):
    report = run(*clean)
    assert report.ok, [v.detail for v in report.violations]
    s = report.summary
    assert s["writes_attempted"] == 9 and s["distinct_ids"] == 8
    assert s["acknowledged"] == 5
    assert s["acknowledged_by_w"] == {"1": 2, "2": 1, "3": 1, "majority": 1}
    assert s["unknown_outcome"] == 2 and s["not_appended"] == 2
    assert s["faults_injected"] == 1 and s["faults_by_kind"] == {"kill": 1}
    assert s["final_log_length"] == 5 and s["converged"] and s["violations"] == 0
    assert "violations:         0" in checker.format_summary(report)


def test_ack_with_fewer_holders_than_w(clean):
    records, logs = clean
    records[2]["body"]["acked_by"] = ["master"]  # w=2 answered with one holder
    records[2]["body"]["acks"] = 1
    assert properties(run(records, logs)) == {"ack_quorum"}


@pytest.mark.parametrize(
    "acked_by",
    [["master", "s9"], ["master", "master"], ["s1", "master"]],
    ids=["unknown-node", "repeated-node", "master-not-first"],
)
def test_ack_naming_impossible_holders(clean, acked_by):
    records, logs = clean
    records[2]["body"]["acked_by"] = acked_by
    assert properties(run(records, logs)) == {"ack_quorum"}


def test_majority_resolved_wrongly(clean):
    records, logs = clean
    records[4]["body"]["w"] = 1  # majority of 3 is 2
    assert properties(run(records, logs)) == {"ack_quorum"}


def test_acknowledged_write_lost(clean):
    records, logs = clean
    for node in logs:
        logs[node] = [e for e in logs[node] if e["id"] != "c"]
        for seq, e in enumerate(logs[node], 1):
            e["seq"] = seq
    found = properties(run(records, logs))
    assert "ack_lost" in found


def test_acknowledged_write_at_another_seq(clean):
    records, logs = clean
    records[3]["body"]["seq"] = 4  # "c" is at seq 3 everywhere
    assert "ack_lost" in properties(run(records, logs))


def test_acknowledging_secondary_does_not_hold_it_at_the_end(clean):
    records, logs = clean
    logs["s1"] = logs["s1"][:2]  # s1 acknowledged seq 3 and 4
    found = properties(run(records, logs))
    assert "acked_by_lost" in found and "not_converged" in found


def test_duplicate_append_of_a_retried_write(clean):
    records, logs = clean
    for node in logs:
        logs[node].append(entry(6, "t", "T"))
    assert properties(run(records, logs)) == {"duplicate"}


def test_secondary_not_converged(clean):
    records, logs = clean
    logs["s2"] = logs["s2"][:-1]
    assert properties(run(records, logs)) == {"not_converged"}


def test_unreadable_node_is_not_converged(clean):
    records, logs = clean
    logs["s2"] = None
    assert properties(run(records, logs)) == {"not_converged"}


def test_different_order_on_a_secondary(clean):
    records, logs = clean
    s1 = logs["s1"]
    s1[0], s1[1] = {**s1[1], "seq": 1}, {**s1[0], "seq": 2}
    found = properties(run(records, logs))
    assert "divergence" in found


def test_sample_with_a_gap(clean):
    records, logs = clean
    records.append(
        {
            "type": "sample",
            "node": "s1",
            "t": 3.0,
            "ok": True,
            "count": 3,
            "ranges": [[1, 2], [4, 4]],
        }
    )
    assert properties(run(records, logs)) == {"gap"}


def test_sample_that_is_not_a_prefix_of_the_final_log(clean):
    records, logs = clean
    records.append(seen("s1", entry(2, "c", "C"), t=3.0))  # seq 2 is 7/"B" in the end
    assert properties(run(records, logs)) == {"stale_read"}


def test_entry_nobody_wrote(clean):
    records, logs = clean
    for node in logs:
        logs[node].append(entry(6, "ghost", "boo"))
    assert properties(run(records, logs)) == {"phantom"}


def test_entry_whose_every_attempt_was_refused_or_read_only(clean):
    records, logs = clean
    for node in logs:
        logs[node].append(entry(6, "r", "R"))  # "r" got 503: nothing appended, promised
    assert properties(run(records, logs)) == {"phantom"}


def test_entry_with_a_message_never_sent_under_that_id(clean):
    records, logs = clean
    for node in logs:
        logs[node][4] = entry(5, "t", "not T")
    records = [r for r in records if not (r["type"] == "seen" and r["seq"] == 5)]
    assert properties(run(records, logs)) == {"phantom"}


@pytest.mark.parametrize("status", [400, 409, 500])
def test_unexpected_status(clean, status):
    records, logs = clean
    records.append(write("z", "Z", 1, status))
    assert properties(run(records, logs)) == {"unexpected_status"}


def test_same_id_acknowledged_at_two_seqs(clean):
    records, logs = clean
    records[5]["body"]["seq"] = 5
    assert "ack_answer" in properties(run(records, logs))


def test_answer_for_another_write(clean):
    records, logs = clean
    records[1]["body"]["message"] = "not A"
    assert properties(run(records, logs)) == {"ack_answer"}


def test_standalone_on_files(clean, tmp_path, capsys):
    records, logs = clean
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "logs.json").write_text(json.dumps(logs))
    assert checker.main([str(results), str(tmp_path / "logs.json")]) == 0
    out = capsys.readouterr().out
    assert "acknowledged:       5" in out and "violations:         0" in out

    logs["s2"] = logs["s2"][:-1]
    (tmp_path / "logs.json").write_text(json.dumps(logs))
    assert checker.main([str(results), str(tmp_path / "logs.json")]) == 1
    assert "[not_converged]" in capsys.readouterr().out


def kill(target, t):
    kind = {"master": "kill_master", "all": "kill_all"}.get(target, "kill")
    return {"type": "fault", "action": "inject", "fault": kind, "target": target, "t": t}


def wipe(target, t):
    """A node's disk deleted: SIGKILLed at `t` (`started`), recorded a moment later."""
    return {
        "type": "fault",
        "action": "inject",
        "fault": "wipe",
        "target": target,
        "started": t,
        "t": t + 0.05,
    }


def lost_tail(records, w, acked_by, t0=1.0):
    """An acknowledged write at seq 6 that no final log holds (the clean logs end at 5)."""
    return [*records, write("z", "Z", w, 201, 6, acked_by, t0=t0)]


def test_acknowledged_write_missing_without_any_fault(clean):
    records, logs = clean
    assert properties(run(lost_tail(records, 1, ["master"]), logs)) == {"ack_lost"}


@pytest.mark.parametrize(
    "faults",
    [[kill("master", 1.5)], [kill("all", 1.5)], [kill("master", 1.5), kill("s2", 1.6)]],
    ids=["master-killed", "all-killed-at-once", "every-holder-killed"],
)
def test_a_sigkill_never_excuses_a_lost_acknowledged_write(clean, faults):
    # Nodes acknowledge only what is on their disk, and a SIGKILL leaves the disk.
    records, logs = clean
    records = [*lost_tail(records, 2, ["master", "s2"]), *faults]
    assert properties(run(records, logs)) == {"ack_lost"}


def test_write_may_be_lost_when_every_holder_lost_its_disk(clean):
    records, logs = clean
    records = [*lost_tail(records, 2, ["master", "s2"]), wipe("s2", 1.5)]
    assert properties(run(records, logs)) == {"ack_lost"}  # the master still has its disk
    records.append(wipe("master", 1.6))  # now both holders lost their copies
    report = run(records, logs)
    assert report.ok, [v.detail for v in report.violations]
    assert report.summary["acknowledged_lost_allowed"] == 1


def test_a_wiped_node_not_among_the_holders_excuses_nothing(clean):
    records, logs = clean
    records = [*lost_tail(records, 2, ["master", "s2"]), wipe("master", 1.5), wipe("s1", 1.5)]
    assert properties(run(records, logs)) == {"ack_lost"}


def test_write_lost_only_if_wiped_after_it_was_sent(clean):
    records, logs = clean
    # Wiped before the write: whatever it holds now, it acknowledged from its new disk.
    records = [*lost_tail(records, 1, ["master"], t0=1.0), wipe("master", 0.5)]
    assert properties(run(records, logs)) == {"ack_lost"}


def test_lost_write_never_moves_to_another_seq(clean):
    records, logs = clean
    records = [*lost_tail(records, 1, ["master"]), wipe("master", 1.5)]
    for node in logs:
        logs[node].append(entry(6, "q", "Q"))
        logs[node].append(entry(7, "z", "Z"))
    records.append(write("q", "Q", 1, 201, 6, ["master"], t0=2.0))
    assert "ack_lost" in properties(run(records, logs))


def test_reads_rolled_back_only_when_master_and_reader_lost_their_disks(clean):
    records, logs = clean
    records.append(seen("s1", entry(6, "t2", "T2"), t=1.0))  # shown, then never in the log
    assert properties(run(records, logs)) == {"stale_read"}
    # A restarted master reopens with its own log: a kill explains no rollback.
    records += [kill("master", 1.2), kill("all", 1.3)]
    assert properties(run(records, logs)) == {"stale_read"}
    records.append(wipe("s1", 1.4))  # the reader's copy is gone, the master's is not
    assert properties(run(records, logs)) == {"stale_read"}
    records.append(wipe("master", 1.5))
    report = run(records, logs)
    assert report.ok and report.summary["rolled_back_reads"] == 1


def test_a_read_shown_by_the_master_rolls_back_only_with_the_master_wiped(clean):
    records, logs = clean
    records += [seen("master", entry(6, "t2", "T2"), t=1.0), wipe("s1", 1.4), wipe("s2", 1.4)]
    assert properties(run(records, logs)) == {"stale_read"}
    records.append(wipe("master", 0.9))  # before the read: explains nothing
    assert properties(run(records, logs)) == {"stale_read"}
    records.append(wipe("master", 1.5))
    assert run(records, logs).ok


WALL = 1_800_000_000.0  # the run's t=0 as a Unix time


def stamp(t):
    """A node log's timestamp for `t` seconds into the run."""
    return datetime.fromtimestamp(WALL + t, UTC).isoformat().replace("+00:00", "Z")


def applied(node_seq_times):
    """Secondaries' own log events: each held up to `seq` from `t` seconds into the run."""
    out = {}
    for node, pairs in node_seq_times.items():
        out[node] = [
            {"event": "applied", "contiguous_seq": seq, "timestamp": stamp(t)} for seq, t in pairs
        ]
    return out


def test_ack_evidence_from_the_secondaries_logs(clean):
    records, logs = clean
    records[0]["wall_start"] = WALL
    # Every answer was received at t=1.01; both secondaries held 1..4 at t=0.5.
    events = applied({"s1": [(4, 0.5), (5, 3.0)], "s2": [(4, 0.5)]})
    report = checker.check(records, logs, node_events=events)
    assert report.ok, [v.detail for v in report.violations]
    assert report.summary["ack_evidence"]["checked"] == 6


def test_ack_naming_a_secondary_that_did_not_hold_it_yet(clean):
    records, logs = clean
    records[0]["wall_start"] = WALL
    # s1 is in acked_by of seq 3 and 4 (answered at t=1.01) but applied them only at t=3.
    events = applied({"s1": [(2, 0.5), (5, 3.0)], "s2": [(4, 0.5)]})
    report = checker.check(records, logs, node_events=events)
    assert properties(report) == {"ack_unheld"}
    assert {v.evidence["write"]["id"] for v in report.violations} == {"c", "d"}


def test_ack_naming_a_secondary_after_its_disk_was_wiped(clean):
    records, logs = clean
    records[0]["wall_start"] = WALL
    events = applied({"s1": [(4, 0.5), (5, 3.0)], "s2": [(4, 0.5)]})
    fresh = {"event": "storage_opened", "new": True, "last_seq": 0}
    # A restart on the same disk changes nothing: s1 still holds 1..4.
    events["s1"].insert(1, {**fresh, "new": False, "last_seq": 4, "timestamp": stamp(0.6)})
    assert checker.check(records, logs, node_events=events).ok
    # s1 came back on an empty disk at t=0.7: when the answers came (t=1.01), it
    # held nothing, and the master knew it was a new incarnation.
    events["s1"].insert(2, {**fresh, "timestamp": stamp(0.7)})
    report = checker.check(records, logs, node_events=events)
    assert properties(report) == {"ack_unheld"}
    assert {v.evidence["write"]["id"] for v in report.violations} == {"c", "d"}
    # Refilled up to 4 at t=0.9: held again when the answers came.
    events["s1"].insert(3, {**events["s1"][0], "timestamp": stamp(0.9)})
    assert checker.check(records, logs, node_events=events).ok


def test_ack_from_a_disk_wiped_just_before_the_answer_still_counts(clean):
    # s1 acknowledged from its old disk; the wipe and the fresh start came a moment
    # before the answer reached the client, too late for the master to know.
    records, logs = clean
    records[0]["wall_start"] = WALL
    events = applied({"s1": [(4, 0.5), (5, 3.0)], "s2": [(4, 0.5)]})
    fresh = {"event": "storage_opened", "new": True, "last_seq": 0, "timestamp": stamp(0.9)}
    events["s1"].insert(1, fresh)
    assert checker.check(records, logs, node_events=events).ok
