"""Known mistakes, re-introduced one at a time, that the simulator must catch (issue 10).

Each mutant is a context manager that replaces exactly one rule of the real product
code (a `replog.core` state machine or the node glue) with the named mistake, for as
long as the `with` block lasts. The docstring of each says the correct rule it breaks.
`python -m tools.sim.mutants [--max-seeds N]` runs seeds from `--seed` on against each
until one fails, and prints the first seed that caught it, how many seeds that took
and the kind of violation: the figure issue 10's closing note asks for.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from replog.core import recovery, replication_log, stream
from replog.core.follower_log import FollowerLog
from replog.secondary.node import SecondaryNode
from tools.sim.run import SimConfig, SimResult, simulate


@contextmanager
def _patched(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    saved = owner.__dict__[name]
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, saved)


@contextmanager
def ack_highest_sent() -> Iterator[None]:
    """The master counts a secondary's ACK as covering everything its stream sent.

    Correct rule (ReplicationLog.record_ack): a secondary holds the contiguous
    prefix 1..contiguous_seq it acknowledged, nothing more.
    """
    record_ack = replication_log.ReplicationLog.record_ack

    def ack_sent(self: Any, secondary_id: str, contiguous_seq: int, now: float) -> Any:
        sent = self._secondaries[secondary_id].sent_seq
        return record_ack(self, secondary_id, max(contiguous_seq, sent), now)

    with _patched(replication_log.ReplicationLog, "record_ack", ack_sent):
        yield


@contextmanager
def ack_before_sync() -> Iterator[None]:
    """The secondary acknowledges a batch as soon as it applied it, before its fsync.

    Correct rule (SecondaryNode.apply/_durable): the ACK of new entries follows the
    store's report that they are on disk; until then a power cut may lose them.
    """
    real_apply = SecondaryNode.apply

    def apply(self: Any, entries: Any, epoch: int) -> Any:
        result = real_apply(self, entries, epoch)
        if result is not None and result.applied and self.stream is not None:
            self.stream.send_ack(self.follower.contiguous_seq)  # the mistake: not durable_seq
        return result

    with _patched(SecondaryNode, "apply", apply):
        yield


@contextmanager
def empty_restart_holder() -> Iterator[None]:
    """A secondary that restarted on a new, empty disk keeps the count of its old one.

    Correct rule (ReplicationLog.register): a new incarnation holds nothing, and a
    registration can only lower what the master counts the secondary as holding.
    """
    real_register = replication_log.ReplicationLog.register

    def register(self: Any, secondary_id: str, url: str, contiguous_seq: int, *a: Any, **k: Any):
        old = self._secondaries.get(secondary_id)
        acked = 0 if old is None else old.acked_seq
        changed = real_register(self, secondary_id, url, contiguous_seq, *a, **k)
        self._secondaries[secondary_id].acked_seq = acked  # the mistake: remembered
        return changed

    with _patched(replication_log.ReplicationLog, "register", register):
        yield


@contextmanager
def open_on_one_empty_report() -> Iterator[None]:
    """A master recovering a lost disk opens on the first report, even an empty one.

    Correct rule (core.recovery.Recovery, strict): wait until every expected
    secondary has reported with data of the cluster (started-empty reports do not
    count), then open on the best of them.
    """

    def counted(self: Any) -> list[Any]:
        return list(self.reports.values())  # the mistake: empty reports count

    def missing(self: Any, cluster_size: int) -> int:
        if self.strict:
            return 0 if self.reports else 1  # the mistake: one report is enough
        return real_missing(self, cluster_size)

    real_missing = recovery.Recovery.missing
    with (
        _patched(recovery.Recovery, "counted", counted),
        _patched(recovery.Recovery, "missing", missing),
    ):
        yield


@contextmanager
def accept_older_epoch() -> Iterator[None]:
    """A secondary takes a stream from a master older than the one it follows.

    Correct rule (core.stream.accepts_master): a dial whose epoch is below the
    newest master epoch the secondary accepted a stream from (or synced with) is
    refused, 409 stale_master_refused.
    """

    def accepts_master(follower: FollowerLog, epoch: int) -> bool:
        return True  # the mistake: any epoch will do

    with _patched(stream, "accepts_master", accepts_master):
        yield


@contextmanager
def stream_before_sync() -> Iterator[None]:
    """The master streams an entry as soon as it is appended, before its own fsync.

    Correct rule (ReplicationLog.next_batch): only the master's durable prefix goes
    out; else a power cut of the master takes back an entry a secondary shows, and
    the restarted master gives its seq to another message. (The bug the simulator
    found; this is the code as it was.)
    """
    real_next_batch = replication_log.ReplicationLog.next_batch

    def next_batch(self: Any, secondary_id: str) -> Any:
        durable, self.durable_seq = self.durable_seq, self.last_seq  # the mistake
        try:
            return real_next_batch(self, secondary_id)
        finally:
            self.durable_seq = durable

    with _patched(replication_log.ReplicationLog, "next_batch", next_batch):
        yield


@contextmanager
def show_unsynced() -> Iterator[None]:
    """Every node shows what it appended or applied, synced or not.

    Correct rule (ReplicationLog.visible_seq, FollowerLog.visible_seq): readers see
    only the durable prefix; a power cut cannot take back what was shown.
    """
    with (
        _patched(replication_log.ReplicationLog, "visible_seq", property(lambda s: s.last_seq)),
        _patched(FollowerLog, "visible_seq", property(lambda s: s.contiguous_seq)),
    ):
        yield


@dataclass(frozen=True)
class Mutant:
    name: str
    patch: Callable[[], Any]


# Every mutant runs against the default SimConfig, the one CI runs the real code
# with: each fault a mutant needs (master disk losses, lingering old masters) is on.
MUTANTS = [
    Mutant("ack_highest_sent", ack_highest_sent),
    Mutant("ack_before_sync", ack_before_sync),
    Mutant("empty_restart_holder", empty_restart_holder),
    Mutant("open_on_one_empty_report", open_on_one_empty_report),
    Mutant("accept_older_epoch", accept_older_epoch),
    # The real bug the simulator found (fixed), in its two halves.
    Mutant("stream_before_sync", stream_before_sync),
    Mutant("show_unsynced", show_unsynced),
]
BY_NAME = {m.name: m for m in MUTANTS}


@dataclass
class Hunt:
    mutant: str
    first_seed: int
    tried: int
    caught: SimResult | None

    @property
    def kinds(self) -> list[str]:
        if self.caught is None:
            return []
        return sorted({v.property for v in self.caught.violations})


def hunt(mutant: Mutant, first_seed: int, max_seeds: int, steps: int | None = None) -> Hunt:
    """Run seeds first_seed.. against the mutant until one fails (at most max_seeds)."""
    for tried, seed in enumerate(range(first_seed, first_seed + max_seeds), start=1):
        config = SimConfig()
        if steps is not None:
            config.steps = steps
        with mutant.patch():
            result = simulate(seed, config)
        if not result.ok:
            return Hunt(mutant.name, seed, tried, result)
    return Hunt(mutant.name, first_seed, max_seeds, None)


def main(argv: list[str] | None = None) -> int:
    from tools.sim.loop import require_fixed_hash_seed

    parser = argparse.ArgumentParser(prog="python -m tools.sim.mutants", description=__doc__)
    parser.add_argument("--seed", type=int, default=1, help="the first seed")
    parser.add_argument("--max-seeds", type=int, default=50)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("names", nargs="*", help="mutants to run (all by default)")
    args = parser.parse_args(argv)
    require_fixed_hash_seed()
    missed = 0
    for mutant in [BY_NAME[n] for n in args.names] if args.names else MUTANTS:
        started = time.perf_counter()
        found = hunt(mutant, args.seed, args.max_seeds, args.steps)
        took = time.perf_counter() - started
        if found.caught is None:
            missed += 1
            print(f"{mutant.name:26} NOT caught in {found.tried} seeds ({took:.1f} s)")
        else:
            print(
                f"{mutant.name:26} caught by seed {found.first_seed} after {found.tried} "
                f"seed(s) ({took:.1f} s): {', '.join(found.kinds)}; replay: python -m "
                f"tools.sim.mutants --seed {found.first_seed} --max-seeds 1 {mutant.name}"
            )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
