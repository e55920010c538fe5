"""`python -m tools.sim --seed S [--seeds N] [--steps N] [--jobs J]`: simulate seeds
S, S+1, ... in J worker processes (default: one per CPU).

Each seed is one reproducible run (tools.sim.run), a pure function of the seed and
the options: the workers are forked from this process after it re-executed itself
with a fixed PYTHONHASHSEED, so a seed's result does not depend on J or on which
worker ran it. On a failure: the seed, a one-line replay command, the violations
and the last trace lines; exit 1 (the first failing seed in seed order is shown).
Otherwise the totals: faults by kind, simulated events, faults/s and events/s.
"""

from __future__ import annotations

import argparse
import os
import sys

from tools.sim.loop import require_fixed_hash_seed
from tools.sim.parallel import simulate_many
from tools.sim.run import WIPES, SimConfig, random_seed


def config_of(args: argparse.Namespace) -> SimConfig:
    config = SimConfig(steps=args.steps, secondaries=args.secondaries)
    if args.no_faults:
        config.network_faults = config.crashes = config.clock_jumps = False
        config.fine_faults = False
    if args.no_crashes:
        config.crashes = False
    if args.no_fine_faults:
        config.fine_faults = False
    config.master_power_cuts = not args.no_master_power_cuts
    config.stale_masters = not args.no_stale_masters
    config.wipes = args.wipes
    return config


def replay_command(args: argparse.Namespace, seed: int) -> str:
    replay = f"python -m tools.sim --seed {seed} --steps {args.steps}"
    replay += f" --secondaries {args.secondaries}"
    replay += " --no-faults" if args.no_faults else ""
    replay += " --no-crashes" if args.no_crashes else ""
    replay += " --no-fine-faults" if args.no_fine_faults else ""
    replay += " --no-master-power-cuts" if args.no_master_power_cuts else ""
    replay += " --no-stale-masters" if args.no_stale_masters else ""
    replay += f" --wipes {args.wipes}" if args.wipes != SimConfig.wipes else ""
    return replay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="the first seed (random if unset)")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds, from --seed on")
    parser.add_argument("--steps", type=int, default=SimConfig.steps)
    parser.add_argument("--secondaries", type=int, default=SimConfig.secondaries)
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)"
    )
    parser.add_argument("--no-crashes", action="store_true", help="network faults only")
    parser.add_argument("--no-faults", action="store_true", help="no fault at all")
    parser.add_argument(
        "--no-fine-faults", action="store_true", help="no per-frame, per-fsync, jitter faults"
    )
    parser.add_argument(
        "--no-master-power-cuts",
        action="store_true",
        help="master crashes are kills only (the kernel keeps what it wrote)",
    )
    parser.add_argument(
        "--no-stale-masters",
        action="store_true",
        help="no killed master lingers beside its replacement in its old epoch",
    )
    parser.add_argument(
        "--wipes",
        choices=WIPES,
        default=SimConfig.wipes,
        help="whose disks crashes may lose; mixed (default): per seed, the secondaries' "
        "or the master's (it restarts with --recover)",
    )
    parser.add_argument(
        "--trace-lines",
        type=int,
        default=80,
        metavar="N",
        help="trace lines shown for a failure (default 80; 0: every kept event)",
    )
    args = parser.parse_args(argv)
    require_fixed_hash_seed()
    first = random_seed() if args.seed is None else args.seed
    totals = simulate_many(first, args.seeds, config_of(args), args.jobs)
    real = totals.real_seconds
    if totals.failed:
        failed = totals.failed[0]
        print(f"FAILED seed {failed.seed}: {len(failed.violations)} violation(s) shown")
        print(f"replay: {replay_command(args, failed.seed)}")
        for violation in failed.violations:
            print(f"  {violation}")
        print("last trace lines:")
        lines = failed.trace.splitlines()
        print("\n".join(lines[-args.trace_lines :] if args.trace_lines > 0 else lines))
        others = [s.seed for s in totals.failed[1:]]
        if others:
            print(f"also failed: seeds {others}")
        return 1
    faults = totals.faults
    print(
        f"ok: {args.seeds} seed(s) from {first}, {totals.writes} writes ({totals.acked} acked, "
        f"{100 * totals.acked / max(totals.writes, 1):.0f}%), "
        f"{totals.virtual_seconds:.0f} s virtual in {real:.1f} s real, {args.jobs} job(s)"
    )
    print(
        f"faults: {totals.fault_total} ({', '.join(f'{k}={v}' for k, v in sorted(faults.items()))})"
    )
    print(
        f"simulated events: {totals.events}; "
        f"{totals.fault_total / real:.0f} faults/s, {totals.events / real:.0f} events/s"
    )
    peaks = totals.memory_peaks
    print(f"memory peaks: {', '.join(f'{k}={v}' for k, v in sorted(peaks.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
