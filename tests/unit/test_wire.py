"""The replication stream's frames are checked before anything stores them."""

import pytest

from common import wire
from core import Entry


def test_well_formed_entries_decode():
    doc = {"entries": [[1, 2, None, "a"], [2, 2, "k", ""], [3, 2, -(2**63), "c"]]}
    assert wire.decode_entries(doc) == [
        Entry(1, 2, None, "a"),
        Entry(2, 2, "k", ""),
        Entry(3, 2, -(2**63), "c"),
    ]


@pytest.mark.parametrize(
    "item",
    [
        [0, 1, None, "seq 0"],
        [-1, 1, None, "negative"],
        [True, 1, None, "bool seq"],
        [1, "1", None, "string epoch"],
        [1, 10**18, None, "epoch out of bounds"],
        [1, 1, {"a": 1}, "object id"],
        [1, 1, 2**63, "id beyond 64 bits"],
        [1, 1, 1.5, "float id"],
        [1, 1, None, 5],
        [1, 1, None],
        [1, 1, None, "x", "extra"],
        {"seq": 1},
        "1",
    ],
)
def test_malformed_entries_are_refused(item):
    with pytest.raises(wire.WireError):
        wire.decode_entries({"entries": [[1, 1, None, "ok"], item]})


def test_entries_must_be_a_list():
    for doc in ({}, {"entries": None}, {"entries": {"1": 1}}):
        with pytest.raises(wire.WireError):
            wire.decode_entries(doc)
