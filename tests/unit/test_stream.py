"""The replication protocol, end to end without sockets.

A `MasterStream` over a real `ReplicationLog` and a `SecondaryStream` over a
real `FollowerLog`, coupled through the wire codec: every message is encoded
to bytes, carried (or lost, or reordered) by the test, and decoded on the
other side, exactly as the Tornado shells do it.
"""

from dataclasses import dataclass, field

import pytest

from replog.common import wire
from replog.core import Entry, FollowerLog, HealthPolicy, ReplicationLog, Satisfied
from replog.core.limits import COMMIT_NOTICE_SECONDS
from replog.core.stream import (
    Ack,
    Append,
    ApplyEntries,
    ApplySync,
    Close,
    CloseKind,
    Committed,
    Ended,
    Heard,
    Heartbeat,
    Hello,
    MasterState,
    MasterStream,
    Opened,
    Progress,
    RefusalCause,
    RefusalKind,
    Resolve,
    SecondaryStream,
    Send,
    Sync,
    Working,
)

HEARTBEAT_INTERVAL = 0.2
HEALTH = HealthPolicy(suspect_after=0.6, unhealthy_after=2.0)


def effects_of(effects, kind):
    return [effect for effect in effects if isinstance(effect, kind)]


def sent(effects):
    return [effect.message for effect in effects_of(effects, Send)]


def closes(effects):
    return effects_of(effects, Close)


@dataclass
class Pair:
    """A master's stream and a secondary's stream joined by two queues of frames."""

    log: ReplicationLog
    follower: FollowerLog
    incarnation: str = "inc-1"
    name: str = "s1"
    master: MasterStream = field(init=False)
    secondary: SecondaryStream = field(init=False)
    to_secondary: list[bytes] = field(default_factory=list)
    to_master: list[bytes] = field(default_factory=list)
    # Everything the master's stream returned, in order.
    master_effects: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.master = MasterStream(self.log, self.name, HEARTBEAT_INTERVAL)
        self.secondary = SecondaryStream(self.name, self.follower)

    # -- the secondary's shell ----------------------------------------------------

    def dial(self, epoch=None, **query):
        """The master dials; the secondary accepts (or refuses) and says hello."""
        args = {
            "epoch": str(self.master.epoch if epoch is None else epoch),
            "secondary": self.name,
            "cluster": "c1",
            "max_frame": None,
            "own_cluster": "c1",
            "websocket": True,
            **query,
        }
        refusal = self.secondary.accept(**args)
        if refusal is None:
            self.to_master.append(wire.encode(self.secondary.hello(self.incarnation)))
        return refusal

    def secondary_gets(self, raw: bytes) -> list:
        """One frame into the secondary, as ReplicationHandler.on_message does it;
        a durable in-memory secondary: what it applies is on disk at once."""
        try:
            message = wire.decode_message(raw, "append", "heartbeat", "sync")
        except wire.WireError as exc:
            close = self.secondary.drop(str(exc), exc.frame)
            return [] if close is None else [close]
        effects = self.secondary.receive(message)
        for effect in effects:
            if isinstance(effect, ApplySync):
                sync = effect.sync
                self.follower.sync(sync.epoch, sync.keep, sync.epoch_start)
                self._ack()
            elif isinstance(effect, ApplyEntries):
                result = self.follower.apply(effect.entries, self.secondary.epoch)
                assert result.refused is None
                self.follower.mark_durable(self.follower.contiguous_seq)
                self._ack()
            elif isinstance(effect, Send):
                self.to_master.append(wire.encode(effect.message))
        return effects

    def _ack(self) -> None:
        ack = self.secondary.ack(self.follower.durable_seq)
        if ack is not None:
            self.to_master.append(wire.encode(ack))

    # -- the master's shell -------------------------------------------------------

    def master_gets(self, raw: bytes, now: float) -> list:
        """One frame into the master, as SecondaryLink._receive does it."""
        try:
            message = wire.decode_message(raw, *self.master.expecting)
        except wire.WireError as exc:
            effects = self.master.violation(str(exc))
        else:
            effects = self.master.receive(message, now)
        self._carry_out(effects)
        return effects

    def poll(self, now: float) -> list:
        effects = self.master.poll(now)
        self._carry_out(effects)
        return effects

    def _carry_out(self, effects) -> None:
        self.master_effects.extend(effects)
        for message in sent(effects):
            self.to_secondary.append(wire.encode(message))

    # -- the network --------------------------------------------------------------

    def deliver(self, now: float = 0.0) -> None:
        """Carry every frame, both ways, until both queues are empty."""
        while self.to_master or self.to_secondary:
            while self.to_secondary:
                self.secondary_gets(self.to_secondary.pop(0))
            while self.to_master:
                self.master_gets(self.to_master.pop(0), now)

    def handshake(self, now: float = 0.0) -> None:
        assert self.dial() is None
        self.deliver(now)
        assert self.master.state is MasterState.STREAMING and self.secondary.synced


def master_log(*messages: str, epoch: int = 1, incarnation: str = "inc-1", **kw) -> ReplicationLog:
    """An open master whose own copy of `messages` is on disk, with secondary s1
    registered, and s2 streaming (so there is quorum without s1) though it holds nothing."""
    log = ReplicationLog(health=HEALTH, **kw)
    log.adopt([], epoch=epoch)
    with_quorum(log, incarnation)
    append(log, *messages)
    return log


def with_quorum(log: ReplicationLog, incarnation: str = "inc-1") -> None:
    log.register("s1", "http://s1", 0, now=0.0, incarnation=incarnation)
    log.register("s2", "http://s2", 0, now=0.0, incarnation="inc-s2")
    log.stream_opened("s2", 0, now=0.0)
    log.update_health(0.0)


def append(log: ReplicationLog, *messages: str) -> None:
    for message in messages:
        log.append(message, None)
    log.mark_durable(log.last_seq)


def entries(follower: FollowerLog) -> list[tuple]:
    return [(e.seq, e.epoch, e.message) for e in follower.entries()]


# -- the handshake ----------------------------------------------------------------------


def test_the_secondary_says_hello_the_master_syncs_and_the_secondary_acknowledges():
    pair = Pair(master_log("a", "b"), FollowerLog())
    assert pair.dial() is None
    hello = wire.decode_message(pair.to_master[0], "hello")
    assert hello == Hello("s1", "inc-1", 0, 0, 0, 0, [])

    effects = pair.master_gets(pair.to_master.pop(0), now=0.0)
    assert Opened(contiguous_seq=0, keep=0, last_seq=2, epoch=1) in effects
    assert sent(effects) == [Sync(epoch=1, keep=0, epoch_start=0)]
    assert pair.log.progress("s1").connected

    pair.poll(now=0.0)  # the link sends at once: a batch is in flight
    effects = pair.secondary_gets(pair.to_secondary.pop(0))
    assert effects == [Heard(), ApplySync(Sync(1, 0, 0))]
    assert wire.decode_message(pair.to_master[0], "ack") == Ack(0)

    # The ACK answering sync proves nothing yet: no progress, not yet "working"
    # (a peer refusing every batch is redialled with backoff).
    effects = pair.master_gets(pair.to_master.pop(0), now=0.0)
    assert not effects_of(effects, Progress) and not effects_of(effects, Working)
    pair.deliver()
    assert Working() in pair.master_effects and pair.master.acked_seq == 2


def test_a_stream_replicates_a_batch_until_the_masters_waiter_is_satisfied():
    log = master_log()
    pair = Pair(log, FollowerLog())
    pair.handshake()
    append(log, "a", "b", "c")
    assert log.wait_for("writer", 3, w=2) is None  # the master alone holds it

    effects = pair.poll(now=0.1)
    (batch,) = [m for m in sent(effects) if isinstance(m, Append)]
    assert [e.seq for e in batch.entries] == [1, 2, 3]
    pair.deliver(now=0.1)

    assert entries(pair.follower) == [(1, 1, "a"), (2, 1, "b"), (3, 1, "c")]
    assert Progress(seq_from=1, seq_to=3) in pair.master_effects
    (resolve,) = effects_of(pair.master_effects, Resolve)
    assert resolve.satisfied == [Satisfied("writer", 3, 2, ("master", "s1"))]
    assert Working() in pair.master_effects
    assert pair.master.idle and pair.master.acked_seq == 3


def test_the_master_heartbeats_at_once_then_every_interval_and_each_is_acknowledged():
    pair = Pair(master_log(), FollowerLog())
    pair.handshake(now=0.0)
    assert sent(pair.poll(now=0.0)) == [Heartbeat(commit=0)]
    assert pair.master.next_poll_at == pytest.approx(HEARTBEAT_INTERVAL)
    assert sent(pair.poll(now=HEARTBEAT_INTERVAL / 2)) == []  # not due yet

    effects = pair.secondary_gets(pair.to_secondary.pop())
    assert effects == [Heard(), Send(Ack(0))]
    pair.master_gets(pair.to_master.pop(), now=0.5)
    assert pair.log.progress("s1").last_heard == 0.5  # an ACK is hearing from it

    assert sent(pair.poll(now=HEARTBEAT_INTERVAL)) == [Heartbeat(commit=0)]


# -- lost and reordered frames ---------------------------------------------------------


def test_a_batch_overtaking_another_waits_behind_the_gap_and_one_ack_covers_both():
    log = master_log(max_batch_entries=1)
    pair = Pair(log, FollowerLog())
    pair.handshake()
    append(log, "a", "b", "c")
    pair.poll(now=0.0)
    heartbeat, first, second, third = pair.to_secondary[-1], *pair.to_secondary[:3]
    pair.to_secondary.clear()

    for frame in (first, third, heartbeat):
        pair.secondary_gets(frame)
    assert pair.follower.contiguous_seq == 1 and list(pair.follower.out_of_order) == [3]
    # ACKs carry the contiguous prefix: 1, then 1 again.
    assert [wire.decode_message(f, "ack") for f in pair.to_master] == [Ack(1), Ack(1), Ack(1)]

    pair.secondary_gets(second)
    assert wire.decode_message(pair.to_master[-1], "ack") == Ack(3)
    pair.to_master = pair.to_master[-1:]  # every earlier ACK lost: the last covers them
    pair.deliver()
    assert pair.master.acked_seq == 3 and pair.master.idle


def test_a_lost_batch_is_sent_again_on_the_next_stream():
    log = master_log(max_batch_entries=1)
    pair = Pair(log, FollowerLog())
    pair.handshake()
    append(log, "a", "b", "c")
    pair.poll(now=0.0)
    del pair.to_secondary[1]  # batch 2 is lost
    pair.deliver()
    assert pair.follower.contiguous_seq == 1 and pair.master.acked_seq == 1
    assert pair.master.batches() == []  # all sent, as far as this stream knows

    # The connection ends; the next one starts from what the secondary holds.
    assert pair.master.end() == Ended(was_open=True, acked_seq=1)
    again = Pair(log, pair.follower)
    again.handshake(now=1.0)
    again.poll(now=1.0)
    again.deliver(now=1.0)
    assert entries(pair.follower) == [(1, 1, "a"), (2, 1, "b"), (3, 1, "c")]
    assert again.master.acked_seq == 3


def test_a_sync_truncates_what_a_dead_master_wrote_after_the_common_prefix():
    # Entries 1..3 of epoch 1 reached everyone; the master of epoch 2 wrote 4..5
    # to this secondary only, and died. The master of epoch 3 never had them.
    follower = FollowerLog()
    follower.sync(2, 0, 0)
    follower.apply([Entry(s, 1, None, f"m{s}") for s in (1, 2, 3)], 2)
    follower.apply([Entry(4, 2, None, "lost"), Entry(5, 2, None, "lost too")], 2)
    follower.mark_durable(5)
    log = ReplicationLog(health=HEALTH)
    log.adopt([Entry(s, 1, None, f"m{s}") for s in (1, 2, 3)], epoch=3)
    with_quorum(log)
    append(log, "new in 3")

    pair = Pair(log, follower)
    pair.handshake()
    assert Opened(contiguous_seq=5, keep=3, last_seq=4, epoch=3) in pair.master_effects
    assert Sync(epoch=3, keep=3, epoch_start=3) in sent(pair.master_effects)
    assert entries(follower) == [(1, 1, "m1"), (2, 1, "m2"), (3, 1, "m3")]

    pair.poll(now=0.0)
    pair.deliver()
    assert entries(follower)[3:] == [(4, 3, "new in 3")]
    assert pair.master.acked_seq == 4 and follower.sync_epoch == 3


# -- protocol violations: the master's end ----------------------------------------------


def streaming_pair() -> Pair:
    pair = Pair(master_log("a"), FollowerLog())
    pair.handshake()
    return pair


@pytest.mark.parametrize(
    ("first_frame", "reason"),
    [
        (wire.encode(Ack(0)), "expected type hello, got 'ack'"),
        (b"{nope", "not JSON"),
        (b'{"type": "hello"}', "missing fields"),
    ],
    ids=["ack", "not-json", "short-hello"],
)
def test_a_stream_must_start_with_a_hello(first_frame, reason):
    pair = Pair(master_log(), FollowerLog())
    (close,) = pair.master_gets(first_frame, now=0.0)
    assert close.kind is CloseKind.PROTOCOL and close.frame == "hello"
    assert reason in close.reason
    assert pair.master.state is MasterState.CLOSED and pair.to_secondary == []
    assert pair.master.end() == Ended(was_open=False, acked_seq=0)


def test_a_message_other_than_hello_first_is_refused_by_the_stream_too():
    pair = Pair(master_log(), FollowerLog())
    (close,) = pair.master.receive(Ack(0), now=0.0)
    assert close == Close(CloseKind.PROTOCOL, "expected type hello, got 'ack'", "hello")


@pytest.mark.parametrize(
    ("secondary", "incarnation", "reason"),
    [
        ("s9", "inc-1", "http://s1 is 's9', not 's1'"),
        ("s1", "inc-2", "'s1' answers as incarnation 'inc-2', registered as 'inc-1'"),
    ],
    ids=["another-secondary", "another-incarnation"],
)
def test_a_hello_from_another_node_than_the_registered_one_closes_the_stream(
    secondary, incarnation, reason
):
    pair = Pair(master_log("a"), FollowerLog(), incarnation=incarnation)
    pair.secondary = SecondaryStream(secondary, pair.follower)
    assert pair.dial(secondary=secondary) is None
    (close,) = pair.master_gets(pair.to_master.pop(), now=0.0)
    assert close == Close(CloseKind.PEER_MISMATCH, reason)
    assert not pair.log.progress("s1").connected  # never counted as streaming


def test_an_ack_beyond_what_was_sent_closes_the_stream_and_counts_nothing():
    pair = streaming_pair()  # the master has "a", not yet sent
    (close,) = pair.master_gets(wire.encode(Ack(1)), now=0.0)
    assert close == Close(
        CloseKind.PROTOCOL, "ACK of 1..1, but the stream carried only 1..0", "ack"
    )
    assert pair.log.progress("s1").acked_seq == 0 and pair.log.ack_set(1) == ("master",)
    assert pair.master.receive(Ack(0), now=0.0) == []  # closed: nothing more counts


def test_a_second_hello_closes_the_stream():
    pair = streaming_pair()
    (close,) = pair.master_gets(wire.encode(pair.secondary.hello("inc-1")), now=0.0)
    assert close.kind is CloseKind.PROTOCOL and close.frame == "ack"
    assert "expected type ack, got 'hello'" in close.reason


def test_a_silent_secondary_is_dropped_by_poll_and_only_by_it():
    pair = streaming_pair()
    assert not closes(pair.poll(now=HEALTH.unhealthy_after - 0.01))
    (close,) = pair.poll(now=HEALTH.unhealthy_after)
    assert close.kind is CloseKind.UNHEALTHY
    assert pair.master.state is MasterState.CLOSED and pair.poll(now=10.0) == []
    assert pair.master.end() == Ended(was_open=True, acked_seq=0)
    assert not pair.log.progress("s1").connected


def test_a_removed_secondary_gets_nothing_more():
    pair = streaming_pair()
    pair.log.remove("s1")
    assert pair.master.batches() == []
    assert pair.master.receive(Ack(0), now=0.0) == []
    assert pair.master.end() is None


def test_a_hello_for_a_secondary_removed_meanwhile_closes_the_stream_and_counts_nothing():
    pair = Pair(master_log("a"), FollowerLog())
    assert pair.dial() is None
    pair.log.remove("s1")  # DELETE /secondaries/s1 while the hello is on its way
    (close,) = pair.master_gets(pair.to_master.pop(), now=0.0)
    assert close == Close(CloseKind.REMOVED, "'s1' was removed")
    assert pair.to_secondary == [] and pair.master.end() is None
    assert not pair.log.is_member("s1") and pair.log.ack_set(1) == ("master",)


def test_a_late_ack_after_the_stream_closed_counts_nothing():
    pair = streaming_pair()
    pair.poll(now=0.0)  # "a" goes out
    (close,) = closes(pair.poll(now=HEALTH.unhealthy_after))
    assert close.kind is CloseKind.UNHEALTHY
    pair.deliver(now=HEALTH.unhealthy_after)  # the secondary applies "a" and ACKs it late
    assert pair.follower.durable_seq == 1
    assert pair.log.progress("s1").acked_seq == 0 and pair.log.ack_set(1) == ("master",)


# -- protocol violations: the secondary's end -------------------------------------------


@pytest.mark.parametrize(
    ("query", "kind", "cause", "reason"),
    [
        ({"epoch": "0"}, RefusalKind.BAD_REQUEST, RefusalCause.BAD_EPOCH, "integer from 1"),
        ({"epoch": "1e3"}, RefusalKind.BAD_REQUEST, RefusalCause.BAD_EPOCH, "?epoch="),
        ({"max_frame": "lots"}, RefusalKind.BAD_REQUEST, RefusalCause.BAD_MAX_FRAME, "bytes"),
        ({"secondary": "s2"}, RefusalKind.CONFLICT, RefusalCause.WRONG_SECONDARY, "not 's2'"),
        ({"cluster": "c2"}, RefusalKind.CONFLICT, RefusalCause.CLUSTER_MISMATCH, "cluster c1"),
        ({"epoch": "6"}, RefusalKind.CONFLICT, RefusalCause.STALE_MASTER, "newer master epoch"),
        ({"websocket": False}, RefusalKind.BAD_REQUEST, RefusalCause.NOT_WEBSOCKET, "WebSocket"),
    ],
    ids=["epoch-0", "epoch-float", "max-frame", "secondary", "cluster", "stale", "not-ws"],
)
def test_a_dial_is_refused_with_its_reason(query, kind, cause, reason):
    follower = FollowerLog()
    follower.sync(7, 0, 0)  # it followed the master of epoch 7
    pair = Pair(master_log(epoch=7), follower)
    refusal = pair.dial(**query)
    assert (refusal.kind, refusal.cause) == (kind, cause) and reason in refusal.reason
    assert pair.to_master == []  # no hello


def test_a_dial_without_a_cluster_or_secondary_is_taken_and_its_frame_bound_noted():
    pair = Pair(master_log(), FollowerLog())
    assert pair.dial(cluster="", secondary=None, max_frame="2048", own_cluster=None) is None
    assert pair.secondary.master_frame_limit == 2048 and pair.secondary.cluster_id == ""


@pytest.mark.parametrize(
    ("frame", "reason", "frame_type"),
    [
        (wire.encode(Append([Entry(1, 1, None, "x")])), "append before sync", "append"),
        (wire.encode(Heartbeat()), "heartbeat before sync", "heartbeat"),
        (wire.encode(Sync(2, 0, 0)), "sync epoch 2 differs from the stream's epoch 1", "sync"),
        (wire.encode(Sync(1, 5, 0)), "sync keeps 5 entries, this secondary holds 0", "sync"),
        (wire.encode(Ack(0)), "expected type append or heartbeat or sync", None),
        (b'{"type": "sync", "epoch": 1, "keep": "0", "epoch_start": 0}', "'keep'", "sync"),
    ],
    ids=["append", "heartbeat", "other-epoch", "keep-too-much", "ack", "bad-sync"],
)
def test_a_stream_must_start_with_one_sync_of_its_epoch(frame, reason, frame_type):
    pair = Pair(master_log(), FollowerLog())
    assert pair.dial() is None
    (close,) = pair.secondary_gets(frame)
    assert close.kind is CloseKind.PROTOCOL and reason in close.reason
    assert close.frame == frame_type
    assert pair.follower.stream_epoch == 0  # no sync happened
    assert pair.secondary.ack(0) is None  # and nothing is acknowledged
    assert pair.secondary_gets(wire.encode(Sync(1, 0, 0))) == []  # dropped: deaf


def test_a_second_sync_drops_the_stream():
    pair = streaming_pair()
    (close,) = pair.secondary_gets(wire.encode(Sync(1, 0, 0)))
    assert close == Close(CloseKind.PROTOCOL, "a second sync on one stream", "sync")


def test_nothing_is_acknowledged_before_sync_nor_after_a_drop():
    pair = Pair(master_log(), FollowerLog())
    assert pair.dial() is None
    assert pair.secondary.ack(0) is None
    pair.secondary_gets(wire.encode(Sync(1, 0, 0)))
    assert pair.secondary.ack(0) == Ack(0)
    close = pair.secondary.drop("beyond the buffer", "append", CloseKind.BOUND)
    assert close == Close(CloseKind.BOUND, "beyond the buffer", "append")
    assert pair.secondary.drop("again") is None  # one drop per stream
    assert pair.secondary.ack(0) is None


def test_the_secondary_hands_appends_over_only_after_sync():
    pair = streaming_pair()
    batch = Append([Entry(1, 1, None, "a")])
    assert pair.secondary.receive(batch) == [Heard(), ApplyEntries(batch.entries)]


# -- the codec --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        Hello("s1", "inc", 5, 4, 3, 3, [[1, 1], [3, 4]]),
        Sync(epoch=3, keep=2, epoch_start=1),
        Append([Entry(1, 1, None, "a"), Entry(2, 2, "k", "b"), Entry(3, 2, 7, "c")]),
        Append([Entry(4, 2, None, "d")], commit=3),
        Heartbeat(),
        Heartbeat(commit=0),
        Heartbeat(commit=wire.MAX_INT),
        Ack(5),
    ],
    ids=[
        "hello",
        "sync",
        "append",
        "append-commit",
        "heartbeat",
        "heartbeat-commit-0",
        "heartbeat-commit-max",
        "ack",
    ],
)
def test_every_message_survives_the_codec(message):
    kind = type(message).__name__.lower()
    assert wire.decode_message(wire.encode(message), kind) == message


# -- the commit point ---------------------------------------------------------------------


def commit_pairs():
    """The master of master_log with two secondaries streaming to it: s1 and s3 (N = 3,
    a majority is 2; s2 is taken out so that s1 and s3 decide)."""
    log = master_log()
    log.remove("s2")
    log.register("s3", "http://s3", 0, now=0.0, incarnation="inc-s3")
    one = Pair(log, FollowerLog())
    three = Pair(log, FollowerLog(), incarnation="inc-s3", name="s3")
    for pair in (one, three):
        pair.handshake(now=0.0)
        pair.poll(now=0.0)
        pair.deliver(now=0.0)
    log.update_health(0.0)
    return log, one, three


def test_appends_carry_the_commit_point_and_an_ack_that_moves_it_says_so():
    log, one, _ = commit_pairs()
    append(log, "a", "b")
    (batch,) = [m for m in sent(one.poll(now=0.1)) if isinstance(m, Append)]
    assert batch.commit == 0  # the master alone holds them
    one.deliver(now=0.1)
    # s1's ACK made the master and s1 a majority for 1..2.
    assert Committed(2) in one.master_effects and log.commit_seq == 2
    assert one.follower.commit_seq == 0  # not told yet: its batch said 0


def test_a_commit_point_that_advanced_goes_out_in_one_heartbeat_when_nothing_else_does():
    log, one, three = commit_pairs()
    append(log, "a", "b")
    one.poll(now=0.1)
    one.deliver(now=0.1)  # s1 holds 1..2: committed
    assert log.commit_seq == 2
    # s3 is behind: its next poll sends the batch, carrying the commit point.
    (batch,) = sent(three.poll(now=0.1))
    assert isinstance(batch, Append) and batch.commit == 2
    # s1 has everything: no append will carry it, so after COMMIT_NOTICE_SECONDS (so
    # that sequential writes share the frame) one heartbeat tells it, long before a
    # heartbeat is due.
    assert sent(one.poll(now=0.1)) == []
    assert one.master.next_poll_at == 0.1 + COMMIT_NOTICE_SECONDS
    assert sent(one.poll(now=0.1 + COMMIT_NOTICE_SECONDS)) == [Heartbeat(commit=2)]
    assert sent(one.poll(now=0.12)) == []  # told once, not once per poll
    effects = one.secondary_gets(one.to_secondary.pop())
    assert Committed(2) in effects and Send(Ack(2)) in effects
    assert one.follower.told_commit == 2 and one.follower.commit_seq == 2
    # A heartbeat due later carries it again; told nothing new, the secondary says nothing.
    assert sent(one.poll(now=1.0)) == [Heartbeat(commit=2)]
    assert Committed(2) not in one.secondary_gets(one.to_secondary.pop())


def test_an_append_within_the_notice_delay_carries_the_commit_point_instead():
    log, one, _three = commit_pairs()
    append(log, "a", "b")
    one.poll(now=0.1)
    one.deliver(now=0.1)
    assert log.commit_seq == 2 and sent(one.poll(now=0.1)) == []  # waiting for an append
    append(log, "c")
    (batch,) = sent(one.poll(now=0.105))
    assert isinstance(batch, Append) and batch.commit == 2
    # Told by the append: no heartbeat for it once the delay has passed.
    assert one.master.next_poll_at != 0.1 + COMMIT_NOTICE_SECONDS
    assert sent(one.poll(now=0.1 + COMMIT_NOTICE_SECONDS)) == []


def test_a_secondary_shows_majority_reads_only_within_what_it_holds():
    follower = FollowerLog()
    pair = Pair(master_log("a", "b", "c"), follower)
    pair.handshake(now=0.0)
    # The master says 3 is committed before the secondary holds anything on disk.
    effects = pair.secondary_gets(wire.encode(Heartbeat(commit=3)))
    assert Committed(0) in effects and follower.told_commit == 3
    assert follower.commit_seq == 0
    pair.poll(now=0.0)
    pair.deliver(now=0.0)
    assert follower.visible_seq == 3 and follower.commit_seq == 3


def test_frames_from_a_master_without_commit_points_are_taken():
    """An older master sends neither field: nothing is told, nothing breaks."""
    follower = FollowerLog()
    pair = Pair(master_log(), follower)
    pair.handshake(now=0.0)
    effects = pair.secondary_gets(b'{"type":"heartbeat"}')
    assert effects == [Heard(), Send(Ack(0))]
    frame = b'{"type":"append","entries":[[1,1,null,"a"]]}'
    assert effects_of(pair.secondary_gets(frame), ApplyEntries)
    assert follower.told_commit == 0 and follower.commit_seq == 0
