"""Validation of client writes: every bad input is a 400 with a clear message."""

import pytest

from replog.common.web import error_status
from replog.core import InvalidRequest, parse_write, resolve_w


def test_defaults_to_all_nodes():
    req = parse_write({"message": "hi"}, 3)
    assert req.w == 3 and req.items[0].id is None and not req.batch


@pytest.mark.parametrize(("size", "expected"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_majority_resolves_to_floor_half_plus_one(size, expected):
    assert resolve_w("majority", size) == expected


@pytest.mark.parametrize("w", [0, 4, -1, True, False, 2.0, "2", "all", [], {}])
def test_bad_w_is_rejected(w):
    with pytest.raises(InvalidRequest) as err:
        parse_write({"message": "hi", "w": w}, 3)
    assert error_status(err.value) == 400
    assert '"w"' in err.value.message


@pytest.mark.parametrize("ident", [1.5, True, [1], {"a": 1}, 2**63, -(2**63) - 1])
def test_bad_id_is_rejected(ident):
    with pytest.raises(InvalidRequest) as err:
        parse_write({"message": "hi", "id": ident}, 3)
    assert '"id"' in err.value.message


@pytest.mark.parametrize("ident", [0, -5, 2**63 - 1, "", "abc"])
def test_good_ids_are_kept_as_given(ident):
    assert parse_write({"message": "hi", "id": ident}, 1).items[0].id == ident


@pytest.mark.parametrize("doc", [{}, {"message": 5}, {"message": None}, [], "hi", None])
def test_message_must_be_a_string(doc):
    with pytest.raises(InvalidRequest) as err:
        parse_write(doc, 3)
    assert error_status(err.value) == 400


def test_empty_message_is_allowed():
    assert parse_write({"message": ""}, 1).items[0].message == ""


def test_batch_of_strings_and_objects():
    req = parse_write({"messages": ["a", {"message": "b", "id": 7}], "w": 2}, 3)
    assert req.batch and req.w == 2
    assert [(i.message, i.id) for i in req.items] == [("a", None), ("b", 7)]


@pytest.mark.parametrize(
    "doc",
    [
        {"messages": []},
        {"messages": "a"},
        {"messages": [1]},
        {"messages": [{"id": 1}]},
        {"messages": [{"message": "a", "id": 1.5}]},
        {"messages": [{"message": "a", "id": 1}, {"message": "b", "id": 1}]},
        {"messages": ["a"], "message": "b"},
        {"messages": ["a"] * 10_001},
    ],
)
def test_bad_batches_are_rejected(doc):
    with pytest.raises(InvalidRequest) as err:
        parse_write(doc, 3)
    assert error_status(err.value) == 400


def test_same_value_different_json_type_ids_may_share_a_batch():
    req = parse_write({"messages": [{"message": "a", "id": 1}, {"message": "b", "id": "1"}]}, 1)
    assert len(req.items) == 2


@pytest.mark.parametrize(
    "doc, named",
    [
        ({"message": "m", "wtimout": 5000}, '"wtimout"'),
        ({"message": "m", "W": 2, "ID": 1}, '"ID", "W"'),
        ({"messages": [{"message": "m", "idd": 1}]}, 'in messages[0]: "idd"'),
    ],
)
def test_unknown_fields_are_refused_by_name(doc, named):
    with pytest.raises(InvalidRequest) as err:
        parse_write(doc, 3)
    assert error_status(err.value) == 400 and named in err.value.message


def test_nesting_deeper_than_a_write_can_is_refused_without_recursion():
    deep: object = "x"
    for _ in range(100_000):
        deep = [deep]
    for doc in ({"message": deep}, {"messages": [{"message": "m", "id": [[1]]}]}):
        with pytest.raises(InvalidRequest) as err:
            parse_write(doc, 3)
        assert error_status(err.value) == 400 and "nests deeper" in err.value.message
    assert parse_write({"messages": [{"message": "m", "id": 1}], "w": 1}, 3).batch
