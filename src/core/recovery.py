"""Master start-up: learn the cluster's log from the secondaries before writing.

The master keeps its log in memory, so a restarted master starts empty while
its secondaries still hold the old log. It must not write until it has
adopted the most up-to-date log among enough secondaries, or a new message
would reuse a seq that already names another one.

Rules (pure; the caller fetches the chosen log and adopts it):
- Every registration during recovery is a `LogReport`.
- Ready when every secondary of the cluster has reported, or when a majority
  of the nodes (the master included) has reported and either no reporter has
  ever followed a master (a new cluster) or `grace` seconds have passed since
  that majority was reached (waiting a little for the rest).
- The best log: highest (sync_epoch, last_epoch, length). `sync_epoch` is the
  epoch of the last master whose whole log (as it stood when their stream
  started) the secondary caught up with. Comparing it first (as ZooKeeper's
  Zab does) means an old entry that the previous master re-replicated to a
  majority cannot lose to a stale log with a higher last-entry epoch (Raft's
  "figure 8"). Then Raft's rule: the epoch of the last entry, then length.
- The new epoch is above every epoch any reporter has seen, and at least the
  current time in milliseconds, so two master runs never share an epoch even
  when no secondary reported (a cluster run without --secondaries).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.write_request import majority


@dataclass(frozen=True, slots=True)
class LogReport:
    secondary_id: str
    url: str
    length: int
    last_epoch: int
    sync_epoch: int
    # The newest master epoch it accepted a stream from (it refuses older ones).
    stream_epoch: int = 0

    @property
    def rank(self) -> tuple[int, int, int]:
        return (self.sync_epoch, self.last_epoch, self.length)


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    epoch: int
    # The log to adopt, or None when no reporter holds anything.
    source: LogReport | None


class Recovery:
    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.reports: dict[str, LogReport] = {}
        self._majority_since: float | None = None

    def report(self, report: LogReport) -> None:
        self.reports[report.secondary_id] = report

    def drop(self, secondary_id: str) -> None:
        """Its log could not be fetched: decide without it."""
        self.reports.pop(secondary_id, None)

    def missing(self, cluster_size: int) -> int:
        """How many more reports a majority needs."""
        return max(0, majority(cluster_size) - 1 - len(self.reports))

    def plan(self, now: float, now_ms: int, cluster_size: int) -> RecoveryPlan | None:
        """The recovery to carry out now, or None to keep waiting."""
        if self.missing(cluster_size) > 0:
            self._majority_since = None
            return None
        if self._majority_since is None:
            self._majority_since = now
        everyone = len(self.reports) >= cluster_size - 1
        new_cluster = all(r.sync_epoch == 0 and r.last_epoch == 0 for r in self.reports.values())
        waited = now - self._majority_since >= self.grace
        if not (everyone or new_cluster or waited):
            return None
        seen = max(
            (max(r.sync_epoch, r.last_epoch, r.stream_epoch) for r in self.reports.values()),
            default=0,
        )
        best = max(self.reports.values(), key=lambda r: r.rank, default=None)
        source = best if best is not None and best.length > 0 else None
        return RecoveryPlan(epoch=max(seen + 1, now_ms), source=source)
