"""The simulator catches known mistakes (issue 10): each mutant of tools.sim.mutants
re-introduces one into the real code, and some seed from a fixed start fails against
it, while the real code passes those same seeds (so the failure is the mistake's)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from replog.core import recovery, replication_log, stream
from replog.core.follower_log import FollowerLog
from replog.secondary.node import SecondaryNode
from tools.sim.mutants import MUTANTS, hunt
from tools.sim.run import SimConfig, simulate

ROOT = Path(__file__).resolve().parents[2]
FIRST_SEED = 1
# Every mutant is caught within this (see `python -m tools.sim.mutants`): from seed 1
# they take 1, 1, 8, 7, 8, 14 and 3 seeds.
MAX_SEEDS = 50


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_each_known_mistake_is_caught_and_the_real_code_passes_the_same_seeds(mutant):
    found = hunt(mutant, FIRST_SEED, MAX_SEEDS)
    assert found.caught is not None, f"{mutant.name} not caught in {MAX_SEEDS} seeds"
    for seed in range(FIRST_SEED, found.first_seed + 1):
        result = simulate(seed, SimConfig())
        details = [f"{v.property}: {v.detail}" for v in result.violations[:3]]
        assert result.ok, f"the real code fails seed {seed}: {details}"


def test_a_mutant_is_in_place_only_inside_its_with_block():
    rules = [
        (replication_log.ReplicationLog, "record_ack"),
        (replication_log.ReplicationLog, "register"),
        (SecondaryNode, "apply"),
        (recovery.Recovery, "counted"),
        (recovery.Recovery, "missing"),
        (stream, "accepts_master"),
        (replication_log.ReplicationLog, "next_batch"),
        (replication_log.ReplicationLog, "visible_seq"),
        (FollowerLog, "visible_seq"),
    ]
    before = [vars(owner)[name] for owner, name in rules]
    for mutant in MUTANTS:
        with mutant.patch():
            changed = [vars(o)[n] is not b for (o, n), b in zip(rules, before, strict=True)]
            assert any(changed), mutant.name
        assert [vars(owner)[name] for owner, name in rules] == before, mutant.name


def test_a_wiped_master_restarts_with_recover_and_the_real_code_passes():
    recovered = 0
    for seed in range(1, 6):
        result = simulate(seed, SimConfig(wipes="master"))
        assert result.ok, [v.detail for v in result.violations[:3]]
        lines = [" ".join(event) for event in result.trace]
        wiped = any("crash master wiped" in line for line in lines)
        recovered += wiped and any(" recovered " in line for line in lines)
    assert recovered >= 1


def test_a_lingering_old_master_redials_and_is_refused_by_the_real_code():
    refused = 0
    for seed in (8, 14, 19):
        result = simulate(seed, SimConfig())
        assert result.ok, [v.detail for v in result.violations[:3]]
        assert result.faults["linger"] >= 1
        refused += any("stale_master_refused" in " ".join(e) for e in result.trace)
    assert refused >= 1


def test_the_command_line_prints_the_seeds_each_mutant_took():
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tools.sim.mutants", "--max-seeds", "10", "ack_highest_sent"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ack_highest_sent" in done.stdout and "caught by seed 1 after 1 seed(s)" in done.stdout
