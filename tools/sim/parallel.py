"""Many seeds at once: `simulate_many(first, count, config, jobs)` runs seeds in `jobs`
worker processes and totals their faults, events and failures.

The workers are forked from the caller, so they share its interpreter's hash seed
(a runner fixes it first: `require_fixed_hash_seed()`) and its imports; each seed's
run is a pure function of the seed and the config, so the totals do not depend on
`jobs` nor on which worker ran which seed. A worker sends back a `SeedSummary` (the
full trace of a passing seed stays in the worker: replay a seed to see it).
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from tools.sim.run import SimConfig, simulate


@dataclass
class SeedSummary:
    """What a worker sends back for one seed (the full trace stays in the worker)."""

    seed: int
    ok: bool
    faults: Counter[str]
    events: int
    writes: int
    acked: int
    virtual_seconds: float
    violations: list[str] = field(default_factory=list)
    # A failed seed's kept trace, formatted (tools.sim.trace), oldest first.
    trace: str = ""
    memory_peaks: dict[str, int] = field(default_factory=dict)


@dataclass
class Totals:
    seeds: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    events: int = 0
    writes: int = 0
    acked: int = 0
    virtual_seconds: float = 0.0
    real_seconds: float = 0.0
    failed: list[SeedSummary] = field(default_factory=list)
    # The largest of each memory measure over all seeds (Simulation.memory_sizes).
    memory_peaks: dict[str, int] = field(default_factory=dict)

    @property
    def fault_total(self) -> int:
        return sum(self.faults.values())

    def add(self, summary: SeedSummary) -> None:
        self.seeds += 1
        self.faults += summary.faults
        self.events += summary.events
        self.writes += summary.writes
        self.acked += summary.acked
        self.virtual_seconds += summary.virtual_seconds
        for kind, size in summary.memory_peaks.items():
            self.memory_peaks[kind] = max(size, self.memory_peaks.get(kind, 0))
        if not summary.ok:
            self.failed.append(summary)


def run_seed(job: tuple[int, SimConfig]) -> SeedSummary:
    seed, config = job
    result = simulate(seed, config)
    return SeedSummary(
        seed=seed,
        ok=result.ok,
        faults=result.faults,
        events=result.events,
        writes=result.writes,
        acked=result.acked,
        virtual_seconds=result.virtual_seconds,
        violations=[f"{v.property}: {v.detail}" for v in result.violations[:10]],
        trace="" if result.ok else result.trace_text,
        memory_peaks=result.memory_peaks,
    )


def run_seeds(seeds: range, config: SimConfig, jobs: int) -> Iterator[SeedSummary]:
    """Each seed's summary, in seed order; in `jobs` forked workers when jobs > 1."""
    work = [(seed, config) for seed in seeds]
    if jobs <= 1 or len(work) <= 1:
        yield from map(run_seed, work)
        return
    # fork: the workers inherit this interpreter's fixed hash seed and its imports.
    context = multiprocessing.get_context("fork")
    with context.Pool(min(jobs, len(work)), maxtasksperchild=200) as pool:
        yield from pool.imap(run_seed, work, chunksize=1)


def simulate_many(first: int, count: int, config: SimConfig, jobs: int) -> Totals:
    totals = Totals()
    started = time.perf_counter()
    for summary in run_seeds(range(first, first + count), config, jobs):
        totals.add(summary)
    totals.real_seconds = time.perf_counter() - started
    return totals
