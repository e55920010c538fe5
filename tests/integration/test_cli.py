"""`replog post|get|tail|status` as a user runs them, against a real master and secondary
started as processes: what each prints, on which stream, and its exit status."""

from __future__ import annotations

import json
import re
import signal
import subprocess

import pytest

from support.cluster import BIN, FAST_DETECTION, Cluster, free_port, messages
from support.waiting import wait_until
from tools.harness.process import environment

COMMANDS = ("up", "post", "get", "tail", "status")


def replog(*args: str, url: str | None = None, stdin: str | None = None):
    """Run `replog ARGS` with $REPLOG_MASTER_URL = url (and no other REPLOG_* variable)."""
    env = environment({"REPLOG_MASTER_URL": url} if url else {}, drop_prefix="REPLOG_")
    return subprocess.run(
        [str(BIN / "replog"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def json_lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines()]


def assert_no_tracebacks(cluster: Cluster) -> None:
    for log in sorted(cluster.tmp_path.glob("*.log")):
        assert "Traceback" not in log.read_text(errors="replace"), log


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A master and one secondary, shared by the tests of this module (each test reads the
    log from where it found it)."""
    cluster = Cluster(tmp_path_factory.mktemp("cli"), secondaries=1)
    cluster.start_master()
    cluster.add_secondary("s1")
    yield cluster
    cluster.stop()
    assert_no_tracebacks(cluster)


def last_seq(cluster: Cluster) -> int:
    return cluster.master.health()["last_seq"]


def test_help_lists_every_subcommand_and_each_has_its_own():
    top = replog("--help")
    assert top.returncode == 0
    for command in COMMANDS:
        assert f"    {command} " in top.stdout
        own = replog(command, "--help")
        assert own.returncode == 0 and own.stdout.startswith(f"usage: replog {command}")


def test_post_one_message_prints_the_masters_answer(cluster):
    done = replog("post", "-w", "2", "--id", "one", "hello", url=cluster.master_url)
    assert done.returncode == 0 and done.stderr == ""
    [answer] = json_lines(done.stdout)
    assert answer["id"] == "one" and answer["message"] == "hello" and answer["w"] == 2
    assert answer["acked_by"] == ["master", "s1"] and answer["duplicate"] is False
    again = replog("post", "--master", cluster.master_url, "--id", "one", "-w", "1", "hello")
    assert again.returncode == 0
    assert json_lines(again.stdout)[0]["seq"] == answer["seq"]
    assert json_lines(again.stdout)[0]["duplicate"] is True


def test_post_several_messages_is_one_batch_with_numbered_ids(cluster):
    done = replog("post", "-w", "majority", "--id", "b", "x", "y", "z", url=cluster.master_url)
    assert done.returncode == 0, done.stderr
    [answer] = json_lines(done.stdout)
    assert answer["count"] == 3 and answer["w"] == 2
    first = answer["seqs"][0]
    assert answer["seqs"] == [first, first + 1, first + 2]
    shown = messages(f"{cluster.master_url}/?from={first}")
    assert shown == [
        {"seq": first, "id": "b-0", "message": "x"},
        {"seq": first + 1, "id": "b-1", "message": "y"},
        {"seq": first + 2, "id": "b-2", "message": "z"},
    ]


def test_post_stdin_sends_batches_of_100_and_every_line_in_order(cluster):
    lines = [f"line {i}" for i in range(250)]
    done = replog(
        "post", "-w", "2", "--id", "in", "-", url=cluster.master_url, stdin="\n".join(lines) + "\n"
    )
    assert done.returncode == 0, done.stderr
    answers = json_lines(done.stdout)
    assert [a["count"] for a in answers] == [100, 100, 50]
    seqs = [seq for a in answers for seq in a["seqs"]]
    assert seqs == list(range(seqs[0], seqs[0] + 250))
    shown = messages(f"{cluster.master_url}/?from={seqs[0]}")
    assert [m["message"] for m in shown] == lines
    assert [m["id"] for m in shown] == [f"in-{i}" for i in range(250)]
    assert done.stderr == ""  # no progress line: stderr is not a terminal


def test_post_stdin_batch_size_and_empty_lines(cluster):
    done = replog("post", "--batch", "2", "-", url=cluster.master_url, stdin="a\n\nc\r\n")
    assert done.returncode == 0, done.stderr
    answers = json_lines(done.stdout)
    assert [a["count"] for a in answers] == [2, 1]
    shown = messages(f"{cluster.master_url}/?from={answers[0]['seqs'][0]}")
    assert [m["message"] for m in shown] == ["a", "", "c"]


@pytest.mark.parametrize("bad", ["0", "two", "1.5", "-1"])
def test_bad_w_is_a_usage_error_and_sends_nothing(cluster, bad):
    before = last_seq(cluster)
    done = replog("post", "-w", bad, "m", url=cluster.master_url)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("usage: replog post")
    assert "argument -w: must be an integer from 1 or 'majority'" in done.stderr
    assert last_seq(cluster) == before


def test_stdin_mixed_with_messages_is_a_usage_error(cluster):
    done = replog("post", "a", "-", url=cluster.master_url, stdin="b\n")
    assert done.returncode == 2 and "cannot be mixed" in done.stderr


def test_server_400_exits_1_with_the_servers_error(cluster):
    before = last_seq(cluster)
    done = replog("post", "-w", "3", "m", url=cluster.master_url)
    assert done.returncode == 1 and done.stdout == ""
    error = '"w" must be between 1 and 2 (the cluster has 2 nodes, master included), got 3'
    assert done.stderr == f"replog post: {error} (HTTP 400)\n"
    assert last_seq(cluster) == before


def test_server_409_exits_1_with_the_servers_error(cluster):
    first = replog("post", "--id", "k409", "original", url=cluster.master_url)
    seq = json_lines(first.stdout)[0]["seq"]
    done = replog("post", "--id", "k409", "other", url=cluster.master_url)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f'replog post: id "k409" already names message seq {seq} with a different text; '
        "use a new id for a new message (HTTP 409)\n"
    )


def test_secondary_refuses_writes_with_its_405(cluster):
    done = replog("post", "--master", cluster.secondaries["s1"].url, "m")
    assert done.returncode == 1
    assert "read-only secondary" in done.stderr and "(HTTP 405)" in done.stderr


def test_connection_refused_exits_1_with_a_clear_message(cluster):
    dead = f"http://{cluster.host}:{free_port(cluster.host)}"
    for args in (
        ["post", "--master", dead, "m"],
        ["get", dead],
        ["tail", "-f", dead],
        ["status", "--master", dead],
    ):
        done = replog(*args)
        assert done.returncode == 1 and done.stdout == "", args
        command = args[0]
        assert done.stderr.startswith(f"replog {command}: cannot reach {dead}/"), done.stderr
        assert done.stderr.endswith(": connection refused (is the node running?)\n")


def test_get_json_lines_parse_back_to_what_each_node_shows(cluster):
    replog("post", "-w", "2", "get1", "get2", url=cluster.master_url)
    for node in (cluster.master, cluster.secondaries["s1"]):
        done = replog("get", node.url, "--json")
        assert done.returncode == 0 and done.stderr == ""
        assert json_lines(done.stdout) == messages(node.url + "/")
        # stdout is not a terminal: JSON lines without --json too
        assert replog("get", node.url).stdout == done.stdout
    paged = replog("get", "--from", "2", "--limit", "3", "--read", "local", url=cluster.master_url)
    assert json_lines(paged.stdout) == messages(f"{cluster.master_url}/?from=2&limit=3")
    assert [e["seq"] for e in json_lines(paged.stdout)] == [2, 3, 4]


@pytest.mark.parametrize("bad", [["--from", "0"], ["--limit", "x"], ["--read", "all"]])
def test_get_bad_arguments_are_usage_errors(cluster, bad):
    done = replog("get", *bad, url=cluster.master_url)
    assert done.returncode == 2 and done.stderr.startswith("usage: replog get")


def test_tail_without_follow_prints_from_n_and_exits(cluster):
    done = replog("tail", cluster.secondaries["s1"].url, "--from", "3")
    assert done.returncode == 0
    wait_until(
        lambda: messages(cluster.secondaries["s1"].url + "/") == messages(cluster.master_url + "/"),
        what="s1 caught up",
    )
    done = replog("tail", cluster.secondaries["s1"].url, "--from", "3")
    assert json_lines(done.stdout) == messages(cluster.master_url + "/?from=3")
    whole = replog("tail", url=cluster.master_url)
    assert json_lines(whole.stdout) == messages(cluster.master_url + "/")


def test_status_lists_every_node(cluster):
    wait_until(lambda: cluster.master.health()["secondaries"][0]["lag"] == 0, what="no lag")
    done = replog("status", url=cluster.master_url)
    assert done.returncode == 0 and done.stderr == ""
    header, master, s1 = done.stdout.splitlines()
    assert header.split() == [
        "NODE",
        "ROLE",
        "URL",
        "STATUS",
        "SEQ",
        "COMMIT",
        "LAG",
        "HEARTBEAT",
        "STORAGE",
    ]
    seq = str(last_seq(cluster))
    assert master.split()[:5] == ["master", "master", cluster.master_url, "ok", seq]
    assert master.endswith("disk (fsync always)")
    row = s1.split()
    assert row[:5] == ["s1", "secondary", cluster.secondaries["s1"].url, "healthy", seq]
    commit = cluster.secondaries["s1"].health().get("commit_seq")
    assert row[5] == ("-" if commit is None else str(commit))  # a node that reports none: -
    assert row[6] == "0"  # lag
    assert re.fullmatch(r"\d+ ms|\d+\.\d s", " ".join(row[7:9])) and row[9] == "ago"
    assert s1.endswith("disk (fsync always)")


def test_status_json_is_the_collected_health(cluster):
    done = replog("status", "--json", url=cluster.master_url)
    assert done.returncode == 0
    [collected] = json_lines(done.stdout)
    assert collected["url"] == cluster.master_url
    assert collected["master"]["role"] == "master"
    assert collected["secondaries"]["s1"]["role"] == "secondary"
    assert collected["secondaries"]["s1"]["id"] == "s1"


def test_status_watch_redraws_until_interrupted(cluster):
    proc = subprocess.Popen(
        [str(BIN / "replog"), "status", "--watch", "0.1", "--json", "--master", cluster.master_url],
        stdout=subprocess.PIPE,
        text=True,
        env=environment(drop_prefix="REPLOG_"),
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        second = json.loads(proc.stdout.readline())
        assert first["master"]["role"] == second["master"]["role"] == "master"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_read_only_master_503_and_status_of_a_dead_secondary(tmp_path):
    cluster = Cluster(tmp_path, secondaries=1)
    try:
        cluster.start_master(*FAST_DETECTION)
        cluster.add_secondary("s1")
        cluster.secondaries["s1"].kill()
        wait_until(lambda: cluster.master.health()["read_only"], what="read-only")
        done = replog("post", "-w", "1", "m", url=cluster.master_url)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith("replog post: read-only: no quorum")
        assert done.stderr.endswith("(HTTP 503)\n")
        shown = replog("status", url=cluster.master_url)
        assert shown.returncode == 0
        lines = shown.stdout.splitlines()
        assert lines[1].split()[3] == "read_only"
        assert lines[2].split()[:4] == [
            "s1",
            "secondary",
            cluster.secondaries["s1"].url,
            "unhealthy",
        ]
        assert lines[2].endswith("unreachable")
        assert lines[3] == (
            f"s1: cannot reach {cluster.secondaries['s1'].url}/health: "
            "connection refused (is the node running?)"
        )
    finally:
        cluster.stop()
    assert_no_tracebacks(cluster)


def test_tail_follows_a_real_secondary_across_its_restart_with_no_gap_and_no_duplicate(
    tmp_path,
):
    """`replog tail -f` on a secondary's /stream: the secondary is killed and restarted
    while entries keep coming; every entry is printed once, in order."""
    cluster = Cluster(tmp_path, secondaries=1)
    cluster.start_master()
    cluster.add_secondary("s1")
    try:
        for i in range(1, 4):
            assert cluster.write(f"m{i}", w=2).status == 201
        s1 = cluster.secondaries["s1"]
        env = environment({}, drop_prefix="REPLOG_")
        out = (tmp_path / "tail.out").open("w")
        tail = subprocess.Popen(
            [str(BIN / "replog"), "tail", s1.url, "-f", "--json"],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        printed = lambda: json_lines((tmp_path / "tail.out").read_text())  # noqa: E731
        wait_until(lambda: len(printed()) == 3, 20, what="the first three entries")
        s1.kill()
        for i in range(4, 7):
            assert cluster.write(f"m{i}", w=1).status == 201
        s1.start()
        cluster.wait_connected("s1")
        assert cluster.write("m7", w=2).status == 201
        wait_until(lambda: len(printed()) >= 7, 30, what="the entries after the restart")
        tail.send_signal(signal.SIGINT)
        assert tail.wait(10) == 0, tail.stderr.read() if tail.stderr else ""
        out.close()
        got = printed()
        assert [m["seq"] for m in got] == list(range(1, 8))
        assert [m["message"] for m in got] == [f"m{i}" for i in range(1, 8)]
    finally:
        cluster.stop()
