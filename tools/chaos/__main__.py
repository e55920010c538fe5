"""`make chaos`: a randomized fault campaign against a real cluster, then the checker.

    python -m tools.chaos --duration 300 --seed 7 [--mode auto|netns|loopback] [--master-faults]

Prints the checker's summary and exits 1 if it found any violation (2 if the
cluster could not be set up). Everything the run produced (node logs,
results.jsonl, logs.json, report.json) stays in --workdir, so

    python -m tools.chaos.checker <workdir>/results.jsonl <workdir>/logs.json <workdir>

checks it again. SIGINT or SIGTERM stops the run cleanly (nodes stopped,
namespaces removed); namespaces left by a run that was SIGKILLed are removed
by the next run.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.chaos.campaign import ALL_KINDS, MASTER_KINDS, Campaign, CampaignConfig
from tools.chaos.checker import format_summary


def positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {raw}")
    return value


def kinds(raw: str) -> tuple[str, ...]:
    chosen = tuple(k.strip() for k in raw.split(",") if k.strip())
    unknown = [k for k in chosen if k not in ALL_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault kinds {unknown}; known: {ALL_KINDS}")
    return chosen


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.chaos",
        description="Run a replog cluster under concurrent writes with mixed write concerns, "
        "inject faults on a seeded random schedule, heal, and check consistency.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=positive_float, default=300.0, help="seconds of faults")
    p.add_argument("--seed", type=int, default=1, help="seed of the fault schedule and writers")
    p.add_argument(
        "--mode",
        choices=("auto", "netns", "loopback"),
        default="auto",
        help="netns: a network namespace per node (root); loopback: process faults only; "
        "auto: netns when possible",
    )
    p.add_argument(
        "--master-faults",
        action="store_true",
        help="also SIGKILL+restart and SIGSTOP/SIGCONT the master, and kill_all: every node "
        "SIGKILLed at once, then all started again on their data dirs",
    )
    p.add_argument(
        "--faults", type=kinds, default=None, help=f"comma-separated subset of {ALL_KINDS}"
    )
    p.add_argument("--secondaries", type=int, default=2)
    p.add_argument("--writers", type=int, default=6, help="concurrent client threads")
    p.add_argument("--max-concurrent", type=int, default=2, help="faults active at once")
    p.add_argument("--max-faults", type=int, default=None, help="stop injecting after this many")
    p.add_argument("--client-timeout", type=positive_float, default=5.0, help="seconds")
    p.add_argument("--wtimeout", type=int, default=3000, help="ms, sent with every write")
    p.add_argument("--converge-timeout", type=positive_float, default=60.0, help="seconds")
    p.add_argument("--workdir", type=Path, default=None, help="default: a new temporary dir")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.faults and set(args.faults) & MASTER_KINDS and not args.master_faults:
        parser.error(f"--faults {','.join(sorted(MASTER_KINDS))} need --master-faults")
    # SIGTERM unwinds like Ctrl-C, so the campaign's cleanup runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    config = CampaignConfig(
        duration=args.duration,
        seed=args.seed,
        mode=args.mode,
        secondaries=args.secondaries,
        writers=args.writers,
        master_faults=args.master_faults,
        kinds=args.faults,
        workdir=args.workdir,
        client_timeout=args.client_timeout,
        wtimeout_ms=args.wtimeout,
        max_concurrent=args.max_concurrent,
        max_faults=args.max_faults,
        converge_timeout=args.converge_timeout,
    )
    try:
        campaign = Campaign(config)
    except RuntimeError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        sys.exit(2)
    print(
        f"chaos: seed {config.seed}, {config.duration:g}s of faults, mode {campaign.mode} "
        f"({campaign.mode_reason}), faults {campaign.kinds()}, workdir {campaign.workdir}",
        flush=True,
    )
    try:
        outcome = campaign.run()
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"chaos: the run failed: {exc}; see {campaign.workdir}", file=sys.stderr)
        sys.exit(2)
    if args.json:
        print(json.dumps(outcome.report.to_json(), indent=1, default=str))
    print(format_summary(outcome.report))
    print(
        f"converged: {outcome.converged} ({outcome.converge_detail}) after "
        f"{outcome.converge_seconds}s; elapsed {outcome.elapsed}s; files in {outcome.workdir}"
    )
    sys.exit(0 if outcome.report.ok else 1)


if __name__ == "__main__":
    main()
