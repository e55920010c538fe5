"""The secondary process's glue: the follower log, its storage, and who is streaming to it.

Time and randomness come in (common.sources): `clock` for the master's
silence, `tokens` for this process's instance id, `rng` for the registrar's
backoff jitter; the real ones by default, a simulator's own otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from typing import Protocol

import structlog

from replog.common import metrics, sources
from replog.common.config import ReadConfig
from replog.common.reads import MAJORITY, Readers
from replog.common.sources import Clock, Tokens
from replog.core import ApplyResult, Entry, FollowerLog
from replog.core.entry import PublicMessage
from replog.core.limits import MAX_INFLIGHT_BATCHES
from replog.secondary.config import SecondaryConfig
from replog.storage.node_store import NodeStore, StoreError, open_store
from replog.storage.segments import gc_paused

log = structlog.get_logger("replog.secondary")


class Stream(Protocol):
    def close(self, code: int | None = None, reason: str | None = None) -> None: ...

    def send_ack(self, durable_seq: int) -> None: ...


class SecondaryNode:
    def __init__(
        self,
        config: SecondaryConfig,
        store: NodeStore | None = None,
        *,
        clock: Clock = sources.monotonic,
        tokens: Tokens = sources.token_hex,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        # The registrar's backoff jitter.
        self.rng = rng or random.Random()
        self.store = store or open_store(
            data_dir=None, node=config.secondary_id, role="secondary", tokens=tokens
        )
        # This process's random id: a copy of our data directory (same incarnation)
        # running elsewhere registers with another one, and cannot take our id.
        self.instance = tokens(8)
        # Entries ahead of a gap came in at most as many frames as the master
        # keeps in flight (core.limits): the buffer holds no more bytes than those.
        self.follower = FollowerLog(
            max_buffered_bytes=MAX_INFLIGHT_BATCHES * config.max_frame_bytes
        )
        # Readers waiting for entries (GET /?wait=, GET /stream).
        self.readers = Readers(self.readable_seq)
        self.stream: Stream | None = None
        # The master's last refusal of our registration (the registrar's event and the
        # master's error), until a registration succeeds: /readyz names it.
        self.registration_refused: str | None = None
        # Set whenever a stream starts or ends: the registrar watches it.
        self.stream_changed = asyncio.Event()
        # Set whenever the durable prefix grows (`settle` waits on it).
        self.durable_changed = asyncio.Event()
        self.last_heard_from_master = clock()
        self.cluster_id: str | None = None
        self.stopped = False
        self._restore()
        self.store.on_durable = self._durable
        # GET /metrics: events counted here, gauges read at scrape time.
        self.metrics = metrics.NodeMetrics("secondary")
        self.metrics.watch(self._gauges)
        self.store.observe_syncs(self.metrics.fsync_seconds.observe)

    def _restore(self) -> None:
        store = self.store
        state = store.state
        self.cluster_id = state.get("cluster_id")
        records = store.replay.records
        if records and self.cluster_id is None:
            if not self.config.storage.repair:
                raise StoreError(
                    f"{store.data_dir} holds a log but no cluster id (state.json is lost?): "
                    "start with --repair to discard the log and be refilled by the master"
                )
            store.truncate(0)
            records = []
        # A log cut short (--repair, lost files) no longer holds all it synced with.
        sync_epoch = 0 if state.get("log_lost") else state.get("sync_epoch", 0)
        with gc_paused():
            entries = [tuple.__new__(Entry, record) for record in records]
            store.replay.records = records = []
            self.follower.restore(entries, state.get("stream_epoch", 0), sync_epoch)
        self._save_state()

    def _save_state(self) -> None:
        """Persist what must survive a restart (written only when it changed)."""
        self.store.update_state(
            cluster_id=self.cluster_id,
            stream_epoch=self.follower.stream_epoch,
            sync_epoch=self.follower.sync_epoch,
            log_lost=None,
        )

    # -- cluster membership ------------------------------------------------

    def join(self, cluster_id: str) -> None:
        """A master of `cluster_id` streams to us: record the cluster we belong to."""
        if self.cluster_id is None:
            self.cluster_id = cluster_id
            self._save_state()
            log.info("joined_cluster", cluster=cluster_id)

    # -- streams -----------------------------------------------------------

    def attach_stream(self, stream: Stream) -> None:
        """The master opened a replication stream; only the newest one is kept."""
        if self.stopped:
            stream.close()
            return
        previous, self.stream = self.stream, stream
        self.last_heard_from_master = self.clock()
        if previous is not None:
            previous.close()
        self.stream_changed.set()
        self.metrics.stream_opened(self.config.secondary_id)
        log.info("stream_attached", contiguous_seq=self.follower.contiguous_seq)

    def stop(self) -> None:
        """The process is stopping: drop the master's stream and apply nothing more
        (a batch still held by --delay is dropped; the next stream resends it)."""
        self.stopped = True
        stream = self.stream
        if stream is not None:
            self.detach_stream(stream)
            stream.close()

    def detach_stream(self, stream: Stream) -> None:
        if self.stream is stream:
            self.stream = None
            self.stream_changed.set()
            log.info("stream_detached", contiguous_seq=self.follower.contiguous_seq)

    def heard_from_master(self) -> None:
        self.last_heard_from_master = self.clock()

    def master_silent_for(self) -> float:
        return self.clock() - self.last_heard_from_master

    # -- reads -------------------------------------------------------------

    @property
    def read_config(self) -> ReadConfig:
        return self.config.reads

    def readable_seq(self, read: str) -> int:
        """What a reader sees: the durable contiguous prefix (`local`), or within it
        the master's commit point as last told (`majority`)."""
        return self.follower.commit_seq if read == MAJORITY else self.follower.visible_seq

    def read_page(self, start: int, limit: int | None, read: str) -> list[PublicMessage]:
        return self.follower.public_page(start, limit, self.readable_seq(read))

    def committed(self) -> None:
        """The master told a higher commit point: majority readers may see more."""
        self.readers.notify()

    # -- the log -----------------------------------------------------------

    def sync(self, epoch: int, keep: int, epoch_start: int) -> int:
        """The master's verdict on our log: keep 1..keep, follow epoch `epoch`.

        The truncation and the new epoch are on disk before this returns, so
        before anything of the new master is acknowledged.
        """
        discarded = self.follower.sync(epoch, keep, epoch_start)
        if discarded:
            self.store.truncate(keep)
            log.warning(
                "log_truncated",
                epoch=epoch,
                keep=keep,
                seq_from=discarded[0],
                seq_to=discarded[-1],
                discarded_seqs=discarded,
            )
        self._save_state()
        # A truncation may leave nothing pending: wake `settle`.
        self.durable_changed.set()
        log.info("synced", epoch=epoch, keep=keep, epoch_start=epoch_start)
        return self.follower.durable_seq

    def apply(self, entries: Sequence[Entry], epoch: int) -> ApplyResult | None:
        """Apply a replicated batch and write what it adds to disk.

        The ACK follows once that is durable (`_durable`); a batch that adds
        nothing is answered at once with what we hold. A batch beyond the
        core's bounds changes nothing (and discards the buffer): the result
        says why, for the stream to be dropped.
        """
        if self.stopped:
            return None
        if entries:
            self.metrics.batch_entries.observe(len(entries))
        result = self.follower.apply(entries, epoch) if entries else None
        if result is not None and result.refused is not None:
            return result
        if result is None or not result.applied:
            self._send_ack()
        if result is None:
            return None
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
            self.store.append(self.follower.applied_entries(result))
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
        return result

    def _durable(self, seq: int) -> None:
        """The store synced 1..seq: acknowledge it (and note a completed catch-up)."""
        self.follower.mark_durable(seq)
        if self.follower.sync_epoch != self.store.state.get("sync_epoch", 0):
            self._save_state()
        self.durable_changed.set()
        self.readers.notify()
        self._send_ack()

    async def settle(self, seconds: float) -> None:
        """Until every entry applied so far is on disk (or `seconds` pass).

        A report made then covers them. A master that lost its disk chooses its
        log from the reports: an entry whose sync landed just after a report it
        missed would become visible here, then be cut and its seq reused.
        """
        target = self.follower.contiguous_seq
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while min(target, self.follower.contiguous_seq) > self.follower.durable_seq:
                    self.durable_changed.clear()
                    await self.durable_changed.wait()

    def _send_ack(self) -> None:
        if self.stream is not None:
            self.stream.send_ack(self.follower.durable_seq)

    def report(self) -> dict:
        """What registration tells the master about our log (the durable part of it)."""
        follower = self.follower
        return {
            "id": self.config.secondary_id,
            "url": self.config.url,
            "contiguous_seq": follower.durable_seq,
            "last_epoch": follower.epoch_of(follower.durable_seq),
            "sync_epoch": follower.sync_epoch,
            "stream_epoch": follower.stream_epoch,
            "incarnation": self.store.identity.incarnation,
            "cluster_id": self.cluster_id,
            "instance": self.instance,
        }

    def ready_reason(self) -> str | None:
        """Why this secondary cannot do its job now (`GET /readyz`), or None: it can.
        Its job is to follow the master, which it does over a replication stream."""
        if self.stopped:
            return "stopping"
        if self.stream is None:
            reason = f"no replication stream from the master ({self.config.master_url})"
            if self.registration_refused is not None:
                reason += f": {self.registration_refused}"
            return reason
        return None

    def _gauges(self) -> list:
        """The secondary's gauges, read from its follower log at scrape time."""
        follower = self.follower
        return metrics.secondary_gauges(
            last_seq=follower.contiguous_seq,
            durable_seq=follower.durable_seq,
            commit_seq=follower.commit_seq,
            connected=self.stream is not None,
        )

    def health(self) -> dict:
        follower = self.follower
        return {
            "role": "secondary",
            "id": self.config.secondary_id,
            "contiguous_seq": follower.contiguous_seq,
            "durable_seq": follower.durable_seq,
            "commit_seq": follower.commit_seq,
            "buffered": len(follower.out_of_order),
            "master": self.config.master_url,
            "stream": self.stream is not None,
            "sync_epoch": follower.sync_epoch,
            "last_epoch": follower.last_epoch,
            "cluster_id": self.cluster_id,
            "incarnation": self.store.identity.incarnation,
            "storage": self.store.kind,
            "data_dir": None if self.store.data_dir is None else str(self.store.data_dir),
            "fsync": self.config.storage.fsync if self.store.kind == "disk" else None,
            "sync": self.store.sync_stats(),
            "auth": self.config.cluster_token is not None,
            "tls": self.config.tls.enabled,
        }
