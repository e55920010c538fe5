"""The master node drives its replication links through the factory it is given.

No sockets: a recording link stands in for master.replicator.SecondaryLink.
"""

import time

import pytest

from replog.core import LogReport, WriteItem, WriteRequest
from replog.core.stream import MasterState, MasterStream
from replog.master.config import MasterConfig
from replog.master.node import MasterNode


class RecordingLink:
    def __init__(self, host, secondary_id: str, config: MasterConfig) -> None:
        self.host = host
        self.secondary_id = secondary_id
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def wake(self) -> None:
        self.calls.append("wake")

    def restart(self) -> None:
        self.calls.append("restart")

    async def stop(self) -> None:
        self.calls.append("stop")


@pytest.fixture
def made():
    return []


@pytest.fixture
def node(made):
    def factory(host, secondary_id, config):
        made.append(RecordingLink(host, secondary_id, config))
        return made[-1]

    node = MasterNode(MasterConfig(secondaries=2), link_factory=factory)
    node.log.adopt([], epoch=1)
    now = time.monotonic()
    for name in ("s1", "s2"):  # quorum in the core, without links
        node.log.register(name, f"http://{name}", 0, now=now)
        node.log.stream_opened(name, 0, now=now)
    node.log.update_health(now)
    node.opened.set()
    return node


def report(node: MasterNode) -> LogReport:
    return LogReport(
        "s3", "http://127.0.0.1:9", 0, 0, 0, incarnation="i3", cluster_id=node.cluster_id
    )


@pytest.mark.gen_test
async def test_a_registration_makes_and_starts_a_link_and_a_second_one_restarts_it(node, made):
    node.register(report(node))
    (link,) = made
    assert link.host is node and link.secondary_id == "s3" and link.calls == ["start"]
    node.register(report(node))
    assert len(made) == 1 and link.calls == ["start", "restart"]


@pytest.mark.gen_test
async def test_new_entries_wake_the_links_and_a_removal_stops_one(node, made):
    node.register(report(node))
    (link,) = made
    outcome = await node.write(WriteRequest((WriteItem("m", None),), w=1))
    assert outcome.acked_by == ("master",) and link.calls == ["start", "wake"]
    await node.remove("s3")
    assert link.calls[-1] == "stop" and "s3" not in node.links


@pytest.mark.gen_test
async def test_the_node_opens_each_session_a_stream_over_its_log(node, made):
    node.register(report(node))
    stream = node.open_stream("s3")
    assert isinstance(stream, MasterStream) and stream.state is MasterState.AWAITING_HELLO
    assert stream.epoch == 1 and stream.log is node.log
    assert node.url_of("s3") == "http://127.0.0.1:9"
    await node.remove("s3")
    assert node.url_of("s3") is None
