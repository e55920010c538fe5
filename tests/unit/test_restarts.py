"""Crash windows at start-up and stop: a node must neither refuse to start when
nothing is wrong nor forget what it was doing (found by an outside review)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

import pytest

from replog.common.config import StorageConfig
from replog.core import LogReport
from replog.core.entry import Entry
from replog.master.config import MasterConfig
from replog.master.node import MasterNode
from replog.secondary.config import SecondaryConfig
from replog.secondary.node import SecondaryNode
from replog.storage.node_store import StoreError, open_store
from support.lossy_fs import LossyFileSystem

MASTER_DIR = Path("/node/master")


class Killed(Exception):
    pass


def master_store(fs: LossyFileSystem):
    return open_store(data_dir=MASTER_DIR, node="master", role="master", fsync="never", fs=fs)


def test_an_interrupted_recover_keeps_the_rank_of_the_masters_whole_log():
    fs = LossyFileSystem()
    store = master_store(fs)
    store.append([Entry(i, 2, None, f"m{i}") for i in range(1, 101)])
    store.update_state(cluster_id="c1", epoch=2)
    store.close()
    config = MasterConfig(
        secondaries=1, recover=True, storage=StorageConfig(data_dir=MASTER_DIR, fsync="never")
    )
    shorter = LogReport("s2", "http://s2", 90, 2, 2, 2, "i2", "c1")
    for image in (fs, fs.kill()):  # and again after a kill -9 while it waited
        node = MasterNode(config, master_store(image))
        node.recovery.report(shorter)
        plan = node.recovery.plan(0.0, 0, node.log.cluster_size)
        assert plan is not None and plan.source is None  # its own 100 entries win
        node.store.close()


@pytest.mark.parametrize("role, node", [("secondary", "s1"), ("master", "master")])
def test_a_new_node_killed_before_its_log_directory_existed_starts(role, node):
    fs = LossyFileSystem()
    data = Path("/node/data")

    def before(operation, path):
        if operation == "sync_dir" and path == data.parent:
            raise Killed  # identity.json is written; the log's replay has not begun

    fs.before = before
    with pytest.raises(Killed):
        open_store(data_dir=data, node=node, role=role, fs=fs)
    fs.before = None
    open_store(data_dir=data, node=node, role=role, fs=fs.kill()).close()  # no refusal


def test_a_secondary_without_state_repairs_before_the_event_loop_runs(tmp_path):
    data = tmp_path / "s1"
    store = open_store(data_dir=data, node="s1", role="secondary", fsync="never")
    store.append([Entry(1, 1, None, "a"), Entry(2, 1, None, "b")])
    store.close()
    (data / "state.json").unlink()

    def config(repair: bool) -> SecondaryConfig:
        return SecondaryConfig(
            host="127.0.0.1",
            port=1,
            master_url="http://127.0.0.1:2",
            secondary_id="s1",
            storage=StorageConfig(data_dir=data, repair=repair),
        )

    refused = open_store(data_dir=data, node="s1", role="secondary")
    with pytest.raises(StoreError, match="no cluster id"):
        SecondaryNode(config(False), refused)
    refused.close()  # as main() does: frees the data directory's lock
    # As replog-secondary's main() does it: built before the event loop runs.
    node = SecondaryNode(config(True), open_store(data_dir=data, node="s1", role="secondary"))
    assert node.follower.contiguous_seq == 0
    node.store.close()


def test_a_stop_after_a_failed_sync_claims_nothing_it_did_not_sync():
    fs = LossyFileSystem()
    data = Path("/node/s1")
    store = open_store(data_dir=data, node="s1", role="secondary", fs=fs)
    failures: list[BaseException] = []

    def before(operation, path):
        on_sync_thread = threading.current_thread().name == "replog-sync"
        if operation == "sync" and path.suffix == ".seg" and on_sync_thread:
            raise OSError(5, "Input/output error")

    fs.before = before
    store.on_failure = failures.append

    async def main():
        store.append([Entry(1, 1, None, "a")])
        deadline = time.monotonic() + 10
        while not store._group.failed:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the sync never failed"
            await asyncio.sleep(0.001)
        store.close()  # a SIGTERM's stop() got there before the failure callback

    asyncio.run(main())
    fs.before = None
    assert store.state.get("opened_seq", 0) == 0
    after_power_cut = fs.crash(random.Random(1))
    open_store(data_dir=data, node="s1", role="secondary", fs=after_power_cut).close()
