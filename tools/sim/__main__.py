"""`python -m tools.sim --seed S [--steps N] [--seeds N]`: simulate seeds S, S+1, ...

Each seed is one reproducible run (tools.sim.run). On the first failure: the seed, a
one-line replay command, the violations and the last trace lines; exit 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from tools.sim.loop import require_fixed_hash_seed
from tools.sim.run import SimConfig, random_seed, simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="the first seed (random if unset)")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds, from --seed on")
    parser.add_argument("--steps", type=int, default=SimConfig.steps)
    parser.add_argument("--secondaries", type=int, default=SimConfig.secondaries)
    parser.add_argument("--no-crashes", action="store_true", help="network faults only")
    parser.add_argument("--no-faults", action="store_true", help="no fault at all")
    parser.add_argument(
        "--master-power-cuts", action="store_true", help="power cuts of the master too"
    )
    parser.add_argument(
        "--master-wipes", action="store_true", help="master disk losses, restarted with --recover"
    )
    parser.add_argument(
        "--stale-masters",
        action="store_true",
        help="killed masters that linger beside their replacement in their old epoch",
    )
    args = parser.parse_args(argv)
    require_fixed_hash_seed()
    first = random_seed() if args.seed is None else args.seed
    faults: Counter[str] = Counter()
    events = writes = acked = 0
    virtual = 0.0
    started = time.perf_counter()
    for seed in range(first, first + args.seeds):
        config = SimConfig(steps=args.steps, secondaries=args.secondaries)
        if args.no_faults:
            config.network_faults = config.crashes = config.clock_jumps = False
        if args.no_crashes:
            config.crashes = False
        config.master_power_cuts = args.master_power_cuts
        config.master_wipes = args.master_wipes
        config.stale_masters = args.stale_masters
        result = simulate(seed, config)
        faults += result.faults
        events += result.events
        writes += result.writes
        acked += result.acked
        virtual += result.virtual_seconds
        if not result.ok:
            replay = f"python -m tools.sim --seed {seed} --steps {args.steps}"
            replay += f" --secondaries {args.secondaries}"
            replay += " --no-faults" if args.no_faults else ""
            replay += " --no-crashes" if args.no_crashes else ""
            replay += " --master-power-cuts" if args.master_power_cuts else ""
            replay += " --master-wipes" if args.master_wipes else ""
            replay += " --stale-masters" if args.stale_masters else ""
            print(f"FAILED seed {seed}: {len(result.violations)} violation(s)")
            print(f"replay: {replay}")
            for violation in result.violations[:10]:
                print(f"  {violation.property}: {violation.detail}")
            print("last trace lines:")
            print(result.trace_tail)
            return 1
    real = time.perf_counter() - started
    total_faults = sum(faults.values())
    print(
        f"ok: {args.seeds} seed(s) from {first}, {writes} writes ({acked} acked), "
        f"{virtual:.0f} s virtual in {real:.1f} s real"
    )
    print(f"faults: {total_faults} ({', '.join(f'{k}={v}' for k, v in sorted(faults.items()))})")
    print(
        f"simulated events: {events}; "
        f"{total_faults / real:.0f} faults/s, {events / real:.0f} events/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
