"""The master process's glue: the core decides, this object carries it out.

It owns the `ReplicationLog`, resolves the Futures of waiting writers when the
core reports their write concern met, runs the health monitor and the start-up
recovery, and owns one replication link per secondary. Handlers and links
call it; it never touches sockets itself (the recovery fetch goes through
`master.recovery_fetch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from core import (
    UNHEALTHY,
    Appended,
    Batch,
    HealthPolicy,
    LogReport,
    Recovery,
    ReplicationLog,
    Satisfied,
    WriteRequest,
)
from core.entry import Entry
from master.config import MasterConfig
from master.recovery_fetch import FetchError, check_fetched, fetch_log
from master.replicator import SecondaryLink

log = structlog.get_logger("replog.master")


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


class WriteConcernTimeout(Exception):
    """`w` was not reached within wtimeout; the entries stay and keep replicating."""

    def __init__(
        self, appended: list[Appended], w: int, acked_by: tuple[str, ...], wtimeout_ms: int
    ) -> None:
        super().__init__(appended[-1].entry.seq)
        self.appended = appended
        self.w = w
        self.acked_by = acked_by
        self.wtimeout_ms = wtimeout_ms


class MasterNode:
    def __init__(self, config: MasterConfig) -> None:
        self.config = config
        self.log = ReplicationLog(
            epoch=None,
            expected_secondaries=config.secondaries,
            health=HealthPolicy(config.suspect_after, config.unhealthy_after),
        )
        self.recovery = Recovery(config.recovery_grace)
        self.links: dict[str, SecondaryLink] = {}
        self.opened = asyncio.Event()
        # Starts as "recovering"; only changes are logged.
        self._read_only_reason = self.log.read_only_reason()
        self._tasks: list[asyncio.Task[None]] = []
        self._recovering = False

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
        WriteConcernTimeout when wtimeout runs out. `track` receives the
        write-concern Future before the wait; cancelling it (the client went
        away) ends the wait; the entries stay and replicate.
        """
        started = time.monotonic()
        appended = self.log.append_batch(request.items)
        self._log_appended(appended, request.w)
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
            latency_ms=round((time.monotonic() - started) * 1000, 3),
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
        if new:
            for link in self.links.values():
                link.wake()

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
            raise WriteConcernTimeout(appended, request.w, acked_by, wtimeout_ms) from None
        finally:
            self.log.cancel_wait(waiter)

    def _resolve(self, satisfied: list[Satisfied]) -> None:
        for item in satisfied:
            waiter = item.token
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.set_result(item)

    # -- secondaries -----------------------------------------------------

    def register(self, report: LogReport) -> None:
        secondary_id = report.secondary_id
        known = secondary_id in self.links
        self.log.register(secondary_id, report.url, report.length, time.monotonic())
        log.info(
            "secondary_registered",
            secondary=secondary_id,
            url=report.url,
            contiguous_seq=report.length,
            last_epoch=report.last_epoch,
            sync_epoch=report.sync_epoch,
            known_before=known,
            cluster_size=self.log.cluster_size,
        )
        if self.log.epoch is None:
            self.recovery.report(report)
            self._maybe_recover()
        link = self.links.get(secondary_id)
        if link is None:
            link = SecondaryLink(self, secondary_id, self.config)
            self.links[secondary_id] = link
            link.start()
        else:
            # Serve it at once: drop any stale stream, skip the backoff.
            link.restart()

    def url_of(self, secondary_id: str) -> str:
        return self.log.progress(secondary_id).url

    def stream_opened(self, secondary_id: str, hello: dict) -> tuple[int, int]:
        """Match the secondary's log against ours; returns (epoch, keep) for `sync`."""
        assert self.log.epoch is not None
        length = hello["contiguous_seq"]
        keep = self.log.matching_prefix(hello["epoch_runs"], length)
        self._resolve(self.log.stream_opened(secondary_id, keep, time.monotonic()))
        if keep < length:
            log.warning(
                "secondary_log_truncated",
                secondary=secondary_id,
                keep=keep,
                seq_from=keep + 1,
                seq_to=length,
                discarded=length - keep,
            )
        log.info(
            "stream_opened",
            secondary=secondary_id,
            contiguous_seq=length,
            keep=keep,
            last_seq=self.log.last_seq,
            epoch=self.log.epoch,
        )
        return self.log.epoch, keep

    def stream_closed(self, secondary_id: str, was_open: bool) -> None:
        if was_open:
            progress = self.log.progress(secondary_id)
            log.info("stream_closed", secondary=secondary_id, acked_seq=progress.acked_seq)
        self.log.stream_closed(secondary_id)

    def next_batch(self, secondary_id: str) -> Batch | None:
        batch = self.log.next_batch(secondary_id)
        if batch is not None:
            log.info(
                "replication_send",
                secondary=secondary_id,
                seq_from=batch.seq_from,
                seq_to=batch.seq_to,
                count=len(batch.items),
            )
        return batch

    def acked(self, secondary_id: str, contiguous_seq: int) -> None:
        before = self.log.progress(secondary_id).acked_seq
        satisfied = self.log.record_ack(secondary_id, contiguous_seq, time.monotonic())
        after = self.log.progress(secondary_id).acked_seq
        if after > before:
            log.info(
                "ack",
                secondary=secondary_id,
                seq_from=before + 1,
                seq_to=after,
                acked_seq=after,
            )
        self._resolve(satisfied)

    def status_of(self, secondary_id: str) -> str:
        """Judged now: a stream that just opened must not be dropped on a stale verdict."""
        return self.log.current_status(secondary_id, time.monotonic())

    # -- health, quorum, recovery -----------------------------------------

    async def _monitor(self) -> None:
        while True:
            self._check_health()
            self._maybe_recover()
            await asyncio.sleep(self.config.heartbeat_interval)

    def _check_health(self) -> None:
        for change in self.log.update_health(time.monotonic()):
            log.info(
                "secondary_status",
                secondary=change.secondary_id,
                before=change.before,
                after=change.after,
            )
            link = self.links.get(change.secondary_id)
            if link is not None and change.after == UNHEALTHY:
                # Silent too long: the connection may be dead without knowing it
                # (a cut link sends no RST), and a blocked write would never end.
                link.drop_connection()
        reason = self.log.read_only_reason()
        if reason != self._read_only_reason:
            if reason is None:
                log.info("read_only_left", epoch=self.log.epoch, nodes_up=self.log.nodes_up)
            else:
                log.warning("read_only_entered", reason=reason, nodes_up=self.log.nodes_up)
            self._read_only_reason = reason

    def _maybe_recover(self) -> None:
        if self.log.epoch is not None or self._recovering:
            return
        plan = self.recovery.plan(
            time.monotonic(), time.time_ns() // 1_000_000, self.log.cluster_size
        )
        if plan is None:
            return
        self._recovering = True
        self._tasks.append(asyncio.get_running_loop().create_task(self._recover(plan)))

    async def _recover(self, plan) -> None:  # type: ignore[no-untyped-def]
        try:
            entries: list[Entry] = []
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
                    entries = await fetch_log(plan.source.url)
                    check_fetched(entries, plan.source)
                except FetchError as exc:
                    log.warning(
                        "recovery_fetch_failed", secondary=plan.source.secondary_id, error=str(exc)
                    )
                    self.recovery.drop(plan.source.secondary_id)
                    return
            self.log.adopt(entries, plan.epoch)
            log.info(
                "recovered",
                epoch=plan.epoch,
                last_seq=self.log.last_seq,
                source=plan.source.secondary_id if plan.source else None,
                reports=sorted(self.recovery.reports),
            )
            self.opened.set()
            self._check_health()
        finally:
            self._recovering = False

    def health(self) -> dict:
        now = time.monotonic()
        last_seq = self.log.last_seq
        secondaries = [
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
        reason = self.log.read_only_reason()
        status = "ok" if reason is None else "read_only"
        if self.log.epoch is None:
            status = "recovering"
        return {
            "role": "master",
            "status": status,
            "quorum": self.log.quorum,
            "read_only": reason is not None,
            "read_only_reason": reason,
            "epoch": self.log.epoch,
            "cluster_size": self.log.cluster_size,
            "nodes_up": self.log.nodes_up,
            "last_seq": last_seq,
            "secondaries": secondaries,
        }

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(link.stop() for link in self.links.values()))
