"""The simulator end to end (tools.sim.run): the real nodes under seeded clients and
faults pass every property; a seed replays bit for bit; a broken invariant is caught."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from replog.core import replication_log
from replog.master import replicator
from replog.secondary.config import SecondaryConfig
from tools.sim.cluster import MASTER
from tools.sim.run import SimConfig, Simulation, simulate

ROOT = Path(__file__).resolve().parents[2]


def config(**changes) -> SimConfig:
    base = SimConfig(steps=120)
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def describe(result) -> str:
    lines = [f"{v.property}: {v.detail}" for v in result.violations[:5]]
    return "\n".join([*lines, result.trace_tail])


def test_without_faults_every_write_is_acknowledged_and_every_node_holds_the_log():
    quiet = config(network_faults=False, crashes=False, clock_jumps=False, fine_faults=False)
    sim = Simulation(3, quiet)
    sim.loop.run_until_complete(sim.main(), max_events=5_000_000)
    assert sim.violations == []
    writes = sim.history.writes
    assert len(writes) > 100
    # Only the first writes may find the master read-only (before its first health check).
    late = [w for w in writes if w.sent > 1.0]
    assert late and all(w.status in (200, 201) for w in late if w.error != "client_stopped")
    logs = sim.history.final_logs
    master_log = logs[MASTER]
    assert len(master_log) >= len({w.id for w in writes if w.status in (200, 201)})
    assert all(logs[name] == master_log for name in sim.cluster.names)
    sim.loop.shutdown()
    sim.loop.close()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_real_code_passes_under_network_faults_crashes_and_clock_jumps(seed):
    result = simulate(seed, config(steps=200))
    assert result.ok, describe(result)
    assert result.faults["crash"] >= 1 or sum(result.faults.values()) >= 5
    assert result.acked > 0 and result.reads > 0


def test_every_kind_of_fault_is_injected_and_counted():
    seen = set()
    for seed in range(1, 5):
        seen |= set(simulate(seed, config(steps=200)).faults)
    assert {"crash", "power_cut", "cut", "partition", "reset", "pause", "clock_jump"} <= seen
    assert {"latency", "cut_one_way"} & seen


def test_the_same_seed_gives_the_same_run_twice():
    first, again = simulate(11, config()), simulate(11, config())
    assert first.trace == again.trace
    assert first.events == again.events
    assert (first.writes, first.acked, first.reads) == (again.writes, again.acked, again.reads)
    assert simulate(12, config()).trace != first.trace


def test_an_ack_of_what_was_sent_instead_of_what_is_held_is_caught(monkeypatch):
    """Break the master: count a secondary's ACK as covering everything the stream sent
    it, not the contiguous prefix it says it holds on disk."""
    record_ack = replication_log.ReplicationLog.record_ack

    def ack_sent(self, secondary_id, contiguous_seq, now):
        sent = self._secondaries[secondary_id].sent_seq
        return record_ack(self, secondary_id, max(contiguous_seq, sent), now)

    monkeypatch.setattr(replication_log.ReplicationLog, "record_ack", ack_sent)
    caught = [simulate(seed, config()) for seed in (1, 2, 3)]
    properties = {v.property for result in caught for v in result.violations}
    assert sum(not result.ok for result in caught) >= 2
    # counted_unheld (checked every step) usually sees it first, ack_unheld at the end.
    assert {"ack_unheld", "counted_unheld"} & properties


def test_the_command_line_runs_seeds_and_prints_its_figures():
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tools.sim", "--seed", "5", "--seeds", "2", "--steps", "60"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: 2 seed(s) from 5" in done.stdout
    assert "faults/s" in done.stdout and "events/s" in done.stdout


def test_a_waiter_left_behind_by_a_client_that_gave_up_is_caught(monkeypatch):
    """Break the master: a write whose client went away keeps its write-concern waiter,
    so waiters pile up while a secondary is down (bounded_memory, checked every step)."""
    monkeypatch.setattr(replication_log.ReplicationLog, "cancel_wait", lambda self, token: None)
    caught = [simulate(seed, config(steps=200)) for seed in (1, 2, 3)]
    bounded = [v for result in caught for v in result.violations if v.property == "bounded_memory"]
    assert bounded, [v.property for result in caught for v in result.violations]
    assert all("commit_waiters" in v.detail for v in bounded)


def test_a_task_leaked_per_dial_is_caught(monkeypatch):
    """Break the master's link: each dial leaves a task behind (as a reader nobody
    cancels would), so tasks pile up as links redial nodes that are down."""
    connect = replicator.SecondaryLink._connect
    leaked = []

    async def leaky_connect(self, epoch):
        leaked.append(asyncio.ensure_future(asyncio.Event().wait()))
        return await connect(self, epoch)

    monkeypatch.setattr(replicator.SecondaryLink, "_connect", leaky_connect)
    result = simulate(1, config(steps=300))
    assert any(
        v.property == "bounded_memory" and "loop_tasks" in v.detail for v in result.violations
    ), (len(leaked), [v.property for v in result.violations])


def test_the_real_code_stays_within_every_memory_bound():
    result = simulate(4, config(steps=200))
    assert result.ok, describe(result)
    peaks = result.memory_peaks
    assert {"commit_waiters", "inflight_batches", "frames_queued", "loop_tasks"} <= set(peaks)
    assert 1 <= peaks["commit_waiters"] <= SimConfig.clients


def test_a_secondary_that_refuses_the_masters_batches_is_caught(monkeypatch):
    """Misconfigure the secondaries: a frame limit below the master's batches (the
    master's --max-body-bytes above their --max-entry-bytes). Tornado closes such a
    stream with 1009; the simulated connection does the same, and the run says so."""
    monkeypatch.setattr(SecondaryConfig, "max_frame_bytes", property(lambda self: 60))
    result = simulate(1, config(steps=120, network_faults=False, crashes=False))
    assert "frame_too_big" in {v.property for v in result.violations}
