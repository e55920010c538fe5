"""Start-up recovery rules of a restarted master (core.recovery)."""

from replog.core import (
    LENIENT,
    OPEN,
    STRICT,
    LogReport,
    Recovery,
    next_epoch,
    other_cluster,
    start_mode,
)


def report(name, length=0, last_epoch=0, sync_epoch=0):
    return LogReport(name, f"http://{name}", length, last_epoch, sync_epoch)


def test_waits_for_a_majority_of_nodes():
    recovery = Recovery(grace=5.0)
    assert recovery.plan(0.0, 1000, cluster_size=5) is None
    recovery.report(report("s1", 3, 1, 1))
    assert recovery.missing(5) == 1
    assert recovery.plan(0.0, 1000, cluster_size=5) is None


def test_a_new_cluster_opens_as_soon_as_a_majority_reported():
    recovery = Recovery(grace=5.0)
    recovery.report(report("s1"))
    plan = recovery.plan(0.0, 1000, cluster_size=3)
    assert plan is not None and plan.source is None and plan.epoch == 1000


def test_with_history_it_waits_for_everyone_or_the_grace_period():
    recovery = Recovery(grace=5.0)
    recovery.report(report("s1", 10, 7, 7))
    assert recovery.plan(0.0, 1000, cluster_size=3) is None
    assert recovery.plan(4.9, 1000, cluster_size=3) is None
    plan = recovery.plan(5.0, 1000, cluster_size=3)
    assert plan is not None and plan.source.secondary_id == "s1"


def test_everyone_reported_means_no_wait():
    recovery = Recovery(grace=5.0)
    recovery.report(report("s1", 10, 7, 7))
    recovery.report(report("s2", 12, 7, 7))
    plan = recovery.plan(0.0, 1000, cluster_size=3)
    assert plan.source.secondary_id == "s2"


def test_best_log_ranks_sync_epoch_then_last_epoch_then_length():
    recovery = Recovery(grace=0.0)
    recovery.report(report("longest_but_stale", 50, 3, 3))
    recovery.report(report("newer_last_entry", 5, 5, 4))
    recovery.report(report("synced_latest", 8, 4, 5))
    plan = recovery.plan(0.0, 0, cluster_size=4)
    assert plan.source.secondary_id == "synced_latest"


def test_new_epoch_is_above_anything_seen_and_at_least_the_clock():
    recovery = Recovery(grace=0.0)
    recovery.report(report("s1", 1, 9000, 9000))
    assert recovery.plan(0.0, 100, cluster_size=2).epoch == 9001
    assert recovery.plan(0.0, 20000, cluster_size=2).epoch == 20000


def test_a_failed_source_is_dropped_and_the_next_best_chosen():
    recovery = Recovery(grace=0.0)
    recovery.report(report("s1", 5, 2, 2))
    recovery.report(report("s2", 4, 2, 2))
    recovery.drop("s1")
    assert recovery.plan(0.0, 0, cluster_size=3).source.secondary_id == "s2"


def test_no_cluster_no_wait():
    plan = Recovery(grace=5.0).plan(0.0, 42, cluster_size=1)
    assert plan is not None and plan.source is None and plan.epoch == 42


def test_new_epoch_is_above_any_stream_epoch_a_secondary_accepted():
    recovery = Recovery(grace=0.0)
    recovery.report(LogReport("s1", "http://s1", 0, 0, 0, stream_epoch=50_000))
    assert recovery.plan(0.0, 100, cluster_size=2).epoch == 50_001


def test_a_fetched_log_must_still_be_the_reported_one():
    import pytest

    from replog.core import Entry
    from replog.master.recovery_fetch import FetchError, check_fetched

    reported = LogReport("s1", "http://s1", 2, 5, 5)
    check_fetched([Entry(1, 4, None, "a"), Entry(2, 5, None, "b")], reported)
    check_fetched(
        [Entry(1, 4, None, "a"), Entry(2, 5, None, "b"), Entry(3, 5, None, "c")], reported
    )
    with pytest.raises(FetchError):
        check_fetched([Entry(1, 4, None, "a")], reported)  # restarted and emptied meanwhile
    with pytest.raises(FetchError):
        check_fetched([Entry(1, 4, None, "a"), Entry(2, 6, None, "x")], reported)


# -- strict recovery (--recover, or a master log cut short by --repair) ----------


def member(name, length=0, last_epoch=0, sync_epoch=0, cluster="c1", stream_epoch=0):
    return LogReport(
        name, f"http://{name}", length, last_epoch, sync_epoch, stream_epoch, f"{name}-inc", cluster
    )


def test_strict_recovery_waits_for_every_expected_secondary_with_data():
    recovery = Recovery(strict=True, expected=2)
    recovery.report(member("s1", 5, 3, 3))
    recovery.report(member("s2", cluster=None))  # started empty: does not count
    assert recovery.missing(0) == 1 and recovery.plan(99.0, 10**15, 3) is None
    recovery.report(member("s2", 4, 3, 3))
    plan = recovery.plan(0.0, 0, 3)
    assert plan.source.secondary_id == "s1" and plan.cluster_id == "c1"


def test_strict_recovery_reads_no_clock():
    recovery = Recovery(strict=True, expected=1)
    recovery.report(member("s1", 5, last_epoch=3, sync_epoch=3, stream_epoch=4))
    assert recovery.plan(0.0, 10**15, 2).epoch == 5
    assert recovery.plan(0.0, 0, 2).epoch == 5


def test_strict_recovery_refuses_to_mix_clusters():
    recovery = Recovery(strict=True, expected=2)
    recovery.report(member("s1", 5, 3, 3, cluster="c1"))
    recovery.report(member("s2", 5, 3, 3, cluster="c2"))
    assert recovery.plan(0.0, 0, 3) is None and recovery.conflict == ["c1", "c2"]


def test_the_masters_own_repaired_log_competes_and_its_epoch_counts():
    own = LogReport("master", "", 3, last_epoch=7, sync_epoch=7, stream_epoch=7, cluster_id="c1")
    longer = Recovery(strict=True, expected=1, own=own)
    longer.report(member("s1", 6, last_epoch=7, sync_epoch=7))
    plan = longer.plan(0.0, 0, 2)
    assert plan.source.secondary_id == "s1" and plan.epoch == 8
    behind = Recovery(strict=True, expected=1, own=own)
    behind.report(member("s1", 9, last_epoch=5, sync_epoch=5))  # never caught up with epoch 7
    plan = behind.plan(0.0, 0, 2)
    assert plan.source is None and plan.cluster_id == "c1"  # keep its own log


def test_an_empty_own_log_does_not_impose_its_cluster():
    own = LogReport("master", "", 0, 0, 1, 1, cluster_id="mistake")
    recovery = Recovery(strict=True, expected=1, own=own)
    recovery.report(member("s1", 4, 2, 2, cluster="c1"))
    plan = recovery.plan(0.0, 0, 2)
    assert plan.cluster_id == "c1" and plan.source.secondary_id == "s1"


def test_next_epoch_is_above_everything_seen():
    assert next_epoch() == 1
    assert next_epoch(4, 9, 2) == 10


def test_how_a_master_starts():
    def mode(**kw):
        base = dict(durable=True, recover=False, log_lost=False, cluster_known=True, log_length=5)
        return start_mode(**{**base, **kw})

    assert mode() == OPEN  # its own log, at once
    assert mode(cluster_known=False, log_length=0) == OPEN  # a new cluster
    assert mode(durable=False) == LENIENT  # nothing of its own
    assert mode(recover=True) == STRICT
    assert mode(log_lost=True) == STRICT  # a repair or recovery not finished
    assert mode(cluster_known=False) == STRICT  # a log whose cluster is unknown


def test_a_node_that_joined_no_cluster_belongs_to_no_other():
    assert other_cluster("c1", "c2")
    assert not other_cluster("c1", "c1")
    assert not other_cluster(None, "c1") and not other_cluster("c1", None)
