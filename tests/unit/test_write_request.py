"""Validation of client writes: every bad input is a 400 with a clear message."""

import pytest

from core import RequestError, parse_write, resolve_w


def test_defaults_to_all_nodes():
    req = parse_write({"message": "hi"}, 3)
    assert req.w == 3 and req.id is None


@pytest.mark.parametrize(("size", "expected"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_majority_resolves_to_floor_half_plus_one(size, expected):
    assert resolve_w("majority", size) == expected


@pytest.mark.parametrize("w", [0, 4, -1, True, False, 2.0, "2", "all", [], {}])
def test_bad_w_is_rejected(w):
    with pytest.raises(RequestError) as err:
        parse_write({"message": "hi", "w": w}, 3)
    assert err.value.status == 400
    assert '"w"' in err.value.message


@pytest.mark.parametrize("ident", [1.5, True, [1], {"a": 1}, 2**63, -(2**63) - 1])
def test_bad_id_is_rejected(ident):
    with pytest.raises(RequestError) as err:
        parse_write({"message": "hi", "id": ident}, 3)
    assert '"id"' in err.value.message


@pytest.mark.parametrize("ident", [0, -5, 2**63 - 1, "", "abc"])
def test_good_ids_are_kept_as_given(ident):
    assert parse_write({"message": "hi", "id": ident}, 1).id == ident


@pytest.mark.parametrize("doc", [{}, {"message": 5}, {"message": None}, [], "hi", None])
def test_message_must_be_a_string(doc):
    with pytest.raises(RequestError) as err:
        parse_write(doc, 3)
    assert err.value.status == 400


def test_empty_message_is_allowed():
    assert parse_write({"message": ""}, 1).message == ""
