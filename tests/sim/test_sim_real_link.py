"""The foundation carries the real replication code: the master's SecondaryLink and the
secondary's ReplicationSession, on SimLoop, talking over SimNetwork.

The glue here (a dialer, an acceptor) is the least that shows the fit; building the
simulated nodes properly is the next slice's work.
"""

import asyncio
import itertools
import random
from functools import partial
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from replog.core import LogReport, WriteItem, WriteRequest
from replog.master.config import MasterConfig
from replog.master.node import MasterNode
from replog.master.replicator import SecondaryLink
from replog.secondary.config import SecondaryConfig
from replog.secondary.node import SecondaryNode
from replog.secondary.replication import ReplicationSession
from replog.storage.group_commit import InlineSyncer
from replog.storage.node_store import open_store
from support.lossy_fs import LossyFileSystem
from tools.sim.loop import NodeClock, SimLoop
from tools.sim.network import SimConnection, SimNetwork

SYNC_SECONDS = 0.002  # a simulated fdatasync


def tokens(prefix: str):
    count = itertools.count(1)
    return lambda nbytes: f"{prefix}{next(count):0{2 * nbytes - len(prefix)}d}"


def store(loop: SimLoop, clock: NodeClock, name: str, role: str, tokens_):
    return open_store(
        data_dir=Path(f"/disk/{name}"),
        node=name,
        role=role,
        fs=LossyFileSystem(),
        syncer=InlineSyncer.factory(partial(loop.call_later, SYNC_SECONDS), clock=clock),
        tokens=tokens_,
    )


def serve_replication(loop: SimLoop, node: SecondaryNode):
    """The secondary's acceptor: a ReplicationSession on each connection."""

    def accept(end: SimConnection, query: dict) -> None:
        session = ReplicationSession(node, end)
        refused = session.accept(
            epoch=query["epoch"],
            secondary=query["secondary"],
            cluster=query["cluster"],
            max_frame=query.get("max_frame"),
        )
        assert refused is None, refused
        session.open()

        async def read() -> None:
            while (frame := await end.read_message()) is not None:
                session.receive(frame)
            session.closed()

        loop.create_task(read())

    return accept


def run_cluster(seed: int) -> dict:
    loop = SimLoop()
    network = SimNetwork(loop, random.Random(seed), latency=0.001, jitter=0.004)
    master_clock, secondary_clock = NodeClock(loop), NodeClock(loop)
    master_tokens, secondary_tokens = tokens("m"), tokens("s")
    config = SecondaryConfig(host="s1", port=1, master_url="http://master", secondary_id="s1")
    secondary = SecondaryNode(
        config,
        store(loop, secondary_clock, "s1", "secondary", secondary_tokens),
        clock=secondary_clock,
        tokens=secondary_tokens,
        rng=random.Random(seed + 1),
    )
    network.listen("s1", serve_replication(loop, secondary))

    async def dial(url: str, timeout: float, limit: object, peers: object) -> SimConnection:
        query = dict(parse_qsl(urlsplit(url).query))
        return await network.connect("master", urlsplit(url).hostname, query, timeout=timeout)

    master = MasterNode(
        MasterConfig(secondaries=1),
        store(loop, master_clock, "master", "master", master_tokens),
        link_factory=partial(SecondaryLink, dial=dial),
        clock=master_clock,
        wall_clock_ms=master_clock.wall_ms,
        tokens=master_tokens,
        rng=random.Random(seed + 2),
    )
    done: list[tuple[str, float, tuple[str, ...]]] = []

    async def write(message: str) -> None:
        result = await master.write(WriteRequest((WriteItem(message),), 2))
        done.append((message, loop.time(), result.acked_by))

    async def main() -> None:
        doc = secondary.report()
        keys = ("id", "url", "contiguous_seq", "last_epoch", "sync_epoch", "stream_epoch")
        keys += ("incarnation", "cluster_id", "instance")
        master.register(LogReport(*(doc[key] for key in keys)))
        while not master.log.progress("s1").connected:
            await asyncio.sleep(0.01)
        master.start()
        while master.log.read_only_reason() is not None:  # its health monitor's first turn
            await asyncio.sleep(0.01)
        await write("first")
        network.reset("master", "s1")  # the link redials; the write waits for it
        await write("after a reset")
        network.cut("master", "s1", mode="hold", both=True)
        loop.call_later(0.5, lambda: network.heal("master", "s1", both=True))
        await write("across a held cut")
        await master.stop()
        secondary.stop()

    loop.run_until_complete(main(), max_events=1_000_000, time_limit=600)
    result = {
        "writes": done,
        "secondary": [e.message for e in secondary.follower.entries(1, 10)],
        "dials": network.stats["dials"],
        "trace": network.trace.format(),
        "events": loop.events,
        "unhandled": loop.unhandled_errors,
    }
    loop.shutdown()
    loop.close()
    return result


def test_the_real_link_replicates_over_the_simulated_network_through_faults():
    result = run_cluster(seed=1)
    messages = ["first", "after a reset", "across a held cut"]
    assert [(m, acked) for m, _, acked in result["writes"]] == [
        (m, ("master", "s1")) for m in messages
    ]
    assert result["secondary"] == messages
    assert result["dials"] >= 2  # the reset made it dial again
    assert result["unhandled"] == []
    held_until = result["writes"][1][1] + 0.5
    assert result["writes"][2][1] >= held_until  # acknowledged only after the heal


def test_the_real_link_replays_bit_for_bit():
    first, again = run_cluster(seed=7), run_cluster(seed=7)
    assert first["trace"] == again["trace"]
    assert first["writes"] == again["writes"]
    assert first["events"] == again["events"]
