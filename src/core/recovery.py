"""Master start-up: the epoch to open in, and the log to open with when the
master's own log cannot be trusted alone.

A master whose data directory is intact needs nobody: it opens at once with
its log, in an epoch above every epoch it has seen (`next_epoch`). Two cases
need the secondaries' logs first (the caller fetches the chosen log and
adopts it):

Strict recovery (`--recover`, or a master log cut short by `--repair`):
- Waits until every expected secondary has reported, counting none that
  started empty (a report without a cluster: a new or wiped data directory
  holds nothing that was acknowledged).
- Every counted reporter, and the master's own log if it has one, must belong
  to one cluster; the master adopts that cluster's identity.
- The best log among the counted reporters and the master's own: highest
  (sync_epoch, last_epoch, length), see below. Every write that any surviving
  holder acknowledged is in it.
- The epoch is above every epoch any of them has seen. No clock is read.

Lenient recovery (an in-memory master, which has nothing of its own):
- Ready when every secondary of the cluster has reported, or when a majority
  of the nodes (the master included) has reported and either no reporter has
  ever followed a master (a new cluster) or `grace` seconds have passed since
  that majority was reached (waiting a little for the rest).
- The new epoch is above every epoch any reporter has seen, and at least the
  current time in milliseconds: with nothing persisted, the clock is what
  keeps two runs from sharing an epoch when nobody reported.

The best log: highest (sync_epoch, last_epoch, length). `sync_epoch` is the
epoch of the last master whose whole log (as it stood when their stream
started) the secondary caught up with. Comparing it first (as ZooKeeper's Zab
does) means an old entry that the previous master re-replicated to a majority
cannot lose to a stale log with a higher last-entry epoch (Raft's "figure
8"). Then Raft's rule: the epoch of the last entry, then length.
"""

from __future__ import annotations

from dataclasses import dataclass

from replog.core.write_request import majority


@dataclass(frozen=True, slots=True)
class LogReport:
    secondary_id: str
    url: str
    length: int
    last_epoch: int
    sync_epoch: int
    # The newest master epoch it accepted a stream from (it refuses older ones).
    stream_epoch: int = 0
    # Its data directory's random id, and the cluster it joined (None: never joined).
    incarnation: str = ""
    cluster_id: str | None = None
    # Its process's random id (a copy of its data directory has another).
    instance: str = ""

    @property
    def rank(self) -> tuple[int, int, int]:
        return (self.sync_epoch, self.last_epoch, self.length)

    @property
    def seen_epoch(self) -> int:
        return max(self.sync_epoch, self.last_epoch, self.stream_epoch)

    @property
    def started_empty(self) -> bool:
        """A new or wiped data directory: it holds nothing anyone acknowledged."""
        return self.cluster_id is None


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    epoch: int
    # The log to fetch and adopt, or None to keep the master's own (maybe empty) log.
    source: LogReport | None
    # The cluster to belong to; None: a new cluster.
    cluster_id: str | None = None


# How a master starts (see `start_mode`).
OPEN = "open"  # with its own log, at once
LENIENT = "lenient"  # learn the log from the secondaries, lenient rules (in memory)
STRICT = "strict"  # learn it from every expected secondary with data


def start_mode(
    *,
    durable: bool,
    recover: bool,
    log_lost: bool,
    cluster_known: bool,
    log_length: int,
    recovering: bool = False,
) -> str:
    """How a master must learn its log before taking writes.

    An in-memory master has nothing of its own. A durable one trusts its log
    unless told to rebuild (`--recover`, or a recovery begun and not finished:
    `recovering`), unless its log was cut short and not yet made whole
    (`log_lost`), or unless it holds a log without the state that names its
    cluster (then it does not guess).
    """
    if not durable:
        return LENIENT
    if recover or recovering or log_lost or (not cluster_known and log_length > 0):
        return STRICT
    return OPEN


def other_cluster(ours: str | None, theirs: str | None) -> bool:
    """Do two nodes belong to different clusters? A node that has joined none
    (None) belongs to no other: it may join."""
    return ours is not None and theirs is not None and ours != theirs


def next_epoch(*seen: int) -> int:
    """A master that trusts its own log opens above every epoch it has seen."""
    return max(seen, default=0) + 1


class Recovery:
    def __init__(
        self,
        grace: float = 0.0,
        *,
        strict: bool = False,
        expected: int = 0,
        own: LogReport | None = None,
    ) -> None:
        self.grace = grace
        self.strict = strict
        # Strict: how many secondaries must report (each with data of the cluster).
        self.expected = expected
        # Strict: the master's own log (after --repair), a candidate like the others.
        self.own = own
        self.reports: dict[str, LogReport] = {}
        self._majority_since: float | None = None
        # Strict: the clusters the reporters belong to, when they are more than one.
        self.conflict: list[str] = []

    def report(self, report: LogReport) -> None:
        self.reports[report.secondary_id] = report

    def drop(self, secondary_id: str) -> None:
        """Its log could not be fetched: decide without it."""
        self.reports.pop(secondary_id, None)

    def counted(self) -> list[LogReport]:
        """The reports that count: in strict mode, only those with data of a cluster."""
        reports = list(self.reports.values())
        return [r for r in reports if not r.started_empty] if self.strict else reports

    def missing(self, cluster_size: int) -> int:
        """How many more reports recovery needs."""
        if self.strict:
            return max(0, self.expected - len(self.counted()))
        return max(0, majority(cluster_size) - 1 - len(self.reports))

    def plan(self, now: float, now_ms: int, cluster_size: int) -> RecoveryPlan | None:
        """The recovery to carry out now, or None to keep waiting."""
        if self.strict:
            return self._strict_plan()
        return self._lenient_plan(now, now_ms, cluster_size)

    def _strict_plan(self) -> RecoveryPlan | None:
        if self.missing(0) > 0:
            return None
        counted = self.counted()
        own = self.own if self.own is not None and self.own.length > 0 else None
        clusters = {r.cluster_id for r in counted}
        if own is not None and own.cluster_id is not None:
            clusters.add(own.cluster_id)
        if len(clusters) > 1:
            self.conflict = sorted(c for c in clusters if c is not None)
            return None
        self.conflict = []
        cluster_id = next(iter(clusters), None)
        if cluster_id is None and self.own is not None:
            cluster_id = self.own.cluster_id
        candidates = [*counted, *([own] if own is not None else [])]
        best = max(candidates, key=lambda r: r.rank, default=None)
        seen = [r.seen_epoch for r in counted]
        if self.own is not None:
            seen.append(self.own.seen_epoch)
        source = best if best is not None and best is not own and best.length > 0 else None
        return RecoveryPlan(epoch=next_epoch(*seen), source=source, cluster_id=cluster_id)

    def _lenient_plan(self, now: float, now_ms: int, cluster_size: int) -> RecoveryPlan | None:
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
        seen = max((r.seen_epoch for r in self.reports.values()), default=0)
        best = max(self.reports.values(), key=lambda r: r.rank, default=None)
        source = best if best is not None and best.length > 0 else None
        clusters = [r.cluster_id for r in self.reports.values() if r.cluster_id is not None]
        cluster_id = source.cluster_id if source is not None and source.cluster_id else None
        if cluster_id is None and clusters:
            cluster_id = clusters[0]
        return RecoveryPlan(epoch=max(seen + 1, now_ms), source=source, cluster_id=cluster_id)
