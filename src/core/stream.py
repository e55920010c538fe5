"""The replication stream's protocol, as two sans-I/O state machines.

In the manner of h11's `Connection`: a `MasterStream` (one per connection
session of the master's link to one secondary) and a `SecondaryStream` (one
per connection a secondary accepts) take decoded messages and the time, and
return what to do: messages to send, waiters to resolve, entries to apply,
the stream to close and why. They never touch a socket, a timer or a clock;
the Tornado classes around them (master.replicator, secondary.handlers) move
bytes with common.wire and arm timers, nothing else.

The protocol (frames as common.wire encodes them):

    master                                      secondary
      | dial ?epoch=E&secondary=ID&cluster=C      |  accept(): refused, or
      | --------------------------------------->  |  open, and first:
      |                         Hello (its log)   |
      | <---------------------------------------  |
      | Sync (epoch E, keep k, epoch_start)       |  discard after k, follow E
      | --------------------------------------->  |
      |                   Ack (durable prefix)    |
      | <---------------------------------------  |
      | Append (entries) ... / Heartbeat (commit) |  apply; Heartbeat -> Ack
      | --------------------------------------->  |
      |              Ack (durable prefix) ...     |
      | <---------------------------------------  |

Rules: the secondary speaks first (hello), and must be the secondary (and
incarnation) that registered; the master's first frame is `sync`, once, of
the dialled epoch, keeping no more than the secondary holds; nothing is
acknowledged before `sync`; an ACK never covers more than the stream carried.
A frame that breaks a rule closes the stream with its reason, and changes
nothing; the master dials again and resumes from the next hello.

Appends and heartbeats carry the master's commit point (`commit`, the highest
seq a majority holds; absent from an older master, read as unknown). When it
advances and no append is going out, the master sends a heartbeat for it
COMMIT_NOTICE_SECONDS later unless an append carries it first (so sequential
writes share one such frame instead of costing a heartbeat and an ACK each).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from replog.core.entry import Entry
from replog.core.follower_log import FollowerLog
from replog.core.health import Health
from replog.core.limits import COMMIT_NOTICE_SECONDS, MAX_EPOCH_RUNS, MAX_INT
from replog.core.recovery import other_cluster
from replog.core.replication_log import AckBeyondSent, ReplicationLog, Satisfied

# -- messages -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """Secondary -> master, first: what it holds, for the master to match."""

    secondary: str
    incarnation: str
    contiguous_seq: int
    durable_seq: int
    last_epoch: int
    sync_epoch: int
    epoch_runs: list[list[int]]


@dataclass(frozen=True, slots=True)
class Sync:
    """Master -> secondary, first: keep 1..keep, follow `epoch`, whose log opened at
    `epoch_start` entries."""

    epoch: int
    keep: int
    epoch_start: int


@dataclass(frozen=True, slots=True)
class Append:
    """Master -> secondary: consecutive entries, and the master's commit point
    (None: not said, as by a master older than the field)."""

    entries: Sequence[Entry]
    commit: int | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Master -> secondary: answered with an ACK; carries the commit point like Append."""

    commit: int | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """Secondary -> master: it holds 1..contiguous_seq on disk."""

    contiguous_seq: int


Message = Hello | Sync | Append | Heartbeat | Ack

# Each message's frame type on the wire (and in reasons and log lines).
FRAME_TYPE: dict[type, str] = {
    Hello: "hello",
    Sync: "sync",
    Append: "append",
    Heartbeat: "heartbeat",
    Ack: "ack",
}


def frame_type(message: Message) -> str:
    return FRAME_TYPE[type(message)]


# -- what the state machines return -----------------------------------------------


class CloseKind(Enum):
    """Why a stream ends; each end's shell maps it to a close code and a log line."""

    # A frame no correct peer sends (the protocol broken).
    PROTOCOL = "protocol"
    # A frame beyond a bound a correct peer stays within.
    BOUND = "bound"
    # The master dialled another node than the one that registered.
    PEER_MISMATCH = "peer_mismatch"
    # The secondary was silent too long: the connection may be dead without knowing it.
    UNHEALTHY = "unhealthy"
    # The secondary is no longer a member: its link is stopping.
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class Send:
    message: Message


@dataclass(frozen=True, slots=True)
class Close:
    kind: CloseKind
    reason: str
    # The frame (type, or the stage expecting it) the reason is about, if any.
    frame: str | None = None


@dataclass(frozen=True, slots=True)
class Opened:
    """The master matched a hello: the secondary keeps 1..keep of its log."""

    contiguous_seq: int
    keep: int
    last_seq: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Resolve:
    """Write-concern waiters now satisfied, for the master node to answer."""

    satisfied: list[Satisfied]


@dataclass(frozen=True, slots=True)
class Progress:
    """An ACK moved the secondary's acknowledged prefix to seq_to."""

    seq_from: int
    seq_to: int


@dataclass(frozen=True, slots=True)
class Committed:
    """The commit point moved (master: it advanced; secondary: the master told a
    higher one): the node wakes its `read=majority` readers (and, on the master,
    every link, whose streams tell it on)."""

    commit_seq: int


@dataclass(frozen=True, slots=True)
class Working:
    """The stream takes what it is sent (an ACK advanced, or nothing is in flight).

    Not said for the ACK answering `sync`, which proves nothing yet: a peer that
    refuses every batch is redialled with backoff."""


@dataclass(frozen=True, slots=True)
class Heard:
    """The secondary heard from its master (for its registrar's silence check)."""


@dataclass(frozen=True, slots=True)
class ApplySync:
    """The secondary must truncate to `sync.keep` and follow `sync.epoch` (on disk),
    then acknowledge its durable prefix (`SecondaryStream.ack`)."""

    sync: Sync


@dataclass(frozen=True, slots=True)
class ApplyEntries:
    """The secondary must apply these entries (and ACK once they are on disk)."""

    entries: Sequence[Entry]


MasterEffect = Send | Close | Opened | Resolve | Progress | Working | Committed
SecondaryEffect = Send | Close | Heard | ApplySync | ApplyEntries | Committed


@dataclass(frozen=True, slots=True)
class Ended:
    """A master stream's connection ended (see `MasterStream.end`)."""

    was_open: bool
    acked_seq: int


def _unexpected(message: Message, expected: Sequence[str]) -> str:
    # The codec's own wording (common.wire.decode): one reason whoever finds it.
    return f"expected type {' or '.join(expected)}, got {frame_type(message)!r}"


# -- the master's end -----------------------------------------------------------------


class MasterState(Enum):
    AWAITING_HELLO = "awaiting_hello"
    STREAMING = "streaming"
    CLOSED = "closed"


class MasterStream:
    """One connection session of the master's link to one secondary.

    awaiting-hello --hello matched--> streaming --close--> closed. Drives the
    `ReplicationLog`: matches the hello (`matching_prefix`, `stream_opened`),
    sizes batches (`next_batch`), records ACKs (`record_ack`), and says, in
    `poll`, when to heartbeat and when to drop a silent secondary: that
    decision is made here only.
    """

    def __init__(self, log: ReplicationLog, secondary_id: str, heartbeat_interval: float) -> None:
        self.log = log
        self.secondary_id = secondary_id
        self.heartbeat_interval = heartbeat_interval
        self.state = MasterState.AWAITING_HELLO
        # Whether a hello was matched (the core counts the stream as open).
        self._opened = False
        self._heartbeat_due: float | None = None
        # The commit point this stream last carried to the secondary.
        self._told_commit = 0
        # When a commit point no append carried goes out in a heartbeat.
        self._commit_notice_at: float | None = None

    @property
    def epoch(self) -> int:
        """The master's epoch, which it dials with (it dials only once open)."""
        assert self.log.epoch is not None
        return self.log.epoch

    @property
    def expecting(self) -> tuple[str, ...]:
        """The frame types the secondary may send now."""
        return ("hello",) if self.state is MasterState.AWAITING_HELLO else ("ack",)

    @property
    def stage(self) -> str:
        """What is awaited, to name in a refusal: "hello" or "ack"."""
        return self.expecting[0]

    @property
    def _member(self) -> bool:
        return self.log.is_member(self.secondary_id)

    @property
    def idle(self) -> bool:
        """Streaming with nothing in flight: a new entry can go out at once."""
        return (
            self.state is MasterState.STREAMING
            and self._member
            and self.log.idle(self.secondary_id)
        )

    @property
    def acked_seq(self) -> int:
        return self.log.progress(self.secondary_id).acked_seq if self._member else 0

    @property
    def next_poll_at(self) -> float | None:
        """When `poll` has something to do even if nothing happens (a heartbeat)."""
        if self.state is not MasterState.STREAMING:
            return None
        times = [t for t in (self._heartbeat_due, self._commit_notice_at) if t is not None]
        return min(times, default=None)

    def violation(self, reason: str, frame: str | None = None) -> list[MasterEffect]:
        """The codec refused a frame (common.wire): the stream closes."""
        return [self._close(CloseKind.PROTOCOL, reason, frame or self.stage)]

    def _close(self, kind: CloseKind, reason: str, frame: str | None = None) -> Close:
        self.state = MasterState.CLOSED
        return Close(kind, reason, frame)

    def receive(self, message: Message, now: float) -> list[MasterEffect]:
        """A decoded frame from the secondary, at monotonic time `now`."""
        if self.state is MasterState.CLOSED:
            return []
        if self.state is MasterState.AWAITING_HELLO:
            if not isinstance(message, Hello):
                return self.violation(_unexpected(message, self.expecting))
            return self._hello(message, now)
        if not isinstance(message, Ack):
            return self.violation(_unexpected(message, self.expecting))
        return self._ack(message.contiguous_seq, now)

    def _hello(self, hello: Hello, now: float) -> list[MasterEffect]:
        if not self._member:
            return [self._close(CloseKind.REMOVED, f"{self.secondary_id!r} was removed")]
        progress = self.log.progress(self.secondary_id)
        if hello.secondary != self.secondary_id:
            # Another secondary answers at this URL: it must not count as this one.
            return [
                self._close(
                    CloseKind.PEER_MISMATCH,
                    f"{progress.url} is {hello.secondary!r}, not {self.secondary_id!r}",
                )
            ]
        if hello.incarnation != progress.incarnation:
            # Not the node that registered (it restarted since): it registers again.
            return [
                self._close(
                    CloseKind.PEER_MISMATCH,
                    f"{self.secondary_id!r} answers as incarnation {hello.incarnation!r}, "
                    f"registered as {progress.incarnation!r}",
                )
            ]
        epoch = self.epoch
        keep = self.log.matching_prefix(hello.epoch_runs, hello.contiguous_seq)
        commit_before = self.log.commit_seq
        satisfied = self.log.stream_opened(self.secondary_id, keep, now, durable=hello.durable_seq)
        self._opened = True
        self.state = MasterState.STREAMING
        # The first poll heartbeats at once.
        self._heartbeat_due = now
        effects: list[MasterEffect] = []
        if satisfied:
            effects.append(Resolve(satisfied))
        if self.log.commit_seq > commit_before:
            effects.append(Committed(self.log.commit_seq))
        effects.append(Opened(hello.contiguous_seq, keep, self.log.last_seq, epoch))
        effects.append(Send(Sync(epoch, keep, self.log.epoch_start)))
        return effects

    def _ack(self, contiguous_seq: int, now: float) -> list[MasterEffect]:
        if not self._member:
            return []  # removed: its link is stopping
        before = self.acked_seq
        commit_before = self.log.commit_seq
        try:
            satisfied = self.log.record_ack(self.secondary_id, contiguous_seq, now)
        except AckBeyondSent as exc:
            return self.violation(str(exc), "ack")
        after = self.acked_seq
        effects: list[MasterEffect] = []
        if after > before:
            effects.append(Progress(before + 1, after))
        if satisfied:
            effects.append(Resolve(satisfied))
        if self.log.commit_seq > commit_before:
            effects.append(Committed(self.log.commit_seq))
        if after > before or self.idle:
            effects.append(Working())
        return effects

    def batches(self) -> list[Send]:
        """The append frames to send now (flow control permitting), if streaming."""
        if self.state is not MasterState.STREAMING or not self._member:
            return []
        sends = []
        while (batch := self.log.next_batch(self.secondary_id)) is not None:
            # The commit point as of this batch (its size counted it: next_batch).
            self._told_commit = self.log.commit_seq
            sends.append(Send(Append(batch.entries, self._told_commit)))
        return sends

    def poll(self, now: float) -> list[MasterEffect]:
        """What to do at `now`: drop the stream of a secondary judged unhealthy (as
        of now: a stream that just opened is not dropped on a stale verdict), else
        send what is due, batches then a heartbeat."""
        if self.state is not MasterState.STREAMING:
            return []
        if not self._member or self.log.current_status(self.secondary_id, now) == Health.UNHEALTHY:
            # Silent too long: this connection may be dead without knowing it
            # (a cut link sends no RST). Drop it; the link dials again.
            return [self._close(CloseKind.UNHEALTHY, "silent for too long")]
        effects: list[MasterEffect] = list(self.batches())
        due = self._heartbeat_due is not None and now >= self._heartbeat_due
        if effects or self.log.commit_seq <= self._told_commit:
            self._commit_notice_at = None  # an append carried it, or nothing new
        elif self._commit_notice_at is None:
            # A commit point no append carries: wait a little for one (or for more
            # ACKs), so that sequential writes do not cost a heartbeat and its ACK
            # each.
            self._commit_notice_at = now + COMMIT_NOTICE_SECONDS
        notice = self._commit_notice_at is not None and now >= self._commit_notice_at
        if due or notice:
            self._told_commit = self.log.commit_seq
            self._commit_notice_at = None
            effects.append(Send(Heartbeat(self._told_commit)))
            self._heartbeat_due = now + self.heartbeat_interval
        return effects

    def end(self) -> Ended | None:
        """The connection is gone: whatever was sent and not acknowledged is sent
        again on the next stream. None if the secondary is no longer a member."""
        self.state = MasterState.CLOSED
        if not self._member:
            return None
        acked = self.acked_seq
        self.log.stream_closed(self.secondary_id)
        return Ended(self._opened, acked)


# -- the secondary's end ---------------------------------------------------------------


class RefusalKind(Enum):
    """Why a dial is refused, for the handler to answer (400 / 409)."""

    BAD_REQUEST = "bad_request"
    CONFLICT = "conflict"


class RefusalCause(Enum):
    BAD_EPOCH = "bad_epoch"
    BAD_MAX_FRAME = "bad_max_frame"
    WRONG_SECONDARY = "wrong_secondary"
    CLUSTER_MISMATCH = "cluster_mismatch"
    STALE_MASTER = "stale_master"
    NOT_WEBSOCKET = "not_websocket"


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: RefusalKind
    cause: RefusalCause
    reason: str


# As many digits as an epoch or a frame size may have in a dial's query.
_DIGITS = re.compile(r"[0-9]{1,18}")


def cluster_refusal(own: str | None, theirs: str) -> str | None:
    """Why a master of cluster `theirs` must not stream to a secondary of `own`, or None."""
    if other_cluster(own, theirs):
        return (
            f"this secondary holds data of cluster {own}, not of cluster "
            f"{theirs}; it keeps its data and takes no stream from this master "
            "(start it with an empty --data-dir to join this cluster)"
        )
    return None


def accepts_master(follower: FollowerLog, epoch: int) -> bool:
    """A master older than one the secondary already followed is a stale one."""
    return epoch >= max(follower.stream_epoch, follower.sync_epoch)


class SecondaryStream:
    """One replication connection accepted by a secondary.

    `accept` decides the dial; then the secondary sends `hello()`, and
    `receive` enforces: sync first, once, of the stream's epoch, keeping no
    more than held; heartbeats answered with an ACK; appends handed over to
    apply. `ack` gives the ACK frame for a durable prefix, only after sync and
    never after the stream was dropped.
    """

    def __init__(self, secondary_id: str, follower: FollowerLog) -> None:
        self.secondary_id = secondary_id
        self.follower = follower
        self.epoch = 0
        self.cluster_id = ""
        # The largest frame the master announced it may send, if it did.
        self.master_frame_limit: int | None = None
        self.synced = False
        self.dropped = False

    def accept(
        self,
        *,
        epoch: str,
        secondary: str | None,
        cluster: str,
        max_frame: str | None,
        own_cluster: str | None,
        websocket: bool,
    ) -> Refusal | None:
        """The dial's query (raw strings), this node's cluster, and whether it is a
        WebSocket upgrade: the refusal, or None (this stream takes it)."""
        if not _DIGITS.fullmatch(epoch) or not 1 <= int(epoch) <= MAX_INT:
            return Refusal(
                RefusalKind.BAD_REQUEST,
                RefusalCause.BAD_EPOCH,
                f"?epoch=<master epoch> is required: an integer from 1 to {MAX_INT}",
            )
        if max_frame is not None:
            if not _DIGITS.fullmatch(max_frame):
                return Refusal(
                    RefusalKind.BAD_REQUEST,
                    RefusalCause.BAD_MAX_FRAME,
                    "?max_frame= must be a number of bytes",
                )
            self.master_frame_limit = int(max_frame)
        wanted = self.secondary_id if secondary is None else secondary
        if wanted != self.secondary_id:
            # The master dialled the wrong node: it must not count us as `wanted`.
            return Refusal(
                RefusalKind.CONFLICT,
                RefusalCause.WRONG_SECONDARY,
                f"this is {self.secondary_id!r}, not {wanted!r}",
            )
        self.epoch = int(epoch)
        self.cluster_id = cluster
        refusal = cluster_refusal(own_cluster, cluster) if cluster else None
        if refusal is not None:
            return Refusal(RefusalKind.CONFLICT, RefusalCause.CLUSTER_MISMATCH, refusal)
        if not accepts_master(self.follower, self.epoch):
            return Refusal(
                RefusalKind.CONFLICT,
                RefusalCause.STALE_MASTER,
                "a newer master epoch is known here",
            )
        if not websocket:
            return Refusal(
                RefusalKind.BAD_REQUEST,
                RefusalCause.NOT_WEBSOCKET,
                "this is the replication WebSocket endpoint",
            )
        return None

    def hello(self, incarnation: str) -> Hello:
        """The stream's first frame: what this secondary holds."""
        follower = self.follower
        # At most MAX_EPOCH_RUNS runs: a longer summary reports a prefix of the log.
        length, runs = follower.summary(MAX_EPOCH_RUNS)
        return Hello(
            secondary=self.secondary_id,
            incarnation=incarnation,
            contiguous_seq=length,
            durable_seq=min(follower.durable_seq, length),
            last_epoch=follower.epoch_of(length),
            sync_epoch=follower.sync_epoch,
            epoch_runs=runs,
        )

    def drop(
        self, reason: str, frame: str | None = None, kind: CloseKind = CloseKind.PROTOCOL
    ) -> Close | None:
        """End this stream over a frame no correct master sends (None: already dropped)."""
        if self.dropped:
            return None
        self.dropped = True
        return Close(kind, reason, frame)

    def receive(self, message: Message) -> list[SecondaryEffect]:
        """A decoded frame from the master. Nothing after the stream was dropped."""
        if self.dropped:
            return []
        kind = frame_type(message)
        if isinstance(message, Sync):
            return self._sync(message)
        if isinstance(message, Hello | Ack):
            return self._refuse(_unexpected(message, ("append", "heartbeat", "sync")), kind)
        if not self.synced:
            return self._refuse(f"{kind} before sync: a stream starts with sync", kind)
        effects: list[SecondaryEffect] = [Heard()]
        if message.commit is not None and self.follower.note_commit(message.commit):
            effects.append(Committed(self.follower.commit_seq))
        if isinstance(message, Heartbeat):
            effects.append(Send(Ack(self.follower.durable_seq)))
        else:
            effects.append(ApplyEntries(message.entries))
        return effects

    def _refuse(self, reason: str, frame: str | None) -> list[SecondaryEffect]:
        close = self.drop(reason, frame)
        return [] if close is None else [close]

    def _sync(self, sync: Sync) -> list[SecondaryEffect]:
        if self.synced:
            return self._refuse("a second sync on one stream", "sync")
        if sync.epoch != self.epoch:
            return self._refuse(
                f"sync epoch {sync.epoch} differs from the stream's epoch {self.epoch}", "sync"
            )
        held = self.follower.contiguous_seq
        if sync.keep > held:
            return self._refuse(
                f"sync keeps {sync.keep} entries, this secondary holds {held}", "sync"
            )
        self.synced = True
        return [Heard(), ApplySync(sync)]

    def ack(self, durable_seq: int) -> Ack | None:
        """The ACK for a durable prefix, or None: nothing before `sync` (what we hold
        may include a suffix it discards), nothing once dropped."""
        if self.synced and not self.dropped:
            return Ack(durable_seq)
        return None
