"""The master process's glue: the core decides, this object carries it out.

It owns the `ReplicationLog`, resolves the Futures of waiting writers when the
core reports their write concern met, and owns one replication link per
secondary. Handlers and links call it; it never touches sockets itself.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from core import Batch, ReplicationLog, Satisfied, WriteRequest
from core.entry import Entry
from master.config import MasterConfig
from master.replicator import SecondaryLink

log = structlog.get_logger("replog.master")


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    entry: Entry
    w: int
    acked_by: tuple[str, ...]
    duplicate: bool

    def to_json(self) -> dict:
        return {
            "seq": self.entry.seq,
            "id": self.entry.id,
            "message": self.entry.message,
            "w": self.w,
            "acks": len(self.acked_by),
            "acked_by": list(self.acked_by),
            "duplicate": self.duplicate,
        }


class MasterNode:
    def __init__(self, config: MasterConfig) -> None:
        self.config = config
        self.log = ReplicationLog(expected_secondaries=config.secondaries)
        self.links: dict[str, SecondaryLink] = {}

    # -- client writes ---------------------------------------------------

    async def write(self, request: WriteRequest) -> WriteOutcome:
        """Append (or find) the message and wait until `request.w` nodes hold it.

        Raises core.IdConflict for a reused id with another message. Cancelling
        the caller (client went away) drops the waiter; the entry stays and
        keeps replicating.
        """
        started = time.monotonic()
        appended = self.log.append(request.message, request.id)
        entry = appended.entry
        if appended.duplicate:
            log.info("duplicate", seq=entry.seq, id=entry.id, w=request.w)
        else:
            log.info("append", seq=entry.seq, id=entry.id, w=request.w, bytes=len(entry.message))
            for link in self.links.values():
                link.wake()
        waiter: asyncio.Future[Satisfied] = asyncio.get_running_loop().create_future()
        satisfied = self.log.wait_for(waiter, entry.seq, request.w)
        if satisfied is None:
            log.info(
                "write_concern_waiting", seq=entry.seq, w=request.w, acks=self.log.acks(entry.seq)
            )
            try:
                satisfied = await waiter
            finally:
                self.log.cancel_wait(waiter)
        latency_ms = round((time.monotonic() - started) * 1000, 3)
        log.info(
            "write_concern_met",
            seq=entry.seq,
            w=request.w,
            acks=len(satisfied.acked_by),
            acked_by=list(satisfied.acked_by),
            latency_ms=latency_ms,
        )
        return WriteOutcome(entry, request.w, satisfied.acked_by, appended.duplicate)

    def _resolve(self, satisfied: list[Satisfied]) -> None:
        for item in satisfied:
            waiter = item.token
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.set_result(item)

    # -- secondaries -----------------------------------------------------

    def register(self, secondary_id: str, url: str, contiguous_seq: int) -> None:
        known = secondary_id in self.links
        self._resolve(self.log.register(secondary_id, url, contiguous_seq))
        log.info(
            "secondary_registered",
            secondary=secondary_id,
            url=url,
            contiguous_seq=contiguous_seq,
            known_before=known,
            cluster_size=self.log.cluster_size,
        )
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

    def stream_opened(self, secondary_id: str, contiguous_seq: int) -> None:
        self._resolve(self.log.stream_opened(secondary_id, contiguous_seq))
        log.info(
            "stream_opened",
            secondary=secondary_id,
            contiguous_seq=contiguous_seq,
            last_seq=self.log.last_seq,
        )

    def stream_closed(self, secondary_id: str) -> None:
        progress = self.log.progress(secondary_id)
        if progress.connected:
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
                count=len(batch.entries),
            )
        return batch

    def acked(self, secondary_id: str, contiguous_seq: int) -> None:
        before = self.log.progress(secondary_id).acked_seq
        satisfied = self.log.record_ack(secondary_id, contiguous_seq)
        after = self.log.progress(secondary_id).acked_seq
        if after > before:
            log.info(
                "ack", secondary=secondary_id, seq_from=before + 1, seq_to=after, acked_seq=after
            )
        self._resolve(satisfied)

    def health(self) -> dict:
        last_seq = self.log.last_seq
        secondaries = [
            {
                "id": p.secondary_id,
                "url": p.url,
                "status": "healthy" if p.connected else "unhealthy",
                "acked_seq": p.acked_seq,
                "lag": last_seq - p.acked_seq,
            }
            for p in self.log.secondaries
        ]
        return {
            "role": "master",
            "status": "ok",
            "cluster_size": self.log.cluster_size,
            "last_seq": last_seq,
            "secondaries": secondaries,
        }

    async def stop(self) -> None:
        await asyncio.gather(*(link.stop() for link in self.links.values()))
