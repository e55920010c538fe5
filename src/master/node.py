"""The master process's glue: the core decides, this object carries it out.

It owns the `ReplicationLog`, resolves the Futures of waiting writers when the
core reports their write concern met, runs the health monitor and the start-up
recovery, and owns one replication link per secondary, made by the link
factory it is given (master.replicator's `SecondaryLink` by default; a link
sees the node only as its `LinkHost`, and runs the stream protocol with a
`core.stream.MasterStream` the node opens for it). Handlers and links call
it; it never touches sockets itself (the recovery fetch goes through the
`fetcher` it is given, `master.recovery_fetch` by default).

Time and randomness come in too (common.sources): `clock` for ages and
latencies, `wall_clock_ms` for a lenient recovery's epoch, `tokens` for a new
cluster id, `rng` for the links' backoff jitter. The defaults are the real
ones; a simulator passes its own, with a store opened on its own disk.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from replog.common import metrics, sources
from replog.common.config import ReadConfig
from replog.common.loop import cancel_and_wait
from replog.common.reads import MAJORITY, Readers
from replog.common.security import PeerClient
from replog.common.sources import Clock, Tokens, WallClockMs
from replog.core import (
    LENIENT,
    MASTER,
    OPEN,
    Appended,
    ClusterMismatch,
    Health,
    HealthPolicy,
    IdConflict,
    LogReport,
    MemberConflict,
    ReadOnly,
    Recovery,
    RecoveryPlan,
    RemovedMember,
    ReplicationLog,
    Satisfied,
    StillRecovering,
    UnknownSecondary,
    WriteConcernTimeout,
    WriteRequest,
    next_epoch,
    other_cluster,
    start_mode,
)
from replog.core.entry import Entry, PublicMessage
from replog.core.limits import MAX_ADOPTED_EPOCH
from replog.core.stream import MasterStream
from replog.master.config import MasterConfig
from replog.master.live import Changes, WriteStats
from replog.master.recovery_fetch import FetchError, check_fetched, fetch_log
from replog.master.replicator import LinkHost, SecondaryLink
from replog.storage.node_store import NodeStore, StoreError, open_store
from replog.storage.segments import gc_paused

log = structlog.get_logger("replog.master")

MEMBERSHIP = "membership.json"


def new_cluster_id(tokens: Tokens = sources.token_hex) -> str:
    return tokens(8)


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    appended: list[Appended]
    w: int
    acked_by: tuple[str, ...]
    batch: bool

    @property
    def all_duplicates(self) -> bool:
        return all(a.duplicate for a in self.appended)

    def to_json(self) -> dict:
        common = {"w": self.w, "acks": len(self.acked_by), "acked_by": list(self.acked_by)}
        if self.batch:
            return {
                "seqs": [a.entry.seq for a in self.appended],
                "count": len(self.appended),
                "duplicates": sum(a.duplicate for a in self.appended),
                **common,
            }
        (only,) = self.appended
        entry = only.entry
        return {
            "seq": entry.seq,
            "id": entry.id,
            "message": entry.message,
            **common,
            "duplicate": only.duplicate,
        }


class Link(Protocol):
    """What the node needs from a replication link to one secondary."""

    def start(self) -> None: ...

    def wake(self) -> None: ...

    def restart(self) -> None: ...

    async def stop(self) -> None: ...


# Makes the link to one secondary (tests substitute their own).
LinkFactory = Callable[[LinkHost, str, MasterConfig], Link]
# Reads a secondary's whole log, given its URL, for start-up recovery; raises FetchError.
Fetcher = Callable[[str], Awaitable[list[Entry]]]


class MasterNode:
    def __init__(
        self,
        config: MasterConfig,
        store: NodeStore | None = None,
        link_factory: LinkFactory = SecondaryLink,
        *,
        fetcher: Fetcher | None = None,
        clock: Clock = sources.monotonic,
        wall_clock_ms: WallClockMs = sources.wall_clock_ms,
        tokens: Tokens = sources.token_hex,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._link_factory = link_factory
        # Read by the links too (LinkHost): every age and deadline of this node.
        self.clock = clock
        self._wall_clock_ms = wall_clock_ms
        self._tokens = tokens
        # The links' backoff jitter.
        self.rng = rng or random.Random()
        self.store = store or open_store(data_dir=None, node=MASTER, role="master", tokens=tokens)
        self.log = ReplicationLog(
            epoch=None,
            expected_secondaries=config.secondaries,
            health=HealthPolicy(config.suspect_after, config.unhealthy_after),
        )
        self.links: dict[str, Link] = {}
        # The live page (GET /ui): rolling write stats, and a signal for its feeds.
        self.write_stats = WriteStats()
        self.changes = Changes()
        # Readers waiting for entries (GET /?wait=, GET /stream).
        self.readers = Readers(self.readable_seq)
        # The requests it dials to secondaries: the cluster token, and TLS verification.
        self.peers = PeerClient(config.cluster_token, config.tls)
        self._fetch = fetcher or self._fetch_over_http
        self.opened = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._recovering = False
        state = self.store.state
        self.cluster_id: str | None = state.get("cluster_id")
        # The highest epoch this master has opened in (persisted before opening).
        self._epoch_seen: int = state.get("epoch", 0)
        self._restore_membership()
        self.store.on_durable = self._durable
        # GET /metrics: events counted here and by the links, gauges read at scrape time.
        self.metrics = metrics.NodeMetrics("master")
        self.metrics.watch(self._gauges)
        self.store.observe_syncs(self.metrics.fsync_seconds.observe)
        self.recovery = self._recovery_needed()
        if self.recovery is None:
            self._open_with_own_log()
        # Starts as "recovering" or open; only changes are logged.
        self._read_only_reason = self.log.read_only_reason()

    # -- start-up ---------------------------------------------------------

    def _restore_membership(self) -> None:
        doc = self.store.load(MEMBERSHIP) or {}
        members = doc.get("members", [])
        fields = ("id", "url", "incarnation")
        if not isinstance(members, list) or not all(
            isinstance(m, dict) and all(isinstance(m.get(k), str) for k in fields) for m in members
        ):
            raise StoreError(f"{MEMBERSHIP} is damaged: expected members with id, url, incarnation")
        for member in members:
            self.log.restore_member(member["id"], member["url"], member["incarnation"])
        removed = doc.get("removed", [])
        if not isinstance(removed, list) or not all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r)
            for r in removed
        ):
            raise StoreError(f"{MEMBERSHIP} is damaged: expected removed as [id, incarnation]")
        self.log.removed.update((r[0], r[1]) for r in removed)

    def _save_membership(self) -> None:
        removed = sorted([r[0], r[1]] for r in self.log.removed)
        self.store.save(MEMBERSHIP, {"members": self.log.membership(), "removed": removed})

    def _recovery_needed(self) -> Recovery | None:
        """How this master must learn its log before opening, or None: it has it."""
        store = self.store
        records = store.replay.records
        log_lost = bool(store.state.get("log_lost"))
        mode = start_mode(
            durable=store.kind == "disk",
            recover=self.config.recover,
            recovering=bool(store.state.get("recovering")),
            log_lost=log_lost,
            cluster_known=self.cluster_id is not None,
            log_length=len(records),
        )
        if mode == OPEN:
            return None
        if mode == LENIENT:
            return Recovery(self.config.recovery_grace)
        own = LogReport(
            MASTER,
            "",
            len(records),
            last_epoch=records[-1][1] if records else 0,
            # A log cut short no longer holds all its epoch's opening log.
            sync_epoch=0 if log_lost else self._epoch_seen,
            stream_epoch=self._epoch_seen,
            incarnation=store.identity.incarnation,
            cluster_id=self.cluster_id,
        )
        # --secondaries says how many survivors to wait for; else every known member.
        expected = self.config.secondaries or len(self.log.secondaries)
        # Until it opens, every start must recover again (a crash midway included).
        # Not `log_lost`: a whole log keeps its rank (its sync epoch) next time.
        store.update_state(recovering=True)
        log.warning(
            "recovery_started",
            reason="--recover" if self.config.recover else "log cut short or cluster unknown",
            expected_secondaries=expected,
            own_last_seq=len(records),
        )
        return Recovery(strict=True, expected=expected, own=own)

    def _open_with_own_log(self) -> None:
        """The data directory is intact (or new): open at once, in a new epoch."""
        records = self.store.replay.records
        if self.cluster_id is None:
            self.cluster_id = new_cluster_id(self._tokens)
            log.info("cluster_created", cluster=self.cluster_id)
        last_epoch = records[-1][1] if records else 0
        self._open(records, next_epoch(self._epoch_seen, last_epoch))

    def _open(self, entries: list, epoch: int) -> None:
        """Persist the epoch (and cluster) first, then take writes in it."""
        self._epoch_seen = epoch
        self.store.update_state(
            cluster_id=self.cluster_id,
            epoch=epoch,
            opened_seq=len(entries),
            log_lost=None,
            recovering=None,
        )
        with gc_paused():
            self.log.adopt(entries, epoch)
            self.store.replay.records = []
        self.readers.notify()
        self.opened.set()
        log.info(
            "opened",
            epoch=epoch,
            last_seq=self.log.last_seq,
            cluster=self.cluster_id,
            cluster_size=self.log.cluster_size,
        )

    # -- reads -----------------------------------------------------------

    @property
    def read_config(self) -> ReadConfig:
        return self.config.reads

    def readable_seq(self, read: str) -> int:
        """What a reader sees: the durable prefix (`local`), or the commit point
        (`majority`: what no restart or failover can take back)."""
        return self.log.commit_seq if read == MAJORITY else self.log.visible_seq

    def read_page(self, start: int, limit: int | None, read: str) -> list[PublicMessage]:
        return self.log.public_page(start, limit, self.readable_seq(read))

    def committed(self) -> None:
        """The commit point advanced: wake majority readers, and let every link
        tell its secondary (a heartbeat when no append goes out)."""
        self.readers.notify()
        self.changes.notify()
        for link in self.links.values():
            link.wake()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._monitor()))
        self._maybe_recover()

    # -- client writes ---------------------------------------------------

    async def write(
        self,
        request: WriteRequest,
        track: Callable[[asyncio.Future[Satisfied]], None] | None = None,
    ) -> WriteOutcome:
        """Append (or find) the messages and wait until `request.w` nodes hold them.

        Raises core.IdConflict for a reused id with another message,
        core.ReadOnly while recovering or without quorum, and
        core.WriteConcernTimeout when wtimeout runs out. `track` receives the
        write-concern Future before the wait; cancelling it (the client went
        away) ends the wait; the entries stay and replicate.
        """
        started = self.clock()
        try:
            outcome = await self._write(request, track, started)
        except IdConflict:
            self.metrics.write(metrics.CONFLICT)
            raise
        except ReadOnly:
            self.metrics.write(metrics.READ_ONLY)
            raise
        except WriteConcernTimeout:
            self.metrics.write(metrics.TIMEOUT)
            raise
        result = metrics.DUPLICATE if outcome.all_duplicates else metrics.OK
        now = self.clock()
        self.metrics.write(result, now - started, request.w)
        self.write_stats.record(now, now - started)
        return outcome

    async def _write(
        self,
        request: WriteRequest,
        track: Callable[[asyncio.Future[Satisfied]], None] | None,
        started: float,
    ) -> WriteOutcome:
        appended = self.log.append_batch(request.items)
        self._log_appended(appended, request.w)
        # To the OS now; the store reports when it is durable (_durable).
        self.store.append([a.entry for a in appended if not a.duplicate])
        self.changes.notify()
        # Secondaries hold contiguous prefixes: holding the last seq means holding all.
        last_seq = max(a.entry.seq for a in appended)
        waiter: asyncio.Future[Satisfied] = asyncio.get_running_loop().create_future()
        satisfied = self.log.wait_for(waiter, last_seq, request.w)
        if satisfied is None:
            if track is not None:
                track(waiter)
            satisfied = await self._wait(waiter, appended, last_seq, request)
        log.info(
            "write_concern_met",
            seq=last_seq,
            w=request.w,
            acks=len(satisfied.acked_by),
            acked_by=list(satisfied.acked_by),
            latency_ms=round((self.clock() - started) * 1000, 3),
        )
        return WriteOutcome(appended, request.w, satisfied.acked_by, request.batch)

    def _log_appended(self, appended: list[Appended], w: int) -> None:
        new = [a.entry for a in appended if not a.duplicate]
        for a in appended:
            if a.duplicate:
                log.info("duplicate", seq=a.entry.seq, id=a.entry.id, w=w)
        if len(new) == 1:
            entry = new[0]
            log.info("append", seq=entry.seq, id=entry.id, w=w, bytes=len(entry.message))
        elif new:
            log.info("append", seq_from=new[0].seq, seq_to=new[-1].seq, count=len(new), w=w)

    async def _wait(
        self,
        waiter: asyncio.Future[Satisfied],
        appended: list[Appended],
        last_seq: int,
        request: WriteRequest,
    ) -> Satisfied:
        wtimeout_ms = request.wtimeout_ms
        if wtimeout_ms is None:
            wtimeout_ms = self.config.wtimeout_ms
        # Debug level: at info it would be a third event per write on the hot path.
        log.debug(
            "write_concern_waiting",
            seq=last_seq,
            w=request.w,
            acks=self.log.acks(last_seq),
            wtimeout_ms=wtimeout_ms or None,
        )
        try:
            if not wtimeout_ms:
                return await waiter
            return await asyncio.wait_for(waiter, wtimeout_ms / 1000)
        except TimeoutError:
            acked_by = self.log.ack_set(last_seq)
            log.warning(
                "write_concern_timeout",
                seq=last_seq,
                w=request.w,
                acks=len(acked_by),
                acked_by=list(acked_by),
                wtimeout_ms=wtimeout_ms,
            )
            raise WriteConcernTimeout(
                appended, request.w, acked_by, wtimeout_ms, batch=request.batch
            ) from None
        finally:
            self.log.cancel_wait(waiter)

    def _durable(self, seq: int) -> None:
        """The master's own copy of 1..seq is on disk: it now counts as a holder,
        and the secondaries may be sent it (the core streams only what is durable)."""
        before = self.log.durable_seq
        self.resolve(self.log.mark_durable(seq))
        if self.log.durable_seq > before:
            # Local readers see it now (and majority ones, if it moved the commit point).
            self.readers.notify()
            self.changes.notify()
            for link in self.links.values():
                link.wake()

    def acked(self, secondary_id: str) -> None:
        """A secondary acknowledged more of the log (the live page shows it)."""
        self.changes.notify()

    def resolve(self, satisfied: list[Satisfied]) -> None:
        """Answer the writers whose write concern is met (from the core's events)."""
        for item in satisfied:
            waiter = item.token
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.set_result(item)

    # -- secondaries -----------------------------------------------------

    def register(self, report: LogReport) -> None:
        """A secondary (re)joins. Raises ClusterMismatch for another cluster's node."""
        secondary_id = report.secondary_id
        ours, theirs = self.cluster_id, report.cluster_id
        # While recovering, the cluster is still to be decided (core.recovery).
        if self.log.epoch is not None and other_cluster(ours, theirs):
            assert ours is not None and theirs is not None
            log.error("cluster_mismatch", secondary=secondary_id, cluster=theirs, own=ours)
            raise ClusterMismatch(secondary_id, theirs, ours)
        known = secondary_id in self.links
        old_incarnation = (
            self.log.progress(secondary_id).incarnation
            if self.log.is_member(secondary_id)
            else None
        )
        try:
            changed = self.log.register(
                secondary_id,
                report.url,
                report.length,
                self.clock(),
                report.incarnation,
                report.instance,
            )
        except (MemberConflict, RemovedMember) as exc:
            # The running node keeps its id and its stream; nothing changes.
            log.warning(
                "registration_refused",
                secondary=secondary_id,
                url=report.url,
                incarnation=report.incarnation,
                reason=str(exc),
            )
            raise
        if old_incarnation not in (None, report.incarnation):
            # Its data directory is new: whatever it held before is gone, and
            # none of its earlier acknowledgements count for anything now.
            log.warning(
                "secondary_new_incarnation",
                secondary=secondary_id,
                incarnation=report.incarnation,
                previous=old_incarnation,
            )
        if changed and self.store.kind == "disk" and self.log.epoch is not None:
            # (While recovering, members are saved once it opens: a refused or
            # mistaken reporter must not stay a member for good.)
            self._save_membership()
        log.info(
            "secondary_registered",
            secondary=secondary_id,
            url=report.url,
            contiguous_seq=report.length,
            last_epoch=report.last_epoch,
            sync_epoch=report.sync_epoch,
            incarnation=report.incarnation,
            known_before=known,
            cluster_size=self.log.cluster_size,
        )
        if self.recovery is not None and self.log.epoch is None:
            self.recovery.report(report)
            self._maybe_recover()
        elif report.seen_epoch > self._epoch_seen and self.store.kind == "disk":
            if report.seen_epoch > MAX_ADOPTED_EPOCH:
                # Forged (no master ever got there): opening above it would leave no
                # room, and an epoch beyond MAX_INT is refused by every secondary.
                log.error(
                    "epoch_out_of_range",
                    secondary=secondary_id,
                    epoch=report.seen_epoch,
                    limit=MAX_ADOPTED_EPOCH,
                )
            else:
                # A newer epoch than ours (a data directory restored from an old copy?):
                # that secondary refuses this run; the next start opens above it.
                log.warning("newer_epoch_reported", secondary=secondary_id, epoch=report.seen_epoch)
                self._epoch_seen = report.seen_epoch
                self.store.update_state(epoch=report.seen_epoch)
        self.changes.notify()
        link = self.links.get(secondary_id)
        if link is None:
            link = self._link_factory(self, secondary_id, self.config)
            self.links[secondary_id] = link
            link.start()
        else:
            # Serve it at once: drop any stale stream, skip the backoff.
            link.restart()

    async def remove(self, secondary_id: str) -> None:
        """Take a member out of the cluster (DELETE /secondaries/<id>).

        Raises StillRecovering before the log has opened, UnknownSecondary for an id
        that names no member."""
        if self.log.epoch is None:
            raise StillRecovering()
        if not self.log.is_member(secondary_id):
            raise UnknownSecondary(secondary_id)
        # The core first: from here on nothing about it counts, and it cannot register again.
        commit_before = self.log.commit_seq
        self.log.remove(secondary_id)
        if self.log.commit_seq > commit_before:
            self.committed()  # N shrank: a majority may hold more
        if self.store.kind == "disk":
            self._save_membership()
        log.warning(
            "secondary_removed",
            secondary=secondary_id,
            cluster_size=self.log.cluster_size,
            expected_secondaries=self.log.expected_secondaries,
        )
        self._check_health()  # quorum and N changed
        self.changes.notify()
        self.metrics.forget(secondary_id)
        link = self.links.pop(secondary_id, None)
        if link is not None:
            await link.stop()

    def url_of(self, secondary_id: str) -> str | None:
        """The secondary's URL; None once it has been removed."""
        if not self.log.is_member(secondary_id):
            return None
        return self.log.progress(secondary_id).url

    def open_stream(self, secondary_id: str) -> MasterStream:
        """The protocol state of one connection session of a link (core.stream)."""
        return MasterStream(self.log, secondary_id, self.config.heartbeat_interval)

    # -- health, quorum, recovery -----------------------------------------

    async def _monitor(self) -> None:
        while True:
            self._check_health()
            self._maybe_recover()
            await asyncio.sleep(self.config.heartbeat_interval)

    def _check_health(self) -> None:
        changes = self.log.update_health(self.clock())
        if changes:
            self.changes.notify()
        for change in changes:
            log.info(
                "secondary_status",
                secondary=change.secondary_id,
                before=change.before,
                after=change.after,
            )
            link = self.links.get(change.secondary_id)
            if link is not None and change.after == Health.UNHEALTHY:
                # Let its stream look now: dropping a silent secondary's stream is
                # the stream's decision (core.stream.MasterStream.poll).
                link.wake()
        reason = self.log.read_only_reason()
        if reason != self._read_only_reason:
            if reason is None:
                log.info("read_only_left", epoch=self.log.epoch, nodes_up=self.log.nodes_up)
            else:
                log.warning("read_only_entered", reason=reason, nodes_up=self.log.nodes_up)
            self._read_only_reason = reason
            self.changes.notify()

    def _maybe_recover(self) -> None:
        if self.recovery is None or self.log.epoch is not None or self._recovering:
            return
        plan = self.recovery.plan(self.clock(), self._wall_clock_ms(), self.log.cluster_size)
        if plan is None:
            if self.recovery.conflict:
                log.error("recovery_conflict", clusters=self.recovery.conflict)
            return
        self._recovering = True
        self._tasks.append(asyncio.get_running_loop().create_task(self._recover(plan)))

    async def _recover(self, plan: RecoveryPlan) -> None:
        assert self.recovery is not None
        try:
            entries: list = []
            if plan.source is not None:
                log.info(
                    "recovery_fetch",
                    secondary=plan.source.secondary_id,
                    length=plan.source.length,
                    sync_epoch=plan.source.sync_epoch,
                    last_epoch=plan.source.last_epoch,
                    reports=len(self.recovery.reports),
                )
                try:
                    entries = await self._fetch(plan.source.url)
                    check_fetched(entries, plan.source)
                except FetchError as exc:
                    log.warning(
                        "recovery_fetch_failed", secondary=plan.source.secondary_id, error=str(exc)
                    )
                    self.recovery.drop(plan.source.secondary_id)
                    return
                self.store.reset(entries)
            elif self.recovery.strict:
                entries = self.store.replay.records  # its own log won, and it is on disk
            else:
                self.store.reset([])
            self.cluster_id = plan.cluster_id or self.cluster_id or new_cluster_id(self._tokens)
            self._open(entries, max(plan.epoch, self._epoch_seen + 1))
            if self.store.kind == "disk":
                self._save_membership()
            log.info(
                "recovered",
                epoch=plan.epoch,
                last_seq=self.log.last_seq,
                source=plan.source.secondary_id if plan.source else None,
                reports=sorted(self.recovery.reports),
                cluster=self.cluster_id,
            )
            self.recovery = None
            self._check_health()
        finally:
            self._recovering = False

    def _fetch_over_http(self, url: str) -> Awaitable[list[Entry]]:
        """The default fetcher: page through GET /replication/log with the cluster token."""
        return fetch_log(url, self.peers)

    def ready_reason(self) -> str | None:
        """Why this master cannot take writes now (`GET /readyz`), or None: it can."""
        return self.log.read_only_reason()

    def _gauges(self) -> list:
        """The master's gauges, read from the core at scrape time."""
        log_ = self.log
        return metrics.master_gauges(
            last_seq=log_.last_seq,
            durable_seq=log_.durable_seq,
            commit_seq=log_.commit_seq,
            read_only=log_.read_only_reason() is not None,
            secondaries=[(p.secondary_id, p.acked_seq, p.status) for p in log_.secondaries],
        )

    def node_status(self) -> str:
        """`ok`, `read_only` or `recovering` (`/health`, the live page)."""
        if self.log.epoch is None:
            return "recovering"
        return "ok" if self.log.read_only_reason() is None else "read_only"

    def secondary_views(self, now: float) -> list[dict]:
        """Each secondary as `/health` and the live page show it."""
        last_seq = self.log.last_seq
        return [
            {
                "id": p.secondary_id,
                "url": p.url,
                "status": p.status,
                "acked_seq": p.acked_seq,
                "lag": max(0, last_seq - p.acked_seq),
                "last_heartbeat_ms_ago": (
                    None if p.last_heard is None else round((now - p.last_heard) * 1000)
                ),
            }
            for p in self.log.secondaries
        ]

    def health(self) -> dict:
        now = self.clock()
        last_seq = self.log.last_seq
        secondaries = self.secondary_views(now)
        reason = self.log.read_only_reason()
        status = self.node_status()
        return {
            "role": "master",
            "status": status,
            "cluster_id": self.cluster_id,
            "storage": self.store.kind,
            "data_dir": None if self.store.data_dir is None else str(self.store.data_dir),
            "fsync": self.config.storage.fsync if self.store.kind == "disk" else None,
            "durable_seq": self.log.durable_seq,
            "sync": self.store.sync_stats(),
            "recovery": self._recovery_status(),
            "quorum": self.log.quorum,
            "read_only": reason is not None,
            "read_only_reason": reason,
            "epoch": self.log.epoch,
            "cluster_size": self.log.cluster_size,
            "nodes_up": self.log.nodes_up,
            "last_seq": last_seq,
            "commit_seq": self.log.commit_seq,
            "secondaries": secondaries,
            "auth": self.config.cluster_token is not None,
            "tls": self.config.tls.enabled,
        }

    def _recovery_status(self) -> dict | None:
        recovery = self.recovery
        if recovery is None:
            return None
        return {
            "mode": "strict" if recovery.strict else "lenient",
            "reported": sorted(recovery.reports),
            "missing": recovery.missing(self.log.cluster_size),
            "conflict": recovery.conflict or None,
        }

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        await asyncio.gather(*(link.stop() for link in self.links.values()))
