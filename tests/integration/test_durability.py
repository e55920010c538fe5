"""Durable nodes against real processes: kill -9 anything, restart, lose nothing acknowledged."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from replog.storage.segments import HEADER
from support.cluster import Cluster, Node
from support.waiting import wait_until
from tools.harness import http

# Debian's libfaketime (make test installs it): LD_PRELOAD it to set a process's clock.
FAKETIME_LIB = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)
W_CYCLE = (1, 2, 3, "majority")


def wait_open(cluster: Cluster) -> dict:
    return wait_until(
        lambda: (h := cluster.master.health())["status"] == "ok" and h,
        timeout=20,
        what="master open with quorum",
    )


def wait_converged(cluster: Cluster) -> list[dict]:
    final = cluster.master.messages()
    for node in cluster.secondaries.values():
        wait_until(lambda node=node: node.messages() == final, what=f"{node.name} converged")
    return final


def events(node: Node, name: str) -> list[dict]:
    return [e for e in node.events() if e["event"] == name]


def segments(cluster: Cluster, name: str) -> list[Path]:
    return sorted((cluster.data_dir(name) / "log").glob("*.seg"))


def record_offsets(path: Path) -> list[int]:
    data = path.read_bytes()
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        length, _crc = HEADER.unpack_from(data, offset)
        offset += HEADER.size + length
    return offsets


def write_all(cluster: Cluster, count: int = 5) -> list[dict]:
    """`count` writes held by every node (w=3); returns the log they converged to."""
    for i in range(count):
        assert cluster.write(f"m{i}", w=3, id=i).status == 201
    return wait_converged(cluster)


def three_nodes(cluster_factory, *extra: str) -> Cluster:
    cluster = cluster_factory(secondaries=2)
    cluster.start_master(*extra)
    cluster.add_secondary("s1")
    cluster.add_secondary("s2")
    return cluster


def test_every_node_killed_at_once_under_mixed_w_load_loses_nothing(cluster_factory):
    cluster = three_nodes(cluster_factory)
    stop = threading.Event()
    acked: dict[str, int] = {}
    lock = threading.Lock()

    def writer(n: int) -> None:
        for k in range(10_000):  # bounded; ends at the kill
            if stop.is_set():
                return
            key = f"w{n}-{k}"
            try:
                resp = cluster.write(key, w=W_CYCLE[k % 4], id=key, timeout=5)
            except OSError:
                return
            if resp.status in (200, 201):
                with lock:
                    acked[key] = resp.body["seq"]

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(writer, n) for n in range(6)]
        wait_until(lambda: len(acked) >= 300, timeout=60, what="acknowledged writes")
        nodes = list(cluster.nodes())
        for node in nodes:  # SIGKILL all three before reaping any
            node.proc.kill()
        for node in nodes:
            node.kill()
        stop.set()
        for f in futures:
            f.result(30)
    before = dict(acked)
    for node in nodes:
        node.start()
    wait_open(cluster)
    final = wait_converged(cluster)
    by_id = {m["id"]: m for m in final}
    assert len(by_id) == len(final)  # no id twice
    assert [m["seq"] for m in final] == list(range(1, len(final) + 1))
    for key, seq in before.items():  # w=1 included
        assert by_id[key]["seq"] == seq and by_id[key]["message"] == key
    # Retries of acknowledged ids after the restart are answered, not appended.
    for key in list(before)[:20]:
        retry = cluster.write(key, w=1, id=key)
        assert retry.status == 200 and retry.body["seq"] == before[key]


@pytest.mark.parametrize("wipe_b", [False, True], ids=["b_intact", "b_wiped"])
def test_master_and_a_secondary_killed_together_lose_nothing(cluster_factory, wipe_b):
    """The issue's first scenario: B comes back first (empty, or with its log); then the master."""
    cluster = three_nodes(cluster_factory)
    for i in range(5):
        assert cluster.write(f"m{i}", w=3, id=i).status == 201
    master, a, b = cluster.master, cluster.secondaries["s1"], cluster.secondaries["s2"]
    expected = master.messages()
    master.proc.kill()
    b.kill()
    master.kill()
    if wipe_b:
        cluster.wipe("s2")
    b.start()
    wait_until(lambda: b.health()["contiguous_seq"] == (0 if wipe_b else 5), what="B up")
    master.start()
    wait_open(cluster)
    assert wait_converged(cluster) == expected
    assert events(a, "log_truncated") == []
    assert a.messages() == expected


def test_more_secondaries_than_configured_are_all_kept_across_a_master_restart(cluster_factory):
    """The issue's second scenario: four secondaries, --secondaries 2."""
    cluster = cluster_factory(secondaries=2)
    cluster.start_master()
    for name in ("s1", "s2", "s3", "s4"):
        cluster.add_secondary(name)
    assert cluster.master.health()["cluster_size"] == 5
    assert cluster.write("held by three", w=3, id="x").status == 201
    wait_converged(cluster)
    cluster.master.kill()
    cluster.master.start()
    health = wait_open(cluster)
    assert health["cluster_size"] == 5  # membership survived the restart
    final = wait_converged(cluster)
    assert [m["id"] for m in final] == ["x"]
    for node in cluster.secondaries.values():
        assert events(node, "log_truncated") == []


def test_a_w1_write_survives_a_master_kill_and_its_retry_is_a_duplicate(cluster_factory):
    cluster = three_nodes(cluster_factory)
    first = cluster.write("only the master", w=1, id="solo")
    assert first.status == 201
    cluster.master.kill()  # at once: the secondaries may not have it yet
    cluster.master.start()
    wait_open(cluster)
    retry = cluster.write("only the master", w=3, id="solo")
    assert retry.status == 200 and retry.body["duplicate"] is True
    assert retry.body["seq"] == first.body["seq"]
    assert [m["id"] for m in wait_converged(cluster)] == ["solo"]


def test_membership_and_cluster_size_survive_a_restart(cluster_factory):
    cluster = cluster_factory()  # no --secondaries: N comes from who registered
    cluster.start_master()
    cluster.add_secondary("s1")
    cluster.add_secondary("s2")
    assert cluster.master.health()["cluster_size"] == 3
    for node in cluster.nodes():
        node.kill()
    cluster.master.start()
    health = wait_until(cluster.master.health, what="master serving")
    assert health["cluster_size"] == 3 and health["read_only"] is True
    assert {s["id"]: s["url"] for s in health["secondaries"]} == {
        name: node.url for name, node in cluster.secondaries.items()
    }
    assert cluster.write("no quorum", w=1).status == 503
    cluster.secondaries["s1"].start()
    wait_open(cluster)
    assert cluster.write("with s1", w=2).status == 201


def test_storage_is_reported_in_health(cluster_factory):
    cluster = cluster_factory(secondaries=1)
    cluster.start_master()
    cluster.add_secondary("s1")
    for node in cluster.nodes():
        health = node.health()
        assert health["storage"] == "disk"
        assert health["data_dir"] == str(cluster.data_dir(node.name))
    memory = cluster_factory(secondaries=1, in_memory=True)
    memory.start_master()
    memory.add_secondary("s1")
    for node in memory.nodes():
        assert node.health()["storage"] == "memory" and node.health()["data_dir"] is None


def test_a_torn_tail_is_truncated_with_a_warning(cluster_factory):
    cluster = three_nodes(cluster_factory)
    expected = write_all(cluster)
    s1 = cluster.secondaries["s1"]
    s1.kill()
    (newest,) = segments(cluster, "s1")
    garbage = b"\x17\x00\x00\x00garbage left by a crash"
    with newest.open("ab") as f:
        f.write(garbage)
    s1.start()
    cluster.wait_connected("s1")
    assert s1.messages() == expected
    (warning,) = events(s1, "log_tail_truncated")
    assert warning["level"] == "warning" and warning["file"] == str(newest)
    assert warning["dropped_bytes"] == len(garbage)
    assert newest.stat().st_size == warning["offset"]


def corrupt_second_record(path: Path) -> int:
    """Flip a byte inside the second record's payload; returns that record's offset."""
    offset = record_offsets(path)[1]
    data = bytearray(path.read_bytes())
    data[offset + HEADER.size + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    return offset


def test_a_damaged_secondary_log_is_refused_then_repaired_and_refilled(cluster_factory):
    cluster = three_nodes(cluster_factory)
    expected = write_all(cluster)
    s1 = cluster.secondaries["s1"]
    s1.kill()
    (segment,) = segments(cluster, "s1")
    offset = corrupt_second_record(segment)
    s1.start()
    assert s1.proc.wait(20) != 0
    output = s1.log_path.read_text()
    assert f"{segment}: bad record at offset {offset}" in output and "--repair" in output
    s1.argv.append("--repair")
    s1.start()
    cluster.wait_connected("s1")
    wait_until(lambda: s1.messages() == expected, what="s1 refilled from the master")
    (repaired,) = events(s1, "log_repaired")
    assert repaired["file"] == str(segment) and repaired["offset"] == offset


def test_a_damaged_master_log_is_refused_then_repaired_from_the_secondaries(cluster_factory):
    cluster = three_nodes(cluster_factory)
    expected = write_all(cluster)
    master = cluster.master
    master.kill()
    (segment,) = segments(cluster, "master")
    offset = corrupt_second_record(segment)
    master.start()
    assert master.proc.wait(20) != 0
    assert f"{segment}: bad record at offset {offset}" in master.log_path.read_text()
    master.argv.append("--repair")
    master.start()
    wait_open(cluster)
    assert master.messages() == expected  # recovered 2..5 from the secondaries
    assert cluster.write("after repair", w=3, id="after").status == 201
    assert len(wait_converged(cluster)) == 6


def test_a_wiped_secondary_is_refilled_and_never_counted_for_what_it_lost(cluster_factory):
    cluster = three_nodes(cluster_factory)
    expected = write_all(cluster)
    s2 = cluster.secondaries["s2"]
    s2.kill()
    cluster.wipe("s2")
    s2.argv[s2.argv.index("--delay") + 1] = "3"  # it refills slowly this time
    s2.start()
    wait_until(lambda: events(cluster.master, "secondary_new_incarnation"), what="new incarnation")
    # Until it holds the entries again, s2 counts as holding none of them.
    retry = cluster.write("m4", w=3, id=4, wtimeout=500)
    assert retry.status == 504 and retry.body["acked_by"] == ["master", "s1"]
    wait_until(lambda: s2.messages() == expected, timeout=30, what="s2 refilled")
    again = cluster.write("m4", w=3, id=4, wtimeout=10_000)
    assert again.status == 200 and again.body["acked_by"] == ["master", "s1", "s2"]


def test_a_master_without_its_disk_touches_no_secondary_then_recovers(cluster_factory):
    cluster = three_nodes(cluster_factory)
    expected = write_all(cluster)
    master = cluster.master
    master.kill()
    cluster.wipe("master")
    master.start()  # a new cluster: the old secondaries are refused and keep their data
    for name, node in cluster.secondaries.items():
        wait_until(lambda node=node: events(node, "cluster_mismatch"), what=f"{name} refused")
        assert node.messages() == expected
        assert events(node, "log_truncated") == []
    assert master.messages() == []
    assert events(master, "cluster_mismatch")
    refused = http.post(
        master.url + "/register",
        {"id": "s1", "url": cluster.secondaries["s1"].url, "cluster_id": "0123456789abcdef"},
    )
    assert refused.status == 409 and "cluster" in refused.body["error"]

    master.kill()
    master.argv.append("--recover")
    master.start()
    health = wait_open(cluster)
    assert health["cluster_id"] == cluster.secondaries["s1"].health()["cluster_id"]
    assert master.messages() == expected
    assert cluster.write("after recovery", w=3, id="after").status == 201
    assert len(wait_converged(cluster)) == 6


def test_recover_waits_for_every_expected_secondary(cluster_factory):
    cluster = three_nodes(cluster_factory)
    for i in range(3):
        assert cluster.write(f"m{i}", w=3, id=i).status == 201
    expected = wait_converged(cluster)
    cluster.master.kill()
    cluster.secondaries["s2"].kill()
    cluster.wipe("master")
    cluster.master.argv.append("--recover")
    cluster.master.start()
    wait_until(
        lambda: cluster.master.health()["recovery"]["reported"] == ["s1"], what="s1 reported"
    )
    health = cluster.master.health()
    assert health["status"] == "recovering" and health["recovery"]["missing"] == 1
    assert cluster.write("too early", w=1).status == 503
    cluster.secondaries["s2"].start()
    wait_open(cluster)
    assert cluster.master.messages() == expected


@pytest.mark.skipif(FAKETIME_LIB is None, reason="needs Debian's libfaketime (make test-deps)")
def test_a_master_whose_clock_steps_back_still_opens_in_a_higher_epoch(cluster_factory):
    cluster = three_nodes(cluster_factory)
    assert cluster.write("before", w=3, id="b").status == 201
    first_epoch = cluster.master.health()["epoch"]
    master = cluster.master
    master.kill()
    master.env = {
        "LD_PRELOAD": str(FAKETIME_LIB),
        "FAKETIME": "-3d",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    master.start()
    health = wait_open(cluster)
    assert health["epoch"] > first_epoch
    stamp = events(master, "opened")[-1]["timestamp"]
    assert time.time() - time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) > 2 * 86400
    after = cluster.write("after", w=3, id="a")
    assert after.status == 201 and after.body["acked_by"] == ["master", "s1", "s2"]


def test_an_interrupted_repair_is_not_forgotten_at_the_next_start(cluster_factory):
    cluster = three_nodes(cluster_factory)
    expected = write_all(cluster)
    for node in cluster.nodes():
        node.kill()
    master = cluster.master
    (segment,) = segments(cluster, "master")
    corrupt_second_record(segment)
    master.argv.append("--repair")
    master.start()  # cuts its log at record 2, then waits for the secondaries
    wait_until(lambda: master.health()["status"] == "recovering", what="recovering")
    master.kill()
    master.argv.remove("--repair")
    master.start()  # without --repair: it must go on recovering, not open with 1 entry
    wait_until(lambda: master.health()["status"] == "recovering", what="recovering again")
    for node in cluster.secondaries.values():
        node.start()
    wait_open(cluster)
    assert wait_converged(cluster) == expected
    for node in cluster.secondaries.values():
        assert events(node, "log_truncated") == []


def test_a_repaired_master_does_not_outrank_secondaries_holding_more(cluster_factory):
    cluster = three_nodes(cluster_factory)
    expected = write_all(cluster)
    for node in cluster.secondaries.values():
        node.kill()
    master = cluster.master
    master.kill()
    master.start()  # opens in a newer epoch, read-only without its secondaries
    wait_until(lambda: master.health()["epoch"] == 2, what="master reopened in epoch 2")
    master.kill()
    (segment,) = segments(cluster, "master")
    corrupt_second_record(segment)
    master.argv.append("--repair")
    master.start()
    for node in cluster.secondaries.values():
        node.start()
    wait_open(cluster)
    assert wait_converged(cluster) == expected


def test_a_master_whose_log_files_vanished_refuses_to_start(cluster_factory):
    cluster = three_nodes(cluster_factory)
    expected = write_all(cluster)
    master = cluster.master
    master.stop()  # a clean stop notes how long the log is
    for segment in segments(cluster, "master"):
        segment.unlink()
    master.start()
    assert master.proc.wait(20) == 2
    assert "held 5 when this node last started: log files are missing" in (
        master.log_path.read_text()
    )
    shutil.rmtree(cluster.data_dir("master") / "log")
    master.start()
    assert master.proc.wait(20) == 2
    assert f"{cluster.data_dir('master') / 'log'} is missing" in master.log_path.read_text()
    master.argv.append("--repair")
    master.start()
    wait_open(cluster)
    assert master.messages() == expected
    for node in cluster.secondaries.values():
        assert events(node, "log_truncated") == []


def test_a_damaged_state_file_is_refused_with_a_message(cluster_factory):
    cluster = cluster_factory(secondaries=0)
    master = cluster.start_master()
    master.kill()
    (cluster.data_dir("master") / "state.json").write_text('{"epoch": "7"}')
    master.start()
    assert master.proc.wait(20) == 2
    assert "state.json is damaged" in master.log_path.read_text()


def test_a_master_without_secondaries_can_be_repaired(cluster_factory):
    cluster = cluster_factory(secondaries=0)
    master = cluster.start_master()
    for i in range(3):
        assert cluster.write(f"m{i}", w=1, id=i).status == 201
    master.kill()
    (segment,) = segments(cluster, "master")
    corrupt_second_record(segment)
    master.argv.append("--repair")
    master.start()
    wait_open(cluster)
    assert [m["id"] for m in master.messages()] == [0]


def test_a_newer_epoch_reported_by_a_secondary_lifts_the_masters_next_epoch(cluster_factory):
    """A master data directory restored from an old copy opens in an epoch the
    secondaries have seen a newer one of: they refuse it, and it learns."""
    cluster = three_nodes(cluster_factory)
    expected = write_all(cluster, 2)
    master = cluster.master
    master.stop()
    backup = cluster.tmp_path / "master-backup"
    shutil.copytree(cluster.data_dir("master"), backup)
    for _ in range(2):  # two more master runs: epochs 2 and 3
        master.start()
        wait_open(cluster)
        master.stop()
    shutil.rmtree(cluster.data_dir("master"))
    shutil.copytree(backup, cluster.data_dir("master"))
    master.start()  # epoch 2 again, older than the secondaries' 3
    wait_until(lambda: events(master, "newer_epoch_reported"), what="the newer epoch reported")
    master.stop()
    master.start()
    health = wait_open(cluster)
    assert health["epoch"] == 4
    assert wait_converged(cluster) == expected


def test_a_second_process_on_a_data_directory_in_use_is_refused(cluster_factory):
    """Two nodes writing one log would interleave their records: the second one
    (another address, same --data-dir) exits 2 before touching anything."""
    cluster = cluster_factory(secondaries=0)
    master = cluster.start_master()
    assert cluster.write("only one writer", w=1).status == 201
    twin_host = cluster.host.rsplit(".", 1)[0] + ".254"
    argv = [*master.argv]
    argv[argv.index("--host") + 1] = twin_host
    twin = Node("twin", argv, f"http://{twin_host}:1", cluster.tmp_path / "twin.log").start()
    assert twin.proc.wait(20) == 2
    assert "is in use by another running node" in twin.log_path.read_text()
    assert master.messages()[0]["message"] == "only one writer"
    assert cluster.write("still the writer", w=1).status == 201
    master.stop()  # a clean stop frees the directory for the next start
    master.start()
    wait_until(lambda: len(master.messages()) == 2, what="restarted on its directory")
