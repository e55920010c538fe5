"""Faults injected into a real cluster while clients write with mixed w.

Each node runs in its own network namespace (root needed) so links can be cut;
without namespaces, process faults run on loopback addresses and the
partition cases skip, saying why. Every node keeps its log on disk in the
campaign's work dir, so a SIGKILL loses nothing acknowledged; `wipe` deletes
a secondary's disk. Every scenario ends with the consistency checker: zero
violations (no acknowledged write lost, none allowed), writes acknowledged,
faults injected.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from support.waiting import wait_until
from tools.chaos import netns
from tools.chaos.campaign import Campaign, CampaignConfig
from tools.chaos.checker import format_summary

# Where a failed test's files (node logs, records, final logs, report) are copied:
# pytest removes old tmp dirs, and these are the evidence.
KEEP_DIR = Path(os.environ.get("REPLOG_CHAOS_KEEP", "/tmp/replog-chaos-failures"))
NETNS_OK, NETNS_REASON = netns.availability()
needs_netns = pytest.mark.skipif(not NETNS_OK, reason=f"no network namespaces: {NETNS_REASON}")
MODE = "netns" if NETNS_OK else "loopback"


@pytest.fixture
def campaign_factory(tmp_path, request):
    """Campaigns torn down (processes stopped, namespaces removed) even when a test fails;
    a failed test's files are copied to KEEP_DIR."""
    made: list[Campaign] = []

    def make(**overrides) -> Campaign:
        config = CampaignConfig(
            **{
                "mode": MODE,
                "workdir": tmp_path / f"run{len(made)}",
                "converge_timeout": 30.0,
                **overrides,
            }
        )
        campaign = Campaign(config)
        made.append(campaign)
        campaign.setup()
        return campaign

    yield make
    for campaign in made:
        campaign.teardown()
    keep_if_failed(request, [c.workdir for c in made])
    if NETNS_OK:
        leftovers = [ns for c in made for ns in netns.list_namespaces() if ns.startswith(_tag(c))]
        assert not leftovers, f"namespaces left behind: {leftovers}"


def keep_if_failed(request: pytest.FixtureRequest, workdirs: list[Path]) -> None:
    reports = [getattr(request.node, f"rep_{when}", None) for when in ("setup", "call")]
    if not any(r is not None and r.failed for r in reports):
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i, workdir in enumerate(workdirs):
        if workdir.exists():
            target = KEEP_DIR / f"{request.node.name}-{stamp}-{i}"
            shutil.copytree(workdir, target, dirs_exist_ok=True)
            print(f"\nchaos: kept the failed run's files in {target}")


def _tag(campaign: Campaign) -> str:
    topo = campaign.cluster.topology
    return topo.tag if topo else "\0"


def acked(campaign: Campaign) -> list[dict]:
    return [r for r in campaign.recorder.of_type("write") if r.get("status") in (200, 201)]


def wait_for_acks(campaign: Campaign, more: int, what: str, timeout: float = 15.0) -> None:
    target = len(acked(campaign)) + more
    wait_until(lambda: len(acked(campaign)) >= target, timeout, what=what)


def finish_clean(campaign: Campaign):
    outcome = campaign.finish()
    report = outcome.report
    summary = format_summary(report)
    assert report.ok, f"{summary}\nfiles in {outcome.workdir}"
    assert outcome.converged, outcome.converge_detail
    assert report.summary["acknowledged"] > 0, summary
    assert report.summary["faults_injected"] > 0, summary
    assert report.summary["acknowledged_lost_allowed"] == 0, summary
    assert report.summary["rolled_back_reads"] == 0, summary
    return report


def events(campaign: Campaign, node: str, event: str) -> list[dict]:
    """`node`'s structured log events named `event`, across its restarts."""
    out = []
    for line in (campaign.workdir / f"{node}.log").read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"event":"{event}"' in line:
            out.append(json.loads(line))
    return out


def last_acked_seq(campaign: Campaign) -> int:
    return max(r["body"]["seq"] for r in acked(campaign))


def acked_between(campaign: Campaign, start: float, end: float) -> list[dict]:
    """Writes both sent after `start` and acknowledged before `end`."""
    return [r for r in acked(campaign) if r["t0"] > start and r["t1"] < end]


def secondary_connected(campaign: Campaign, name: str) -> bool:
    return campaign.cluster.stream_status()[name]


@pytest.mark.timeout(90)
def test_sigkill_and_restart_a_secondary_during_writes(campaign_factory):
    campaign = campaign_factory(writers=6)
    campaign.start_load()
    wait_for_acks(campaign, 30, "writes acknowledged before any fault")
    for _ in range(2):
        fault = campaign.inject("kill", "s1")
        wait_for_acks(campaign, 20, "w<=2 writes acknowledged while s1 is dead")
        down_until = campaign.recorder.now()
        campaign.heal(fault)  # restart: comes back with its data dir
        holders = {
            n for r in acked_between(campaign, fault.t, down_until) for n in r["body"]["acked_by"]
        }
        assert "s1" not in holders, "a dead secondary cannot acknowledge new writes"
        wait_until(lambda: secondary_connected(campaign, "s1"), 20, what="s1 back and streaming")
        wait_for_acks(campaign, 20, "writes acknowledged after the restart")
    finish_clean(campaign)
    log = (campaign.workdir / "s1.log").read_text()
    assert log.count('"event":"listening"') == 3  # started, then restarted twice
    opened = events(campaign, "s1", "storage_opened")
    assert len(opened) == 3 and not any(o["new"] for o in opened[1:]), opened
    assert all(o["last_seq"] > 0 for o in opened[1:]), "a killed secondary keeps its log"
    assert len({o["incarnation"] for o in opened}) == 1


@pytest.mark.timeout(90)
def test_wipe_a_secondary_during_writes(campaign_factory):
    campaign = campaign_factory(writers=6)
    cluster = campaign.cluster
    campaign.start_load()
    wait_for_acks(campaign, 30, "writes acknowledged before any fault")
    incarnation = cluster.health("s1")["incarnation"]
    fault = campaign.inject("wipe", "s1")
    assert not cluster.data_dir("s1").exists()
    wait_for_acks(campaign, 20, "w<=2 writes acknowledged while s1 is down, its disk gone")
    down_until = campaign.recorder.now()
    campaign.heal(fault)  # starts with an empty data dir: a new incarnation
    holders = {
        n for r in acked_between(campaign, fault.t, down_until) for n in r["body"]["acked_by"]
    }
    assert "s1" not in holders, "a wiped secondary cannot acknowledge new writes while down"
    wait_until(lambda: secondary_connected(campaign, "s1"), 20, what="s1 back and streaming")
    assert cluster.health("s1")["incarnation"] != incarnation
    wait_for_acks(campaign, 20, "writes acknowledged after the wipe")
    finish_clean(campaign)
    opened = events(campaign, "s1", "storage_opened")
    assert [o["new"] for o in opened] == [True, True], opened  # created, then created again
    assert events(campaign, "master", "secondary_new_incarnation")
    assert (cluster.data_dir("s1") / "identity.json").exists()


@pytest.mark.timeout(90)
def test_kill_every_node_at_once_then_restart_them(campaign_factory):
    campaign = campaign_factory(writers=6, master_faults=True)
    cluster = campaign.cluster
    campaign.start_load()
    wait_for_acks(campaign, 30, "writes acknowledged before any fault")
    fault = campaign.inject("kill_all")
    assert fault.target == "all" and not any(n.alive() for n in cluster.nodes.values())
    acked_before = last_acked_seq(campaign)
    wait_until(
        lambda: any(
            r.get("error") == "refused" and r["t0"] > fault.t
            for r in campaign.recorder.of_type("write")
        ),
        10,
        what="clients finding the master gone",
    )
    campaign.heal(fault)  # every node starts again on its own data dir
    wait_for_acks(campaign, 30, "writes acknowledged after every node restarted", timeout=30)
    finish_clean(campaign)
    # The master reopened at once with its own log, everything acknowledged in it.
    opened = events(campaign, "master", "opened")
    assert len(opened) == 2 and opened[1]["last_seq"] >= acked_before, opened
    assert opened[1]["epoch"] > opened[0]["epoch"]
    assert not events(campaign, "master", "recovery_started")
    for name in cluster.secondary_names:
        reopened = events(campaign, name, "storage_opened")[-1]
        assert not reopened["new"] and reopened["last_seq"] > 0, (name, reopened)


@pytest.mark.timeout(90)
def test_sigstop_and_sigcont_a_secondary_during_writes(campaign_factory):
    campaign = campaign_factory(writers=6)
    campaign.start_load()
    wait_for_acks(campaign, 30, "writes acknowledged before any fault")
    fault = campaign.inject("pause", "s2")
    # A hung node holds no new entry: writes still get w<=2 from master + s1.
    wait_for_acks(campaign, 20, "writes acknowledged while s2 is stopped")
    wait_until(
        lambda: any(
            s["id"] == "s2" and s["status"] != "healthy"
            for s in campaign.cluster.health("master")["secondaries"]
        ),
        15,
        what="the master notices s2 hung",
    )
    stopped_until = campaign.recorder.now()
    campaign.heal(fault)
    holders = {
        n for r in acked_between(campaign, fault.t, stopped_until) for n in r["body"]["acked_by"]
    }
    assert "s2" not in holders, "a stopped secondary cannot acknowledge new writes"
    wait_until(lambda: secondary_connected(campaign, "s2"), 20, what="s2 streaming again")
    wait_for_acks(campaign, 20, "writes acknowledged after SIGCONT")
    finish_clean(campaign)


@needs_netns
@pytest.mark.timeout(90)
def test_partition_master_from_a_secondary_that_clients_still_read(campaign_factory):
    campaign = campaign_factory(writers=6)
    cluster = campaign.cluster
    campaign.start_load()
    wait_for_acks(campaign, 30, "writes acknowledged before the partition")
    fault = campaign.inject("cut", "s1")

    def s1_lag() -> int:
        master_last = cluster.health("master")["last_seq"]
        return master_last - len(cluster.messages("s1", timeout=2))

    # s1 still answers clients over its own link, but falls behind the master.
    lag = wait_until(lambda: (n := s1_lag()) >= 30 and n, 20, what="s1 lagging behind the cut")
    assert cluster.health("s1")["role"] == "secondary"
    cut_until = campaign.recorder.now()
    campaign.heal(fault)
    holders = {
        n for r in acked_between(campaign, fault.t, cut_until) for n in r["body"]["acked_by"]
    }
    assert "s1" not in holders, "a cut-off secondary cannot acknowledge new writes"
    wait_until(lambda: s1_lag() <= 0, 30, what=f"s1 catching up after the heal (lag was {lag})")
    samples = [s for s in campaign.recorder.of_type("sample") if s["node"] == "s1" and s["ok"]]
    during = [s for s in samples if fault.t + 0.5 < s["t"] < cut_until]
    assert during, "s1 must have been read during the partition"
    finish_clean(campaign)


@pytest.mark.timeout(150)
def test_short_randomized_campaign(campaign_factory):
    campaign = campaign_factory(duration=20.0, seed=20240601, writers=6)
    campaign.start_load()
    campaign.run_schedule()
    report = finish_clean(campaign)
    expected = {"kill", "wipe", "pause"}
    expected |= {"cut", "isolate", "partition_master"} if NETNS_OK else set()
    assert set(campaign.kinds()) == expected
    assert report.summary["faults_injected"] >= 5


@pytest.mark.timeout(90)
def test_sigkill_and_restart_the_master_during_writes(campaign_factory):
    campaign = campaign_factory(writers=6, master_faults=True)
    campaign.start_load()
    wait_for_acks(campaign, 30, "writes acknowledged before any fault")
    fault = campaign.inject("kill_master")
    wait_until(
        lambda: any(
            r.get("error") == "refused" and r["t0"] > fault.t
            for r in campaign.recorder.of_type("write")
        ),
        10,
        what="clients finding the master gone",
    )
    campaign.heal(fault)  # restart: it reopens at once with its own log, in a new epoch
    wait_for_acks(campaign, 30, "writes acknowledged by the restarted master", timeout=30)
    finish_clean(campaign)
    opened = events(campaign, "master", "opened")
    assert len(opened) == 2 and opened[1]["epoch"] > opened[0]["epoch"], opened


@pytest.mark.timeout(150)
def test_short_randomized_campaign_with_master_faults(campaign_factory):
    # This seed's schedule (in both modes) has kill_all and wipe among its first faults,
    # mixed with master restarts and (with namespaces) partitions.
    campaign = campaign_factory(duration=20.0, seed=20240634, writers=6, master_faults=True)
    assert {"kill_master", "pause_master", "kill_all", "wipe"} <= set(campaign.kinds())
    campaign.start_load()
    campaign.run_schedule()
    report = finish_clean(campaign)
    by_kind = report.summary["faults_by_kind"]
    assert {"kill_all", "wipe"} <= set(by_kind), by_kind


@pytest.mark.timeout(90)
def test_loopback_mode_process_faults(campaign_factory):
    """The fallback used where namespaces are not available."""
    campaign = campaign_factory(mode="loopback", duration=6.0, seed=3, writers=4)
    assert campaign.cluster.topology is None
    assert set(campaign.kinds()) == {"kill", "wipe", "pause"}
    campaign.start_load()
    campaign.run_schedule()
    finish_clean(campaign)
    for name in campaign.cluster.names:
        assert (campaign.workdir / "data" / name / "identity.json").exists(), name


@needs_netns
def test_topology_is_removed_and_stale_leftovers_are_cleaned():
    topo = netns.Topology(["master", "s1"]).create()
    try:
        names = netns.list_namespaces()
        assert topo.ns("master") in names and topo.ns("s1") in names
        topo.cut("master", "s1")
        assert topo.is_cut("master", "s1")
    finally:
        topo.destroy()
    assert not [n for n in netns.list_namespaces() if n.startswith(topo.tag)]

    dead = next(pid for pid in range(0x3FFFFF, 0x300000, -1) if not netns.pid_alive(pid))
    stale = f"{netns.PREFIX}{dead:06x}0master"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        assert stale in netns.cleanup_stale()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)
    assert stale not in netns.list_namespaces()
