"""The HTTP API as an OpenAPI 3.1 document, one per role, served at `GET /openapi.json`.

This is the one place that describes every operation: its parameters, its
request body (the exact rules of `core.write_request` for `POST /`) and every
status it answers with its JSON body. `tests/unit/test_openapi.py` checks that
each role's Tornado routes and this document name the same operations, and
`tests/fuzz/test_openapi_fuzz.py` fuzzes both nodes from the served document.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import metadata
from typing import Any, Literal

import orjson

from replog.common import wire
from replog.core.health import Health
from replog.core.write_request import ID_INT_MAX, ID_INT_MIN, MAJORITY, MAX_BATCH

Role = Literal["master", "secondary"]
Schema = dict[str, Any]

OPENAPI_PATH = "/openapi.json"
# The same path as a Tornado route (a regular expression).
OPENAPI_ROUTE = re.escape(OPENAPI_PATH)
# `?from=` / `?limit=` and `?epoch=` are 1 to 18 ASCII digits (common.web.DIGITS).
MAX_QUERY_INT = 10**18 - 1
BEARER = "bearer"
JSON = "application/json"

# -- schemas ----------------------------------------------------------------


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _int(minimum: int = 0, maximum: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "integer", "minimum": minimum, **extra}
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def _object(required: list[str], properties: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "required": required, "properties": properties, **extra}


def _error(description: str = "what is wrong, and how to fix it", **extra: Schema) -> Schema:
    return _object(
        ["error", *extra], {"error": {"type": "string", "description": description}, **extra}
    )


_COUNT = _int(0)
_SEQ = _int(1)
_NODE_NAMES = {"type": "array", "items": {"type": "string"}}
_SYNC_STATS = _nullable(
    _object(
        ["syncs", "synced_entries", "entries_per_sync", "sync_ms_p50", "sync_ms_p99"],
        {
            "syncs": _COUNT,
            "synced_entries": _COUNT,
            "entries_per_sync": _nullable({"type": "number"}),
            "sync_ms_p50": _nullable({"type": "number"}),
            "sync_ms_p99": _nullable({"type": "number"}),
        },
        description="group-commit fsync figures; null unless --fsync always on disk",
    )
)
_STORAGE = {
    "storage": {"type": "string", "enum": ["disk", "memory"]},
    "data_dir": _nullable({"type": "string"}),
    "fsync": _nullable({"type": "string"}),
    "sync": _SYNC_STATS,
}
_SECURITY = {
    "auth": {"type": "boolean", "description": "a cluster token is set (--cluster-token)"},
    "tls": {"type": "boolean", "description": "this node serves HTTPS (--tls-cert)"},
}
_WRITE_ANSWER = {"w": _int(1), "acks": _int(1), "acked_by": _NODE_NAMES}

SCHEMAS: dict[str, Schema] = {
    "Error": _error(),
    "ClientId": {
        "description": "an idempotency key: a string or a 64-bit integer, compared as a JSON "
        'value (1 and "1" are different keys); null is the same as no key',
        "anyOf": [
            {"type": "string"},
            {"type": "integer", "minimum": ID_INT_MIN, "maximum": ID_INT_MAX},
            {"type": "null"},
        ],
    },
    "WriteConcern": {
        "description": "nodes that must hold the message before the answer, master included: "
        f'1..N, or "{MAJORITY}" (floor(N/2) + 1); null or left out: N. A w above N is a 400',
        "anyOf": [_int(1), {"type": "string", "enum": [MAJORITY]}, {"type": "null"}],
    },
    "WTimeout": {
        "description": "milliseconds to wait for w before answering 504; 0 waits without "
        "limit; null or left out: the master's --wtimeout",
        "anyOf": [_int(0, ID_INT_MAX), {"type": "null"}],
    },
    "Message": _object(
        ["seq", "id", "message"],
        {"seq": _SEQ, "id": _ref("ClientId"), "message": {"type": "string"}},
    ),
    "Messages": _object(
        ["messages"],
        {"messages": {"type": "array", "items": _ref("Message")}},
        description="the log in seq order (on a secondary, the contiguous prefix it holds)",
    ),
    "SingleWrite": _object(
        ["message"],
        {
            "message": {"type": "string"},
            "id": _ref("ClientId"),
            "w": _ref("WriteConcern"),
            "wtimeout": _ref("WTimeout"),
        },
        additionalProperties=False,
        description="one message; an unknown field is a 400 naming it",
    ),
    "BatchWrite": _object(
        ["messages"],
        {
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "description": "appended atomically and in order; ids unique within the batch",
                "items": {
                    "anyOf": [
                        {"type": "string"},
                        _object(
                            ["message"],
                            {"message": {"type": "string"}, "id": _ref("ClientId")},
                            additionalProperties=False,
                        ),
                    ]
                },
            },
            "w": _ref("WriteConcern"),
            "wtimeout": _ref("WTimeout"),
        },
        additionalProperties=False,
        description="a batch under one write concern; an unknown field is a 400 naming it",
    ),
    "SingleWritten": _object(
        ["seq", "id", "message", *_WRITE_ANSWER, "duplicate"],
        {
            "seq": _SEQ,
            "id": _ref("ClientId"),
            "message": {"type": "string"},
            **_WRITE_ANSWER,
            "duplicate": {"type": "boolean"},
        },
    ),
    "BatchWritten": _object(
        ["seqs", "count", "duplicates", *_WRITE_ANSWER],
        {
            "seqs": {"type": "array", "items": _SEQ},
            "count": _int(1),
            "duplicates": _COUNT,
            **_WRITE_ANSWER,
        },
    ),
    "Written": {"oneOf": [_ref("SingleWritten"), _ref("BatchWritten")]},
    "IdConflict": _error(seq=_SEQ),
    "ReadOnly": _error(
        read_only={"type": "boolean", "enum": [True]},
        quorum={"type": "boolean"},
        nodes_up=_int(1),
        cluster_size=_int(1),
    ),
    "WriteTimeout": {
        "allOf": [
            # Within a short wtimeout even the master's own copy may not be on disk yet.
            _error(w=_int(1), acks=_COUNT, acked_by=_NODE_NAMES),
            {
                "oneOf": [
                    _object(["seq", "id"], {"seq": _SEQ, "id": _ref("ClientId")}),
                    _object(["seqs"], {"seqs": {"type": "array", "items": _SEQ}}),
                ]
            },
        ],
        "description": "w not reached in time; the message is in the log and keeps replicating",
    },
    "MasterHealth": _object(
        [
            "role",
            "status",
            "cluster_id",
            *_STORAGE,
            "durable_seq",
            "recovery",
            "quorum",
            "read_only",
            "read_only_reason",
            "epoch",
            "cluster_size",
            "nodes_up",
            "last_seq",
            "commit_seq",
            "secondaries",
            *_SECURITY,
        ],
        {
            "role": {"type": "string", "enum": ["master"]},
            "status": {"type": "string", "enum": ["ok", "read_only", "recovering"]},
            "cluster_id": _nullable({"type": "string"}),
            **_STORAGE,
            "durable_seq": _COUNT,
            "recovery": _nullable(
                _object(
                    ["mode", "reported", "missing", "conflict"],
                    {
                        "mode": {"type": "string", "enum": ["strict", "lenient"]},
                        "reported": _NODE_NAMES,
                        "missing": _COUNT,
                        "conflict": _nullable(_NODE_NAMES),
                    },
                )
            ),
            "quorum": {"type": "boolean"},
            "read_only": {"type": "boolean"},
            "read_only_reason": _nullable({"type": "string"}),
            "epoch": _nullable(_COUNT),
            "cluster_size": _int(1),
            "nodes_up": _int(1),
            "last_seq": _COUNT,
            "commit_seq": {
                **_COUNT,
                "description": "the highest seq a majority of the cluster's nodes hold",
            },
            **_SECURITY,
            "secondaries": {
                "type": "array",
                "items": _object(
                    ["id", "url", "status", "acked_seq", "lag", "last_heartbeat_ms_ago"],
                    {
                        "id": {"type": "string"},
                        "url": {"type": "string"},
                        "status": {"type": "string", "enum": [str(h) for h in Health]},
                        "acked_seq": _COUNT,
                        "lag": _COUNT,
                        "last_heartbeat_ms_ago": _nullable(_COUNT),
                    },
                ),
            },
        },
    ),
    "SecondaryHealth": _object(
        [
            "role",
            "id",
            "contiguous_seq",
            "durable_seq",
            "commit_seq",
            "buffered",
            "master",
            "stream",
            "sync_epoch",
            "last_epoch",
            "cluster_id",
            "incarnation",
            *_STORAGE,
            *_SECURITY,
        ],
        {
            "role": {"type": "string", "enum": ["secondary"]},
            "id": {"type": "string"},
            "contiguous_seq": _COUNT,
            "durable_seq": _COUNT,
            "commit_seq": {
                **_COUNT,
                "description": "the master's commit point as last told, within durable_seq",
            },
            "buffered": _COUNT,
            "master": {"type": "string", "description": "the master's URL"},
            "stream": {"type": "boolean", "description": "the master's stream is attached"},
            "sync_epoch": _COUNT,
            "last_epoch": _COUNT,
            "cluster_id": _nullable({"type": "string"}),
            "incarnation": {"type": "string"},
            **_SECURITY,
            **_STORAGE,
        },
    ),
    "Registration": _object(
        ["id", "url"],
        {
            "id": {
                "type": "string",
                "minLength": 1,
                "maxLength": wire.MAX_ID_CHARS,
                "pattern": wire.ID_PATTERN,
                "not": {"enum": ["master"]},
                "description": "1 to 64 characters, none a control character",
            },
            "url": {
                "type": "string",
                "maxLength": 300,
                "pattern": r"^https?://([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*|\[[0-9A-Fa-f:.]+\])"
                r":[1-9][0-9]{0,4}/?$",
                "description": "http(s)://host:port; a path, query, fragment or user info is a 400",
            },
            **{
                key: _int(0, wire.MAX_INT, default=0)
                for key in ("contiguous_seq", "last_epoch", "sync_epoch", "stream_epoch")
            },
            "incarnation": _nullable({"type": "string", "minLength": 1, "maxLength": 64}),
            "cluster_id": _nullable({"type": "string", "minLength": 1, "maxLength": 64}),
            "instance": _nullable({"type": "string", "minLength": 1, "maxLength": 64}),
        },
        description="a secondary's report of its log (other fields are ignored)",
    ),
    "Registered": _object(
        ["registered", "cluster_size", "last_seq", "epoch", "cluster_id"],
        {
            "registered": {"type": "string"},
            "cluster_size": _int(1),
            "last_seq": _COUNT,
            "epoch": _nullable(_COUNT),
            "cluster_id": _nullable({"type": "string"}),
        },
    ),
    "RegistrationConflict": _error(
        conflict={"type": "string", "enum": ["cluster", "id", "removed"]},
    ),
    "Removed": _object(
        ["removed", "cluster_size"], {"removed": {"type": "string"}, "cluster_size": _int(1)}
    ),
    "LogExport": _object(
        ["entries"],
        {
            "entries": {
                "type": "array",
                "items": {
                    "type": "array",
                    "prefixItems": [_SEQ, _COUNT, _ref("ClientId"), {"type": "string"}],
                    "minItems": 4,
                    "maxItems": 4,
                    "description": "[seq, epoch, id, message]",
                },
            }
        },
    ),
    "SecondaryRefusesWrites": _error(master={"type": "string", "description": "the master's URL"}),
    "UiSnapshot": _object(
        ["time", "last_seq", "commit_seq", "read_only", "writes", "nodes", "tail"],
        {
            "time": {"type": "number", "description": "the master's wall clock, Unix seconds"},
            "last_seq": _COUNT,
            "commit_seq": _COUNT,
            "read_only": _nullable({"type": "string", "description": "why the master is"}),
            "writes": _object(
                ["rate_per_s", "latency_ms", "window_s"],
                {
                    "rate_per_s": {"type": "number", "minimum": 0},
                    "latency_ms": _object(
                        ["p50", "p99"],
                        {
                            "p50": _nullable({"type": "number", "minimum": 0}),
                            "p99": _nullable({"type": "number", "minimum": 0}),
                        },
                    ),
                    "window_s": _int(1),
                },
                description="writes answered 200 or 201 over the last window_s seconds",
            ),
            "nodes": {
                "type": "array",
                "description": "the master first, then each secondary",
                "items": _object(
                    ["id", "role", "url", "status", "acked_seq", "lag", "heartbeat_age_ms"],
                    {
                        "id": {"type": "string"},
                        "role": {"type": "string", "enum": ["master", "secondary"]},
                        "url": {"type": "string"},
                        "status": {
                            "type": "string",
                            "enum": [
                                "ok",
                                "read_only",
                                "recovering",
                                "healthy",
                                "suspected",
                                "unhealthy",
                            ],
                        },
                        "acked_seq": {
                            **_COUNT,
                            "description": "it holds 1..acked_seq on disk (the master: "
                            "its durable_seq)",
                        },
                        "lag": _COUNT,
                        "heartbeat_age_ms": _nullable(_int(0)),
                    },
                ),
            },
            "tail": {
                "type": "array",
                "description": "the last 20 entries of the master's log (as GET / shows it)",
                "items": _object(
                    ["seq", "id", "message", "truncated"],
                    {
                        "seq": _SEQ,
                        "id": _ref("ClientId"),
                        "message": {"type": "string", "description": "its first 200 characters"},
                        "truncated": {"type": "boolean"},
                    },
                ),
            },
        },
    ),
    "Live": _object(["live"], {"live": {"const": True}}),
    "Ready": _object(["ready"], {"ready": {"const": True}}),
    "NotReady": _error(
        "why the node cannot do its job now (read-only, recovering, no stream)",
        ready={"const": False},
        reason={"type": "string", "description": "the same text as error"},
    ),
}

# -- operations ---------------------------------------------------------------


def _answer(description: str, schema: str | Schema = "Error") -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON: {"schema": _ref(schema) if isinstance(schema, str) else schema}},
    }


def _query_int(
    name: str,
    description: str,
    *,
    required: bool = False,
    minimum: int = 1,
    maximum: int = MAX_QUERY_INT,
) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": _int(minimum, maximum),
    }


_PAGING = [
    _query_int("from", "the first seq to list (default 1)"),
    _query_int("limit", "list at most this many entries"),
]
_BAD_PAGING = _answer("`from` or `limit` is not a positive integer")
_READ = {
    "name": "read",
    "in": "query",
    "required": False,
    "description": 'read concern: "local" (default), what this node holds on disk; '
    '"majority", only entries a majority of the cluster holds (the commit point)',
    "schema": {"type": "string", "enum": ["local", "majority"]},
}
_WAIT = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": "long poll: if entry `from` is not readable yet, wait up to this many "
    "seconds for it (clamped to --max-wait), then answer with what is readable from `from`, "
    "or an empty list",
    "schema": {"type": "string", "pattern": "^([0-9]{1,9}(\\.[0-9]{0,9})?|\\.[0-9]{1,9})$"},
}
_LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "description": "resume after this seq (takes precedence over `from`)",
    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
}
_UNAUTHORIZED = _answer("the cluster token is missing or wrong (with --cluster-token set)")
_TOO_LARGE = _answer("the body is over --max-body-bytes")


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    internal: bool = False,
    parameters: list[dict] | None = None,
    body: Schema | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    if internal:
        op["security"] = [{BEARER: []}]
        responses = {**responses, "401": _UNAUTHORIZED}
        op["tags"] = ["internal"]
    else:
        op["security"] = []
        op["tags"] = ["client"]
    op["responses"] = dict(sorted(responses.items()))
    return op


def _list_messages(role: Role) -> dict[str, Any]:
    what = "the log" if role == "master" else "the contiguous prefix this secondary holds"
    return _operation(
        "listMessages",
        f"List {what}, in seq order (optionally waiting for entry `from`)",
        {
            "200": _answer("the messages", "Messages"),
            "400": _answer(
                "`from` or `limit` is not a positive integer, or `read` or `wait` is not valid"
            ),
        },
        parameters=[*_PAGING, _READ, _WAIT],
    )


def _stream(role: Role) -> dict[str, Any]:
    return _operation(
        "streamMessages",
        "Every entry from `from` (default: the next new one) on, live, as Server-Sent "
        "Events: `id: <seq>` and `data: {seq, id, message}` per entry; `: keepalive` "
        "every 15 s when idle",
        {
            "200": {
                "description": "the event stream (it does not end)",
                "content": {
                    "text/event-stream": {
                        "schema": _object(
                            ["id", "data"],
                            {
                                "id": {"type": "string", "pattern": "^[0-9]+$"},
                                "data": {
                                    "type": "string",
                                    "contentMediaType": JSON,
                                    "description": "the entry, as a Message",
                                },
                                "event": {"type": "string"},
                            },
                            description="one event per entry (comments are keepalives)",
                        )
                    }
                },
            },
            "400": _answer(
                "`from` is not a positive integer, `read` is not valid, or "
                "Last-Event-ID is not a non-negative integer"
            ),
        },
        parameters=[_query_int("from", "the first seq to send"), _READ, _LAST_EVENT_ID],
    )


def _health(role: Role) -> dict[str, Any]:
    schema = "MasterHealth" if role == "master" else "SecondaryHealth"
    return _operation(
        f"{role}Health", f"The {role}'s state", {"200": _answer(f"the {role}'s state", schema)}
    )


def _openapi(role: Role) -> dict[str, Any]:
    return _operation(
        f"{role}OpenApi",
        "This document",
        {"200": _answer("the OpenAPI document of this role", {"type": "object"})},
    )


def _operations(role: Role) -> dict[str, Any]:
    """GET /metrics, /livez, /readyz (common.operations), on both roles."""
    return {
        "/metrics": {
            "get": _operation(
                f"{role}Metrics",
                "The node's metrics, in the Prometheus text format (README: Operations)",
                {
                    "200": {
                        "description": "the metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        "/livez": {
            "get": _operation(
                f"{role}Livez",
                "Liveness: the process serves",
                {"200": _answer("the process serves", "Live")},
            )
        },
        "/readyz": {
            "get": _operation(
                f"{role}Readyz",
                "Readiness: a master open for writes, a secondary with a replication stream",
                {
                    "200": _answer("ready", "Ready"),
                    "503": _answer("not ready, saying why", "NotReady"),
                },
            )
        },
    }


# Paths whose HEAD answers as their GET, without the body (uptime checkers use it).
HEAD_PATHS = ("/health", "/livez", "/readyz", "/metrics", "/ui")


def _with_head(paths: dict[str, Any]) -> dict[str, Any]:
    """`paths` with a HEAD operation beside the GET of each of HEAD_PATHS it has."""
    for path in HEAD_PATHS:
        get = paths.get(path, {}).get("get")
        if get is None:
            continue
        paths[path]["head"] = {
            **get,
            "operationId": get["operationId"] + "Head",
            "summary": get["summary"] + " (HEAD: the same answer, without the body)",
            "responses": {
                code: {"description": answer["description"]}
                for code, answer in get["responses"].items()
            },
        }
    return paths


def _master_paths() -> dict[str, Any]:
    return {
        "/": {
            "get": _list_messages("master"),
            "post": _operation(
                "appendMessages",
                "Append a message, or a batch atomically, under a write concern",
                {
                    "200": _answer(
                        "every message was already in the log under its id: nothing appended",
                        "Written",
                    ),
                    "201": _answer("appended, and w nodes hold it", "Written"),
                    "400": _answer(
                        "malformed JSON, an unknown field, nesting deeper than a write, or a "
                        "field that breaks the rules (w above N included)"
                    ),
                    "409": _answer("an id already names a different message", "IdConflict"),
                    "413": _TOO_LARGE,
                    "503": _answer(
                        "read-only (no quorum, or recovering): nothing appended", "ReadOnly"
                    ),
                    "504": _answer("w not reached within wtimeout", "WriteTimeout"),
                },
                body={"oneOf": [_ref("SingleWrite"), _ref("BatchWrite")]},
            ),
        },
        "/health": {"get": _health("master")},
        "/stream": {"get": _stream("master")},
        "/ui": {
            "get": _operation(
                "livePage",
                "The live cluster page (HTML; README: Operations)",
                {
                    "200": {
                        "description": "one self-contained HTML page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        "/ui/events": {
            "get": _operation(
                "livePageEvents",
                "Snapshots of the cluster as Server-Sent Events (`event: snapshot`), at once, "
                "after each change (at most every 200 ms), and every second",
                {
                    "200": {
                        "description": "the event stream (it does not end)",
                        "content": {
                            "text/event-stream": {
                                "schema": _object(
                                    ["event", "data"],
                                    {
                                        "event": {"const": "snapshot"},
                                        "data": {
                                            "type": "string",
                                            "contentMediaType": JSON,
                                            "description": "a UiSnapshot",
                                        },
                                    },
                                    description="one event per snapshot",
                                )
                            }
                        },
                    }
                },
            )
        },
        "/register": {
            "post": _operation(
                "registerSecondary",
                "A secondary announces itself and reports its log",
                {
                    "200": _answer("registered; the master (re)opens its stream", "Registered"),
                    "400": _answer("a missing or reserved id, a bad URL, or a number out of range"),
                    "409": _answer(
                        "another cluster's data, an id bound to another running node, or a "
                        "removed member",
                        "RegistrationConflict",
                    ),
                    "413": _TOO_LARGE,
                },
                internal=True,
                body=_ref("Registration"),
            )
        },
        "/secondaries/{id}": {
            "delete": _operation(
                "removeSecondary",
                "Remove a member: its link stops and it no longer counts in N",
                {
                    "200": _answer("removed", "Removed"),
                    "404": _answer("no such secondary in this cluster"),
                    "503": _answer("the master is still recovering its log"),
                },
                internal=True,
                parameters=[
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    }
                ],
            )
        },
        **_operations("master"),
        OPENAPI_PATH: {"get": _openapi("master")},
    }


def _secondary_paths() -> dict[str, Any]:
    return {
        "/": {
            "get": _list_messages("secondary"),
            "post": _operation(
                "refuseWrite",
                "Writes go to the master: always 405, naming it",
                {"405": _answer("this is a read-only secondary", "SecondaryRefusesWrites")},
            ),
        },
        "/health": {"get": _health("secondary")},
        "/stream": {"get": _stream("secondary")},
        wire.LOG_PATH: {
            "get": _operation(
                "exportLog",
                "The log with epochs, read by a restarting master",
                {
                    "200": _answer(
                        "[seq, epoch, id, message] entries: at most `limit`, and the page "
                        "stops at 4 MiB (it always holds one entry); empty at the end of the log",
                        "LogExport",
                    ),
                    "400": _BAD_PAGING,
                },
                internal=True,
                parameters=_PAGING,
            )
        },
        wire.REPLICATION_PATH: {
            "get": _operation(
                "replicationStream",
                "The master's replication stream (a WebSocket upgrade, RFC 6455)",
                {
                    "101": {"description": "switching to the WebSocket replication protocol"},
                    "400": _answer(
                        "no ?epoch (or one outside 1..10^15), a ?max_frame that is not a "
                        "number, or a plain GET (not a WebSocket upgrade)"
                    ),
                    "409": _answer(
                        "not this secondary's id, a newer master epoch is known here, or this "
                        "node holds another cluster's data"
                    ),
                },
                internal=True,
                parameters=[
                    _query_int("epoch", "the master's epoch", required=True, maximum=wire.MAX_INT),
                    _query_int(
                        "max_frame",
                        "the largest frame the master may send, in bytes (a secondary "
                        "accepting less warns)",
                        minimum=0,
                    ),
                    {
                        "name": "secondary",
                        "in": "query",
                        "description": "the secondary the master means to reach (default: this)",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "cluster",
                        "in": "query",
                        "description": "the master's cluster id",
                        "schema": {"type": "string"},
                    },
                ],
            )
        },
        **_operations("secondary"),
        OPENAPI_PATH: {"get": _openapi("secondary")},
    }


def document(role: Role) -> dict[str, Any]:
    """The OpenAPI document of one role's HTTP API (a fresh copy)."""
    try:
        version = metadata.version("replog")
    except metadata.PackageNotFoundError:  # pragma: no cover (run from a source tree)
        version = "0.0.0"
    paths = _with_head(_master_paths() if role == "master" else _secondary_paths())
    return orjson.loads(
        orjson.dumps(
            {
                "openapi": "3.1.0",
                "info": {
                    "title": f"replog {role}",
                    "version": version,
                    "description": "A replicated log. Client operations are open; internal "
                    "ones need `Authorization: Bearer <cluster token>` when the nodes "
                    'run with --cluster-token. Every error is a JSON {"error": ...}; '
                    "unknown paths answer 404, unsupported methods 405.",
                },
                "paths": paths,
                "components": {
                    "schemas": SCHEMAS,
                    "securitySchemes": {
                        BEARER: {
                            "type": "http",
                            "scheme": "bearer",
                            "description": "the cluster token (--cluster-token)",
                        }
                    },
                },
            }
        )
    )


@cache
def document_bytes(role: Role) -> bytes:
    """The served body of `GET /openapi.json`."""
    return orjson.dumps(document(role))
