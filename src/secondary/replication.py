"""The secondary's side of one replication stream, whatever carries its frames.

`ReplicationSession` does what the core's `SecondaryStream` decides: it
decodes each frame (common.wire), hands it to the stream, and carries out the
effects (sync the log, apply a batch now or after --delay, send an ACK, drop
the stream). Moving the frames is its `Pipe`'s job: the WebSocket handler
(secondary.handlers.ReplicationHandler) in the server, a byte pipe in a
simulator; both run this same class. The --delay timer is armed on the
running event loop (a simulated loop's virtual time, in a simulator).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import structlog

from replog.common import wire
from replog.common.ws import POLICY_VIOLATION, PROTOCOL_ERROR
from replog.core import Entry
from replog.core.limits import MAX_INFLIGHT_BATCHES
from replog.core.stream import (
    ApplyEntries,
    ApplySync,
    Close,
    CloseKind,
    Committed,
    Heard,
    Message,
    Refusal,
    RefusalCause,
    SecondaryStream,
    Send,
)
from replog.secondary.node import SecondaryNode

log = structlog.get_logger("replog.secondary")

# How a dropped stream is closed (core.stream.CloseKind): WebSocket close code and reason.
CLOSE_CODE = {
    CloseKind.PROTOCOL: (PROTOCOL_ERROR, "bad message"),
    CloseKind.BOUND: (POLICY_VIOLATION, "beyond a bound"),
}


class Pipe(Protocol):
    """The connection under a session."""

    def send(self, frame: bytes) -> None:
        """Send one encoded frame; on a closed connection, drop it (the next stream's
        hello reports our progress)."""

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection (a WebSocket close code and reason)."""


class ReplicationSession:
    """One replication stream from the master, on a `Pipe`.

    Call `accept` with the dial's query, then `open` once the connection is
    up, `receive` with each frame, and `closed` when the connection ends. It
    is the node's attached `Stream` while it is the newest one.
    """

    def __init__(self, node: SecondaryNode, pipe: Pipe) -> None:
        self.node = node
        self.pipe = pipe
        # This connection's side of the stream protocol (the rules live there).
        self.replication = SecondaryStream(node.config.secondary_id, node.follower)
        # Batches held by --delay (each a task sleeping on the loop).
        self._delayed: set[asyncio.Task[None]] = set()

    def accept(
        self,
        *,
        epoch: str,
        secondary: str | None,
        cluster: str,
        max_frame: str | None,
        websocket: bool = True,
    ) -> Refusal | None:
        """The dial (its raw query): None to take it, else the refusal (logged here
        when it names a cluster mismatch or a stale master)."""
        refused = self.replication.accept(
            epoch=epoch,
            secondary=secondary,
            cluster=cluster,
            max_frame=max_frame,
            own_cluster=self.node.cluster_id,
            websocket=websocket,
        )
        if refused is None:
            return None
        if refused.cause is RefusalCause.CLUSTER_MISMATCH:
            log.error(
                "cluster_mismatch", cluster=self.replication.cluster_id, own=self.node.cluster_id
            )
        elif refused.cause is RefusalCause.STALE_MASTER:
            log.warning(
                "stale_master_refused",
                epoch=self.replication.epoch,
                sync_epoch=self.node.follower.sync_epoch,
            )
        return refused

    def open(self) -> None:
        """The connection is up: join the cluster, become the node's stream, say hello."""
        limit = self.node.config.max_frame_bytes
        announced = self.replication.master_frame_limit
        if announced is not None and announced > limit:
            log.warning(
                "frame_limit_below_master",
                master_frame_bytes=announced,
                limit=limit,
                reason="the master may send frames this secondary refuses: set "
                "--max-entry-bytes to the master's --max-body-bytes",
            )
        if self.replication.cluster_id:
            self.node.join(self.replication.cluster_id)
        self.node.attach_stream(self)
        self._send(self.replication.hello(self.node.store.identity.incarnation))

    def receive(self, frame: str | bytes) -> None:
        """One frame from the master."""
        if self.node.stream is not self or self.replication.dropped:
            return  # replaced by a newer stream, or being dropped
        try:
            decoded = wire.decode_message(frame, "append", "heartbeat", "sync")
        except wire.WireError as exc:
            self._close(self.replication.drop(str(exc), exc.frame))
            return
        for effect in self.replication.receive(decoded):
            if isinstance(effect, Heard):
                self.node.heard_from_master()
            elif isinstance(effect, ApplySync):
                sync = effect.sync
                self.send_ack(self.node.sync(sync.epoch, sync.keep, sync.epoch_start))
            elif isinstance(effect, ApplyEntries):
                self._receive(effect.entries)
            elif isinstance(effect, Send):
                self._send(effect.message)
            elif isinstance(effect, Committed):
                self.node.committed()
            elif isinstance(effect, Close):
                self._close(effect)

    def drop(
        self, reason: str, frame: str | None = None, kind: CloseKind = CloseKind.PROTOCOL
    ) -> None:
        """End this stream over a frame no correct master sends; the master dials again
        and resumes from our next hello."""
        self._close(self.replication.drop(reason, frame, kind))

    def closed(self, refused_frame_bytes: int | None = None, limit: int | None = None) -> None:
        """The connection ended; `refused_frame_bytes`: it ended over a frame of that
        size, over `limit`, refused unread by the transport."""
        if refused_frame_bytes is not None and not self.replication.dropped:
            self.replication.dropped = True
            log.warning(
                "bad_replication_message",
                reason=f"frame of {refused_frame_bytes} bytes, over {limit}, the most this "
                f"secondary accepts (--max-entry-bytes {self.node.config.max_entry_bytes}): "
                "refused unread",
                frame=None,
                limit=limit,
                epoch=self.replication.epoch,
                contiguous_seq=self.node.follower.contiguous_seq,
            )
        # Batches still held by the delay die with their stream: the next
        # stream's hello reports what we hold and the master resends the rest.
        for task in self._delayed:
            task.cancel()
        self.node.detach_stream(self)

    # -- the node's Stream ----------------------------------------------------

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.pipe.close(code, reason)

    def send_ack(self, durable_seq: int) -> None:
        ack = self.replication.ack(durable_seq)
        if ack is not None:
            self._send(ack)

    # -- effects ----------------------------------------------------------------

    def _close(self, close: Close | None) -> None:
        if close is None:
            return  # dropped already
        for task in self._delayed:
            task.cancel()  # a dropped stream applies nothing more
        log.warning(
            "bad_replication_message",
            reason=close.reason,
            frame=close.frame,
            epoch=self.replication.epoch,
            contiguous_seq=self.node.follower.contiguous_seq,
        )
        self.pipe.close(*CLOSE_CODE[close.kind])

    def _receive(self, entries: Sequence[Entry]) -> None:
        if entries and self.node.config.delay > 0:
            # Only worth an event when applying waits; otherwise `applied` says it.
            log.info(
                "replication_received",
                seq_from=entries[0].seq,
                seq_to=entries[-1].seq,
                count=len(entries),
                delay_s=self.node.config.delay,
            )
        if self.node.config.delay > 0:
            if len(self._delayed) >= MAX_INFLIGHT_BATCHES:
                # The master never has more unacknowledged batches in flight.
                self.drop(
                    f"more than {MAX_INFLIGHT_BATCHES} batches held by --delay at once",
                    frame="append",
                    kind=CloseKind.BOUND,
                )
                return
            task = asyncio.get_running_loop().create_task(self._apply_later(entries))
            self._delayed.add(task)
            task.add_done_callback(self._delayed.discard)
        else:
            self._apply(entries)

    async def _apply_later(self, entries: Sequence[Entry]) -> None:
        # The artificial delay: hold the batch before applying and acknowledging it.
        await asyncio.sleep(self.node.config.delay)
        # No longer held (before its ACK can let the master send another batch).
        task = asyncio.current_task()
        if task is not None:
            self._delayed.discard(task)
        self._apply(entries)

    def _apply(self, entries: Sequence[Entry]) -> None:
        # The node acknowledges once what this adds is on disk.
        result = self.node.apply(entries, self.replication.epoch)
        if result is not None and result.refused is not None:
            # Beyond the buffer's bounds: the core discarded the buffer, nothing was applied.
            self.drop(result.refused, frame="append", kind=CloseKind.BOUND)

    def _send(self, message: Message) -> None:
        self.pipe.send(wire.encode(message))
