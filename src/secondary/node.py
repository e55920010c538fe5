"""The secondary process's glue: the follower log plus who is streaming to it."""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog

from core import Entry, FollowerLog
from secondary.config import SecondaryConfig

log = structlog.get_logger("replog.secondary")


class Stream(Protocol):
    def close(self) -> None: ...


class SecondaryNode:
    def __init__(self, config: SecondaryConfig) -> None:
        self.config = config
        self.follower = FollowerLog()
        self.stream: Stream | None = None
        # Set whenever a stream starts or ends: the registrar watches it.
        self.stream_changed = asyncio.Event()

    def attach_stream(self, stream: Stream) -> None:
        """The master opened a replication stream; only the newest one is kept."""
        previous, self.stream = self.stream, stream
        if previous is not None:
            previous.close()
        self.stream_changed.set()
        log.info("stream_attached", contiguous_seq=self.follower.contiguous_seq)

    def detach_stream(self, stream: Stream) -> None:
        if self.stream is stream:
            self.stream = None
            self.stream_changed.set()
            log.info("stream_detached", contiguous_seq=self.follower.contiguous_seq)

    def apply(self, entries: list[Entry]) -> int:
        """Apply a replicated batch; returns the contiguous seq to acknowledge."""
        if not entries:
            return self.follower.contiguous_seq
        result = self.follower.apply(entries)
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
