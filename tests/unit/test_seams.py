"""The seams a simulator runs the real nodes through (issue 10).

A MasterNode and a SecondaryNode on a fake clock, with counted ids, seeded
jitter, stores on an in-memory file system that sync only when the test runs
their InlineSyncer, the recovery fetch and registration through injected
transports, and the replication stream carried between the master's
MasterStream and the secondary's ReplicationSession, by hand or by the real
SecondaryLink through an in-process dialer. No socket, no thread, no real
time: every step below happens because the test made it happen.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from functools import partial
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from replog.common import wire
from replog.common.backoff import Backoff
from replog.common.ws import PROTOCOL_ERROR
from replog.core import Entry, LogReport, WriteItem, WriteRequest
from replog.core.stream import MasterStream, Resolve, Send
from replog.master.config import MasterConfig
from replog.master.node import MasterNode
from replog.master.replicator import SecondaryLink
from replog.secondary.config import SecondaryConfig
from replog.secondary.node import SecondaryNode
from replog.secondary.registrar import RegisterAnswer, Registrar
from replog.secondary.replication import ReplicationSession
from replog.storage.group_commit import InlineSyncer
from replog.storage.node_store import open_store
from support.lossy_fs import LossyFileSystem


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def counted_tokens(prefix: str) -> Callable[[int], str]:
    """Tokens like secrets.token_hex's (2 * nbytes characters), counted: p0001, p0002..."""
    count = itertools.count(1)
    return lambda nbytes: f"{prefix}{next(count):0{2 * nbytes - len(prefix)}d}"


class SyncQueue:
    """The schedule an InlineSyncer is given: the test runs the syncs."""

    def __init__(self) -> None:
        self.due: list[Callable[[], None]] = []

    def __call__(self, sync: Callable[[], None]) -> None:
        self.due.append(sync)

    def run(self) -> int:
        due, self.due = self.due, []
        for sync in due:
            sync()
        return len(due)


class NoLink:
    """The master's link to a secondary, left out: the test carries the stream."""

    def __init__(self, host: object, secondary_id: str, config: MasterConfig) -> None:
        pass

    def start(self) -> None: ...

    def wake(self) -> None: ...

    def restart(self) -> None: ...

    async def stop(self) -> None: ...


class BytePipe:
    """The secondary end of a stream: frames it sent, and whether it was closed."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed: tuple[int | None, str | None] | None = None

    def send(self, frame: bytes) -> None:
        if self.closed is None:
            self.sent.append(frame)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closed = (code, reason)


class Cluster:
    """One master and one secondary `s1`, on one in-memory disk each."""

    def __init__(self, links_to: Callable[[SecondaryNode], object] = lambda node: NoLink) -> None:
        """`links_to(secondary)`: the master's link factory (by default, no links)."""
        self.clock = FakeClock()
        self.master_syncs = SyncQueue()
        self.secondary_syncs = SyncQueue()
        self.master_fs = LossyFileSystem()
        self.secondary_fs = LossyFileSystem()
        self.master_tokens = counted_tokens("m")
        self.secondary_tokens = counted_tokens("s")
        self.secondary = self.open_secondary()
        self.link_factory = links_to(self.secondary)
        self.master = self.open_master()

    def open_master(self) -> MasterNode:
        store = open_store(
            data_dir=Path("/disk/master"),
            node="master",
            role="master",
            fs=self.master_fs,
            syncer=InlineSyncer.factory(self.master_syncs, clock=self.clock),
            tokens=self.master_tokens,
        )
        return MasterNode(
            MasterConfig(secondaries=1),
            store,
            link_factory=self.link_factory,
            clock=self.clock,
            wall_clock_ms=lambda: 1_700_000_000_000,
            tokens=self.master_tokens,
            rng=random.Random(1),
        )

    def open_secondary(self) -> SecondaryNode:
        store = open_store(
            data_dir=Path("/disk/s1"),
            node="s1",
            role="secondary",
            fs=self.secondary_fs,
            syncer=InlineSyncer.factory(self.secondary_syncs, clock=self.clock),
            tokens=self.secondary_tokens,
        )
        config = SecondaryConfig(host="s1", port=1, master_url="http://master", secondary_id="s1")
        return SecondaryNode(
            config, store, clock=self.clock, tokens=self.secondary_tokens, rng=random.Random(2)
        )

    def register(self) -> None:
        doc = self.secondary.report()
        self.master.register(
            LogReport(
                doc["id"],
                doc["url"],
                doc["contiguous_seq"],
                doc["last_epoch"],
                doc["sync_epoch"],
                doc["stream_epoch"],
                doc["incarnation"],
                doc["cluster_id"],
                doc["instance"],
            )
        )

    def connect(self) -> tuple[MasterStream, ReplicationSession, BytePipe]:
        """Dial: the master's stream state, the secondary's session on a byte pipe."""
        stream = self.master.open_stream("s1")
        pipe = BytePipe()
        session = ReplicationSession(self.secondary, pipe)
        refused = session.accept(
            epoch=str(stream.epoch),
            secondary="s1",
            cluster=self.master.cluster_id or "",
            max_frame=None,
        )
        assert refused is None
        session.open()
        return stream, session, pipe

    def pump(self, stream: MasterStream, session: ReplicationSession, pipe: BytePipe) -> int:
        """Carry frames both ways until neither side has anything to say; frames moved."""
        moved = 0
        while True:
            to_secondary: list[bytes] = []
            to_master, pipe.sent = pipe.sent, []
            for frame in to_master:
                message = wire.decode_message(frame, *stream.expecting)
                to_secondary += self._carry_out(stream.receive(message, self.clock()))
            to_secondary += self._carry_out(stream.poll(self.clock()))
            for frame in to_secondary:
                session.receive(frame)
            if not to_master and not to_secondary:
                return moved
            moved += len(to_master) + len(to_secondary)

    def streaming(self) -> tuple[MasterStream, ReplicationSession, BytePipe]:
        """Registered and streaming, the master started: its health monitor saw the
        secondary up, so it has quorum and takes writes (stop() it at the end)."""
        self.register()
        stream, session, pipe = self.connect()
        self.pump(stream, session, pipe)  # hello, sync, its ACK
        self.master.start()
        return stream, session, pipe

    async def stop(self) -> None:
        await self.master.stop()
        self.secondary.stop()

    def _carry_out(self, effects: list) -> list[bytes]:
        frames = []
        for effect in effects:
            if isinstance(effect, Send):
                frames.append(wire.encode(effect.message))
            elif isinstance(effect, Resolve):
                self.master.resolve(effect.satisfied)
        return frames


def write(message: str, w: int) -> WriteRequest:
    return WriteRequest((WriteItem(message),), w)


async def turn() -> None:
    """Let the loop run what is ready (a finished wait resumes its writer)."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_ids_come_from_the_injected_tokens():
    cluster = Cluster()
    # The master's store took the first token for its incarnation, the node the next
    # for the cluster it created.
    assert cluster.master.store.identity.incarnation == "m000000000000001"
    assert cluster.master.cluster_id == "m000000000000002"
    assert cluster.secondary.store.identity.incarnation == "s000000000000001"
    assert cluster.secondary.instance == "s000000000000002"


def test_a_w1_write_is_durable_only_once_the_inline_syncer_runs():
    async def main() -> None:
        cluster = Cluster()
        cluster.streaming()
        master = cluster.master
        writing = asyncio.ensure_future(master.write(write("one", 1)))
        await turn()
        assert not writing.done()
        assert master.log.durable_seq == 0
        assert len(cluster.master_syncs.due) == 1  # one sync asked for, none run
        cluster.clock.now += 0.25
        assert cluster.master_syncs.run() == 1
        assert master.log.durable_seq == 1
        outcome = await asyncio.wait_for(writing, 1)
        assert outcome.acked_by == ("master",)
        assert master.store.sync_stats()["syncs"] == 1
        await cluster.stop()

    asyncio.run(main())


def test_a_store_on_an_in_memory_disk_keeps_through_a_power_cut_what_its_syncer_ran():
    async def main() -> None:
        cluster = Cluster()
        cluster.streaming()
        synced = asyncio.ensure_future(cluster.master.write(write("kept", 1)))
        await turn()
        cluster.master_syncs.run()
        await synced
        unsynced = asyncio.ensure_future(cluster.master.write(write("maybe", 1)))
        await turn()
        assert cluster.master_syncs.due and not unsynced.done()  # its sync never runs
        for seed in range(20):
            reopened = open_store(
                data_dir=Path("/disk/master"),
                node="master",
                role="master",
                fs=cluster.master_fs.crash(random.Random(seed)),
                syncer=InlineSyncer.factory(SyncQueue()),
            )
            messages = [record[3] for record in reopened.replay.records]
            assert messages in (["kept"], ["kept", "maybe"]), seed
            assert reopened.identity == cluster.master.store.identity
        unsynced.cancel()
        await cluster.stop()

    asyncio.run(main())


def test_a_w2_write_travels_through_the_session_and_both_inline_syncers():
    async def main() -> None:
        cluster = Cluster()
        stream, session, pipe = cluster.streaming()
        assert cluster.secondary.stream is session
        assert cluster.secondary.cluster_id == cluster.master.cluster_id

        writing = asyncio.ensure_future(cluster.master.write(write("two", 2)))
        await turn()
        cluster.pump(stream, session, pipe)
        # Not on the master's disk yet: nothing is streamed.
        assert cluster.secondary.follower.contiguous_seq == 0
        cluster.master_syncs.run()
        await turn()
        assert not writing.done()  # the master holds it; w=2 wants one more
        cluster.pump(stream, session, pipe)  # now the append reaches the secondary
        assert cluster.secondary.follower.contiguous_seq == 1
        assert cluster.secondary.follower.durable_seq == 0  # not synced: no ACK yet
        assert cluster.secondary_syncs.run() == 1
        cluster.pump(stream, session, pipe)  # the ACK reaches the master
        outcome = await asyncio.wait_for(writing, 1)
        assert outcome.acked_by == ("master", "s1")
        await cluster.stop()

    asyncio.run(main())


def test_a_bad_frame_closes_the_session_pipe_with_a_protocol_error():
    async def main() -> None:
        cluster = Cluster()
        cluster.register()
        _, session, pipe = cluster.connect()
        session.receive(b'{"type": "nonsense"}')
        assert pipe.closed is not None and pipe.closed[0] == PROTOCOL_ERROR
        session.closed()
        assert cluster.secondary.stream is None

    asyncio.run(main())


def test_the_master_health_ages_read_the_injected_clock():
    async def main() -> None:
        cluster = Cluster()
        cluster.register()
        stream, session, pipe = cluster.connect()
        cluster.pump(stream, session, pipe)
        cluster.clock.now += 1.5
        (secondary,) = cluster.master.health()["secondaries"]
        assert secondary["last_heartbeat_ms_ago"] == 1500
        assert cluster.secondary.master_silent_for() == pytest.approx(1.5)

    asyncio.run(main())


def test_recovery_fetches_through_the_injected_fetcher_and_opens_on_the_wall_clock():
    async def main() -> None:
        fetched: list[str] = []
        held = [Entry(1, 7, None, "a"), Entry(2, 7, None, "b")]

        async def fetcher(url: str) -> list[Entry]:
            fetched.append(url)
            return held

        clock = FakeClock()
        # In memory, a master always recovers (lenient) from its secondaries.
        master = MasterNode(
            MasterConfig(secondaries=1),
            link_factory=NoLink,
            fetcher=fetcher,
            clock=clock,
            wall_clock_ms=lambda: 5_000,
            tokens=counted_tokens("m"),
        )
        assert master.recovery is not None
        master.start()
        report = LogReport("s1", "http://s1", 2, 7, 7, 7, "i1", "c1", "x1")
        master.register(report)
        await asyncio.wait_for(master.opened.wait(), 1)
        assert fetched == ["http://s1"]
        assert master.log.epoch == 5_000  # above every epoch seen (7): the wall clock
        assert [e.message for e in master.log.entries(1, 10)] == ["a", "b"]
        assert master.cluster_id == "c1"
        await master.stop()

    asyncio.run(main())


def test_backoff_delays_are_reproducible_from_a_seeded_random():
    def delays(seed: int) -> list[float]:
        cluster = Cluster()
        cluster.secondary.rng.seed(seed)
        registrar = Registrar(cluster.secondary, register=refuse_all)
        return [registrar.backoff.next_delay() for _ in range(6)]

    assert delays(42) == delays(42)
    assert delays(42) != delays(43)
    config = Cluster().secondary.config
    expected = Backoff(config.retry_initial, config.retry_max, rng=random.Random(42))
    assert delays(42) == [expected.next_delay() for _ in range(6)]


def test_a_link_draws_its_jitter_from_the_master_rng():
    cluster = Cluster()
    link = SecondaryLink(cluster.master, "s1", cluster.master.config)
    cluster.master.rng.seed(9)
    first = link.backoff.next_delay()
    cluster.master.rng.seed(9)
    link.backoff.reset()
    assert link.backoff.next_delay() == first


async def refuse_all(report: dict) -> RegisterAnswer:
    raise ConnectionRefusedError("no master here")


@pytest.mark.parametrize(
    ("answer", "registered", "event"),
    [
        (RegisterAnswer(200, b"{}"), True, "registered"),
        (
            RegisterAnswer(401, b'{"error": "bad token"}', "HTTP 401"),
            False,
            "register_unauthorized",
        ),
        (
            RegisterAnswer(409, orjson.dumps({"error": "gone", "conflict": "removed"}), "HTTP 409"),
            False,
            "removed_from_cluster",
        ),
        (RegisterAnswer(503, None, "HTTP 503: read-only"), False, "register_failed"),
    ],
)
def test_the_registrar_reads_the_answer_its_transport_gives(answer, registered, event):
    from structlog.testing import capture_logs

    sent: list[dict] = []

    async def transport(report: dict) -> RegisterAnswer:
        sent.append(report)
        return answer

    async def main() -> bool:
        cluster = Cluster()
        registrar = Registrar(cluster.secondary, register=transport)
        with capture_logs() as logs:
            result = await registrar._register_once()
        assert [e["event"] for e in logs] == [event]
        return result

    assert asyncio.run(main()) is registered
    assert sent[0]["id"] == "s1" and sent[0]["instance"] == "s000000000000002"


def test_an_unreachable_master_is_a_failed_registration():
    async def main() -> bool:
        cluster = Cluster()
        return await Registrar(cluster.secondary, register=refuse_all)._register_once()

    assert asyncio.run(main()) is False


def test_an_inline_syncer_with_no_loop_and_no_schedule_syncs_at_once():
    store = open_store(
        data_dir=Path("/disk/s1"),
        node="s1",
        role="secondary",
        fs=LossyFileSystem(),
        syncer=InlineSyncer.factory(),
    )
    durable: list[int] = []
    store.on_durable = durable.append
    store.append([Entry(1, 1, None, "a")])  # no event loop runs here
    assert durable == [1]


def test_a_failed_inline_sync_reports_the_failure_and_claims_nothing():
    fs = LossyFileSystem()
    syncs = SyncQueue()
    store = open_store(
        data_dir=Path("/disk/s1"),
        node="s1",
        role="secondary",
        fs=fs,
        syncer=InlineSyncer.factory(syncs),
    )
    durable: list[int] = []
    failures: list[BaseException] = []
    store.on_durable = durable.append
    store.on_failure = failures.append

    def fail_syncs(operation: str, path: Path) -> None:
        if operation == "sync":
            raise OSError(5, "EIO")

    async def main() -> None:
        store.append([Entry(1, 1, None, "a")])
        store.append([Entry(2, 1, None, "b")])
        assert len(syncs.due) == 1  # both appends share one sync
        fs.before = fail_syncs
        syncs.run()
        store.append([Entry(3, 1, None, "c")])
        assert syncs.due == []  # nothing syncs after a failure

    asyncio.run(main())
    assert durable == []
    assert [type(f) for f in failures] == [OSError]
    assert store.durable_seq == 0
    assert store.sync_stats()["syncs"] == 0


class Loopback:
    """Both ends of one in-process replication connection: the master's `Connection`
    (what SecondaryLink reads and writes) and the secondary session's `Pipe`."""

    def __init__(self, node: SecondaryNode) -> None:
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.session = ReplicationSession(node, self)
        self._to_master: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._open = True

    # -- the master's end (replicator.Connection) --

    async def read_message(self) -> bytes | None:
        return await self._to_master.get()

    def write_message(self, message: bytes) -> asyncio.Future[None]:
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._open:
            asyncio.get_running_loop().call_soon(self.session.receive, message)
            sent.set_result(None)
        else:
            sent.set_exception(ConnectionResetError())
        return sent

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if self._open:
            self._open = False
            self.close_code, self.close_reason = code, reason
            self._to_master.put_nowait(None)
            self.session.closed()

    # -- the secondary's end (replication.Pipe) --

    def send(self, frame: bytes) -> None:
        if self._open:
            self._to_master.put_nowait(frame)


def loopback_dialer(node: SecondaryNode, dialed: list[Loopback]):
    async def dial(url: str, timeout: float, limit: object, peers: object) -> Loopback:
        query = dict(parse_qsl(urlsplit(url).query))
        connection = Loopback(node)
        refused = connection.session.accept(
            epoch=query["epoch"],
            secondary=query["secondary"],
            cluster=query["cluster"],
            max_frame=query.get("max_frame"),
        )
        assert refused is None, refused
        connection.session.open()
        dialed.append(connection)
        return connection

    return dial


async def settle(cluster: Cluster, done: Callable[[], bool], turns: int = 200) -> None:
    """Run the loop a bounded number of turns, running every sync asked for, until `done`."""
    for _ in range(turns):
        if done():
            return
        cluster.master_syncs.run()
        cluster.secondary_syncs.run()
        await asyncio.sleep(0)
    raise AssertionError(f"not done after {turns} loop turns")


def test_the_real_link_streams_to_the_real_session_through_a_dialer():
    async def main() -> None:
        dialed: list[Loopback] = []
        cluster = Cluster(
            links_to=lambda secondary: partial(
                SecondaryLink, dial=loopback_dialer(secondary, dialed)
            )
        )
        cluster.register()
        await settle(cluster, lambda: cluster.master.log.progress("s1").connected)
        cluster.master.start()  # health: the secondary is up, there is quorum
        writing = asyncio.ensure_future(cluster.master.write(write("linked", 2)))
        await settle(cluster, writing.done)
        assert writing.result().acked_by == ("master", "s1")
        assert [e.message for e in cluster.secondary.follower.entries(1, 10)] == ["linked"]
        assert len(dialed) == 1
        await cluster.stop()
        assert cluster.secondary.stream is None

    asyncio.run(main())


def test_a_report_waits_for_the_sync_of_what_was_applied():
    """A master that lost its disk picks its log from the reports: one made while a
    sync is pending would miss entries that become durable (and visible) just after,
    and the new master would cut them."""

    async def main() -> None:
        cluster = Cluster()
        secondary = cluster.secondary
        secondary.sync(1, 0, 0)
        secondary.apply([Entry(1, 1, "a", "m1"), Entry(2, 1, "b", "m2")], epoch=1)
        assert (secondary.follower.contiguous_seq, secondary.follower.durable_seq) == (2, 0)
        settling = asyncio.ensure_future(secondary.settle(5.0))
        await turn()
        assert not settling.done()  # the sync has not run
        assert cluster.secondary_syncs.run() == 1
        await asyncio.wait_for(settling, 1)
        assert secondary.report()["contiguous_seq"] == 2

    asyncio.run(main())


def test_a_report_waits_no_longer_once_a_sync_cut_the_pending_entries():
    async def main() -> None:
        cluster = Cluster()
        secondary = cluster.secondary
        secondary.sync(1, 0, 0)
        secondary.apply([Entry(1, 1, "a", "m1")], epoch=1)
        settling = asyncio.ensure_future(secondary.settle(5.0))
        await turn()
        assert not settling.done()
        secondary.sync(2, 0, 0)  # a new master keeps nothing: nothing is pending
        await asyncio.wait_for(settling, 1)
        assert secondary.report()["contiguous_seq"] == 0

    asyncio.run(main())
