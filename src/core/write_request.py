"""Validation of a client's write: the rules for `message`, `w` and `id`.

Pure functions over already-decoded JSON, so the same rules serve the HTTP
handler and the unit tests. A request that fails here changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypeGuard

from replog.core.entry import ClientId
from replog.core.errors import InvalidRequest, show

MAJORITY = "majority"
# Integer ids must survive a round trip through every JSON library we use.
ID_INT_MIN = -(2**63)
ID_INT_MAX = 2**63 - 1


# The most messages one batch request may carry.
MAX_BATCH = 10_000
# The fields a write may have, and those of a batch item.
WRITE_FIELDS = frozenset({"message", "messages", "w", "id", "wtimeout"})
ITEM_FIELDS = frozenset({"message", "id"})
# The deepest a valid write nests: {"messages": [{"message": ...}]}.
MAX_DEPTH = 3


@dataclass(frozen=True, slots=True)
class WriteItem:
    message: str
    id: ClientId | None = None


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """One client write: a single message, or a batch appended atomically in order."""

    items: tuple[WriteItem, ...]
    w: int
    # Milliseconds to wait for `w` before answering 504; None: the master's default.
    wtimeout_ms: int | None = None
    batch: bool = False

    @classmethod
    def single(
        cls, message: str, w: int, id: ClientId | None = None, wtimeout_ms: int | None = None
    ) -> WriteRequest:
        return cls((WriteItem(message, id),), w, wtimeout_ms)


def majority(cluster_size: int) -> int:
    return cluster_size // 2 + 1


def is_json_int(value: object) -> TypeGuard[int]:
    # bool is a subclass of int in Python but not an integer in JSON.
    return isinstance(value, int) and not isinstance(value, bool)


def resolve_w(raw: object, cluster_size: int) -> int:
    """Turn the client's `w` into a node count in 1..cluster_size."""
    if raw is None:
        return cluster_size
    if raw == MAJORITY:
        return majority(cluster_size)
    if not is_json_int(raw):
        raise InvalidRequest(
            f'"w" must be an integer from 1 to {cluster_size} or "majority", got {show(raw)}',
        )
    if not 1 <= raw <= cluster_size:
        raise InvalidRequest(
            f'"w" must be between 1 and {cluster_size} (the cluster has '
            f"{cluster_size} nodes, master included), got {raw}",
        )
    return raw


def is_client_id(value: object) -> TypeGuard[ClientId | None]:
    """An idempotency key as stored: a string, a 64-bit integer, or None (no key)."""
    if value is None or isinstance(value, str):
        return True
    return is_json_int(value) and ID_INT_MIN <= value <= ID_INT_MAX


def validate_id(raw: object) -> ClientId | None:
    if is_client_id(raw):
        return raw
    raise InvalidRequest(
        f'"id" must be a string or a 64-bit integer (or left out), got {show(raw)}'
    )


def validate_wtimeout(raw: object) -> int | None:
    if raw is None:
        return None
    if is_json_int(raw) and 0 <= raw <= ID_INT_MAX:
        return raw
    raise InvalidRequest(
        f'"wtimeout" must be a whole number of milliseconds, 0 or more (0: wait without '
        f"limit), got {show(raw)}",
    )


def parse_message(doc: dict[str, object], where: str = "") -> str:
    message = doc.get("message")
    if not isinstance(message, str):
        what = "missing" if "message" not in doc else f"not a string ({show(message)})"
        raise InvalidRequest(f'"message"{where} is {what}: send {{"message": "<text>"}}')
    return message


def parse_batch(raw: object) -> tuple[WriteItem, ...]:
    """`"messages"`: a list of strings, or of {"message", "id"} objects."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_BATCH:
        raise InvalidRequest(
            f'"messages" must be a list of 1 to {MAX_BATCH} strings or {{"message", "id"}} objects',
        )
    items = []
    seen: set[tuple[type, ClientId]] = set()
    for index, item in enumerate(raw):
        if isinstance(item, str):
            items.append(WriteItem(item))
            continue
        if not isinstance(item, dict):
            raise InvalidRequest(f'"messages"[{index}] must be a string or an object')
        check_fields(item, ITEM_FIELDS, where=f" in messages[{index}]")
        message = parse_message(item, where=f" of messages[{index}]")
        client_id = validate_id(item.get("id"))
        if client_id is not None:
            key = (type(client_id), client_id)
            if key in seen:
                raise InvalidRequest(f"id {show(client_id)} appears twice in the batch")
            seen.add(key)
        items.append(WriteItem(message, client_id))
    return tuple(items)


def too_deep(doc: object, limit: int = MAX_DEPTH) -> bool:
    """Does `doc` nest containers more than `limit` levels deep? (Iterative: no recursion.)"""
    level: list[object] = [doc]  # the nodes at depth 1, then 2, ...
    for _ in range(limit):
        level = [
            child
            for node in level
            if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
        ]
        if not level:
            return False
    return any(isinstance(node, dict | list) for node in level)


def check_fields(doc: dict[str, object], allowed: frozenset[str], where: str = "") -> None:
    unknown = sorted(key for key in doc if key not in allowed)
    if unknown:
        raise InvalidRequest(
            f"unknown field{'s' if len(unknown) > 1 else ''}{where}: "
            f"{', '.join(json.dumps(k) for k in unknown)} (allowed: {', '.join(sorted(allowed))})",
        )


def parse_write(doc: object, cluster_size: int) -> WriteRequest:
    """Validate a decoded `POST /` body against a cluster of `cluster_size` nodes."""
    if not isinstance(doc, dict):
        raise InvalidRequest('the body must be a JSON object like {"message": "hi", "w": 1}')
    if too_deep(doc):
        raise InvalidRequest(f"the body nests deeper than a write can ({MAX_DEPTH} levels)")
    check_fields(doc, WRITE_FIELDS)
    if "messages" in doc:
        if "message" in doc or "id" in doc:
            raise InvalidRequest(
                'send either "message" (and "id") or "messages" (with ids inside), not both'
            )
        items = parse_batch(doc["messages"])
        batch = True
    else:
        items = (WriteItem(parse_message(doc), validate_id(doc.get("id"))),)
        batch = False
    w = resolve_w(doc.get("w"), cluster_size)
    wtimeout_ms = validate_wtimeout(doc.get("wtimeout"))
    return WriteRequest(items=items, w=w, wtimeout_ms=wtimeout_ms, batch=batch)
