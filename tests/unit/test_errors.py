"""One error hierarchy, one status table: every refusal's status and exact JSON body."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import orjson
import pytest

import replog.core
from replog.common.web import ERROR_STATUS, error_status
from replog.core import Appended, Entry, ReplogError
from replog.core.errors import (
    ClusterMismatch,
    IdConflict,
    InvalidRequest,
    MemberConflict,
    NotMaster,
    ReadOnly,
    RemovedMember,
    StillRecovering,
    UnknownSecondary,
    WriteConcernTimeout,
)

CORE = Path(replog.core.__file__).parent


def all_subclasses(cls: type) -> set[type]:
    """The product's subclasses (not those a test defines: they may outlive their test
    until the garbage collector runs)."""
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *all_subclasses(sub)}
    return {sub for sub in found if sub.__module__.startswith("replog.")}


def test_every_replog_error_has_its_own_status_in_the_table():
    missing = [c.__name__ for c in all_subclasses(ReplogError) if c not in ERROR_STATUS]
    assert not missing
    assert all(400 <= status <= 599 for status in ERROR_STATUS.values())


def test_a_subclass_without_an_entry_answers_as_its_base():
    class Finer(IdConflict):
        pass

    assert error_status(Finer(1, Entry(3, 1, 1, "x"))) == 409
    with pytest.raises(LookupError):
        error_status(ReplogError("no status for the bare base"))


def test_the_core_knows_no_http_status():
    for cls in all_subclasses(ReplogError):
        assert "status" not in inspect.signature(cls.__init__).parameters, cls
    # Nothing in the core names an HTTP status code or imports the web layer.
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, int):
                assert node.value not in ERROR_STATUS.values(), (
                    f"{path.name}:{node.lineno}: {node.value} looks like an HTTP status"
                )
            # Only the stdlib and the core itself (so no web layer, no http.HTTPStatus).
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                allowed = module.startswith("replog.core") or (
                    top in sys.stdlib_module_names and top != "http"
                )
                assert allowed, f"{path.name} imports {module}"


ENTRY = Entry(3, 7, "k", "msg")


# The bodies exactly as the handlers answered before the hierarchy (key order included).
@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (InvalidRequest("bad"), 400, b'{"error":"bad"}'),
        (
            IdConflict("k", ENTRY),
            409,
            b'{"error":"id \\"k\\" already names message seq 3 with a different text; use a '
            b'new id for a new message","seq":3}',
        ),
        (
            ReadOnly(
                "no quorum: 1 of 3 nodes are up, 2 needed", quorum=False, nodes_up=1, cluster_size=3
            ),
            503,
            b'{"error":"read-only: no quorum: 1 of 3 nodes are up, 2 needed; nothing was '
            b"appended. Reads still work, and writes resume by themselves once enough "
            b'secondaries are back","read_only":true,"quorum":false,"nodes_up":1,'
            b'"cluster_size":3}',
        ),
        (
            WriteConcernTimeout([Appended(ENTRY, False)], 2, ("master",), 50),
            504,
            b'{"error":"write concern w=2 not met within 50 ms; the message is in the log at '
            b'seq 3 and keeps replicating (not rolled back)","seq":3,"id":"k","w":2,"acks":1,'
            b'"acked_by":["master"]}',
        ),
        (
            WriteConcernTimeout(
                [Appended(ENTRY, True), Appended(Entry(4, 7, None, "b"), False)],
                3,
                (),
                10,
                batch=True,
            ),
            504,
            b'{"error":"write concern w=3 not met within 10 ms; the message is in the log at '
            b'seqs 3..4 and keeps replicating (not rolled back)","seqs":[3,4],"w":3,"acks":0,'
            b'"acked_by":[]}',
        ),
        (
            ClusterMismatch("s1", "aaaa", "bbbb"),
            409,
            b"{\"error\":\"secondary 's1' holds data of cluster aaaa, and this master's cluster "
            b"is bbbb: it is refused and keeps its data (start it with an empty --data-dir to "
            b'join this cluster, or point it at its own cluster\'s master)","conflict":'
            b'"cluster","cluster_id":"bbbb"}',
        ),
        (
            MemberConflict("s1", "http://a:1", "inc"),
            409,
            b'{"error":"secondary id \'s1\' belongs to another node (at http://a:1, incarnation '
            b'\'inc\') that is up; give this node another id","conflict":"id",'
            b'"secondary":"s1","url":"http://a:1"}',
        ),
        (
            RemovedMember("s1", "inc"),
            409,
            b"{\"error\":\"secondary 's1' (incarnation 'inc') was removed from the cluster; to "
            b'join again, start it with an empty data directory or another id","conflict":'
            b'"removed","secondary":"s1"}',
        ),
        (
            UnknownSecondary("nope"),
            404,
            b'{"error":"no secondary \'nope\' in this cluster","secondary":"nope"}',
        ),
        (
            StillRecovering(),
            503,
            b'{"error":"the master is recovering its log; remove members once it has opened"}',
        ),
        (
            NotMaster("http://m:5000"),
            405,
            b'{"error":"this is a read-only secondary; send writes to the master at '
            b'http://m:5000/","master":"http://m:5000"}',
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, ReplogError) else "",
)
def test_each_error_answers_its_status_and_body(error, status, body):
    assert error_status(error) == status
    assert orjson.dumps(error.to_json()) == body
    assert str(error) == error.message


def test_every_error_class_is_covered_above():
    covered = {
        InvalidRequest,
        IdConflict,
        ReadOnly,
        WriteConcernTimeout,
        ClusterMismatch,
        MemberConflict,
        RemovedMember,
        UnknownSecondary,
        StillRecovering,
        NotMaster,
    }
    assert covered == all_subclasses(ReplogError)
