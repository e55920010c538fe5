"""The secondary process's glue: the follower log plus who is streaming to it."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import structlog

from core import Entry, FollowerLog
from secondary.config import SecondaryConfig

log = structlog.get_logger("replog.secondary")


class Stream(Protocol):
    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class SecondaryNode:
    def __init__(self, config: SecondaryConfig) -> None:
        self.config = config
        self.follower = FollowerLog()
        self.stream: Stream | None = None
        # Set whenever a stream starts or ends: the registrar watches it.
        self.stream_changed = asyncio.Event()
        self.last_heard_from_master = time.monotonic()

    def accepts_master(self, epoch: int) -> bool:
        """A master older than one we already followed is a stale one."""
        return epoch >= max(self.follower.stream_epoch, self.follower.sync_epoch)

    def attach_stream(self, stream: Stream) -> None:
        """The master opened a replication stream; only the newest one is kept."""
        previous, self.stream = self.stream, stream
        self.last_heard_from_master = time.monotonic()
        if previous is not None:
            previous.close()
        self.stream_changed.set()
        log.info("stream_attached", contiguous_seq=self.follower.contiguous_seq)

    def detach_stream(self, stream: Stream) -> None:
        if self.stream is stream:
            self.stream = None
            self.stream_changed.set()
            log.info("stream_detached", contiguous_seq=self.follower.contiguous_seq)

    def heard_from_master(self) -> None:
        self.last_heard_from_master = time.monotonic()

    def master_silent_for(self) -> float:
        return time.monotonic() - self.last_heard_from_master

    def sync(self, epoch: int, keep: int, epoch_start: int) -> int:
        """The master's verdict on our log: keep 1..keep, follow epoch `epoch`."""
        discarded = self.follower.sync(epoch, keep, epoch_start)
        if discarded:
            log.warning(
                "log_truncated",
                epoch=epoch,
                keep=keep,
                seq_from=discarded[0],
                seq_to=discarded[-1],
                discarded_seqs=discarded,
            )
        log.info("synced", epoch=epoch, keep=keep, epoch_start=epoch_start)
        return self.follower.contiguous_seq

    def apply(self, entries: list[Entry], epoch: int) -> int:
        """Apply a replicated batch; returns the contiguous seq to acknowledge."""
        if not entries:
            return self.follower.contiguous_seq
        result = self.follower.apply(entries, epoch)
        if result.stale:
            log.warning(
                "stale_batch_dropped",
                epoch=epoch,
                stream_epoch=self.follower.stream_epoch,
                seq_from=entries[0].seq,
                seq_to=entries[-1].seq,
            )
        if result.applied:
            log.info(
                "applied",
                seq_from=result.applied[0],
                seq_to=result.applied[-1],
                count=len(result.applied),
                contiguous_seq=self.follower.contiguous_seq,
            )
        if result.buffered:
            log.info(
                "buffered_out_of_order",
                seqs=result.buffered,
                contiguous_seq=self.follower.contiguous_seq,
                buffered=len(self.follower.out_of_order),
            )
        if result.duplicates:
            log.info(
                "duplicate_ignored",
                seqs=result.duplicates,
                seq_from=result.duplicates[0],
                seq_to=result.duplicates[-1],
            )
        if result.conflicts:
            log.warning("conflict_ignored", seqs=result.conflicts)
        return self.follower.contiguous_seq

    def report(self) -> dict:
        """What registration tells the master about our log."""
        follower = self.follower
        return {
            "id": self.config.secondary_id,
            "url": self.config.url,
            "contiguous_seq": follower.contiguous_seq,
            "last_epoch": follower.last_epoch,
            "sync_epoch": follower.sync_epoch,
            "stream_epoch": follower.stream_epoch,
        }
