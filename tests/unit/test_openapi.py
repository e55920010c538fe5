"""The OpenAPI documents: valid, served, and naming exactly the routes each role has."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import schemathesis
import tornado.web
import tornado.websocket
from openapi_spec_validator import validate

from replog.common.openapi import OPENAPI_PATH, document, document_bytes
from replog.master.app import make_app as make_master_app
from replog.master.config import MasterConfig
from replog.secondary.app import make_app as make_secondary_app
from replog.secondary.config import SecondaryConfig

ROLES = ("master", "secondary")
METHODS = [m.lower() for m in tornado.web.RequestHandler.SUPPORTED_METHODS]


def served_app(role: str) -> object:
    """What the role serves (its server, common.http_server, adds only transport checks).

    Building the routes reads only the node's config; handlers get the node as is.
    """
    if role == "master":
        return make_master_app(SimpleNamespace(config=MasterConfig()))
    config = SecondaryConfig(host="127.0.0.1", port=0, master_url="http://m:1", secondary_id="s")
    return make_secondary_app(SimpleNamespace(config=config))


def application(role: str) -> tornado.web.Application:
    app = served_app(role)
    assert isinstance(app, tornado.web.Application)
    return app


def routes(app: tornado.web.Application) -> list[tuple[re.Pattern, set[str]]]:
    """Each route's path pattern and the methods its handler implements."""
    out = []
    for rule in app.wildcard_router.rules:
        handler = rule.target
        implemented = {
            m for m in METHODS if getattr(handler, m) is not getattr(tornado.web.RequestHandler, m)
        }
        out.append((rule.matcher.regex, implemented))
    return out


def operations(doc: dict) -> dict[str, set[str]]:
    return {path: set(item) for path, item in doc["paths"].items()}


def sample(path_template: str) -> str:
    """A concrete path for a template: /secondaries/{id} -> /secondaries/sample-id."""
    return re.sub(r"\{([^}/]+)\}", r"sample-\1", path_template)


@pytest.mark.parametrize("role", ROLES)
def test_document_is_valid_openapi(role):
    doc = document(role)
    validate(doc)  # openapi-spec-validator: raises on any violation
    assert doc["openapi"].startswith("3.1")
    # Schemathesis reads every operation of it without error.
    schema = schemathesis.openapi.from_dict(doc)
    loaded = [result.ok() for result in schema.get_all_operations()]
    assert len(loaded) == sum(len(methods) for methods in operations(doc).values())


@pytest.mark.parametrize("role", ROLES)
def test_every_route_has_its_operations_and_every_operation_a_route(role):
    doc = document(role)
    app_routes = routes(application(role))
    documented = operations(doc)
    for template, methods in documented.items():
        path = sample(template)
        matching = [implemented for regex, implemented in app_routes if regex.match(path)]
        assert matching, f"{role}: {template} is documented but no route serves it"
        # Tornado serves a path with the first route that matches it.
        assert methods == matching[0], (
            f"{role} {template}: documented {methods}, served {matching[0]}"
        )
    for regex, implemented in app_routes:
        served_by = [t for t in documented if regex.match(sample(t))]
        assert served_by, f"{role}: route {regex.pattern} has no operation in the document"
        assert implemented == documented[served_by[0]], regex.pattern


# HEAD answers as GET on these (for uptime checkers).
PROBES = {"/metrics": {"get", "head"}, "/livez": {"get", "head"}, "/readyz": {"get", "head"}}


def test_each_role_documents_its_own_operations():
    assert operations(document("master")) == {
        "/": {"get", "post"},
        "/health": {"get", "head"},
        "/stream": {"get"},
        "/ui": {"get", "head"},
        "/ui/events": {"get"},
        "/register": {"post"},
        "/secondaries/{id}": {"delete"},
        **PROBES,
        OPENAPI_PATH: {"get"},
    }
    assert operations(document("secondary")) == {
        "/": {"get", "post"},
        "/health": {"get", "head"},
        "/stream": {"get"},
        "/replication/log": {"get"},
        "/replication": {"get"},
        **PROBES,
        OPENAPI_PATH: {"get"},
    }


@pytest.mark.parametrize("role", ROLES)
def test_handlers_that_need_the_token_are_the_documented_internal_ones(role):
    doc = document(role)
    for rule in application(role).wildcard_router.rules:
        handler = rule.target
        # JsonHandler's `internal` makes prepare() demand the token; the replication
        # WebSocket checks it itself.
        needs_token = getattr(handler, "internal", False) or issubclass(
            handler, tornado.websocket.WebSocketHandler
        )
        (template,) = [t for t in doc["paths"] if rule.matcher.regex.match(sample(t))]
        for method, op in doc["paths"][template].items():
            assert bool(op["security"]) == needs_token, (role, template, method)


INTERNAL = {
    ("master", "/register", "post"),
    ("master", "/secondaries/{id}", "delete"),
    ("secondary", "/replication/log", "get"),
    ("secondary", "/replication", "get"),
}


@pytest.mark.parametrize("role", ROLES)
def test_internal_operations_need_the_token_and_every_error_is_json(role):
    doc = document(role)
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the cluster token (--cluster-token)",
    }
    for path, item in doc["paths"].items():
        for method, op in item.items():
            internal = (role, path, method) in INTERNAL
            assert op["security"] == ([{"bearer": []}] if internal else []), (path, method)
            assert ("401" in op["responses"]) == internal, (path, method)
            for status, answer in op["responses"].items():
                if method == "head":
                    assert "content" not in answer, (path, status)
                    continue  # no body
                if status == "101":
                    continue  # the WebSocket upgrade has no body
                if path in ("/stream", "/ui/events") and status == "200":
                    assert list(answer["content"]) == ["text/event-stream"]
                    continue  # the event stream
                if path == "/ui" and status == "200":
                    assert list(answer["content"]) == ["text/html"]
                    continue  # the live page
                if path == "/metrics" and status == "200":
                    assert list(answer["content"]) == ["text/plain"]
                    continue  # the Prometheus text format
                schema = answer["content"]["application/json"]["schema"]
                if int(status) >= 400:
                    resolved = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                    errors = resolved.get("allOf", [resolved])[0]
                    assert "error" in errors["required"], (path, method, status)
                    assert errors["properties"]["error"]["type"] == "string"


def test_write_body_follows_the_write_rules():
    """Spot checks of the POST / schema against core.write_request's rules."""
    schemas = document("master")["components"]["schemas"]
    single, batch = schemas["SingleWrite"], schemas["BatchWrite"]
    assert single["additionalProperties"] is False and batch["additionalProperties"] is False
    assert set(single["properties"]) == {"message", "id", "w", "wtimeout"}
    assert set(batch["properties"]) == {"messages", "w", "wtimeout"}
    assert batch["properties"]["messages"]["maxItems"] == 10_000
    assert {"type": "string", "enum": ["majority"]} in schemas["WriteConcern"]["anyOf"]
    assert {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1} in schemas["ClientId"][
        "anyOf"
    ]
    master_post = document("master")["paths"]["/"]["post"]
    assert set(master_post["responses"]) == {"200", "201", "400", "409", "413", "503", "504"}


@pytest.mark.parametrize("role", ROLES)
def test_served_document_is_the_module_s(role):
    body = document_bytes(role)
    assert json.loads(body) == document(role)
    app = application(role)
    rule = next(r for r in app.wildcard_router.rules if r.matcher.regex.match(OPENAPI_PATH))
    assert rule.target_kwargs == {"document": body}
    # The dot is literal: /openapiXjson is not the document.
    assert not rule.matcher.regex.match("/openapiXjson")


@pytest.fixture(params=ROLES)
def app(request):
    return served_app(request.param)


@pytest.mark.gen_test
async def test_get_openapi_json_answers_the_document(http_client, base_url, app):
    resp = await http_client.fetch(base_url + OPENAPI_PATH)
    assert resp.code == 200
    assert resp.headers["Content-Type"] == "application/json"
    served = json.loads(resp.body)
    role = served["info"]["title"].removeprefix("replog ")
    assert served == document(role)
    resp = await http_client.fetch(base_url + OPENAPI_PATH, method="DELETE", raise_error=False)
    assert resp.code == 405 and "error" in json.loads(resp.body)
