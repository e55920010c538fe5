"""The master's Tornado application and server."""

from __future__ import annotations

import tornado.web

from replog.common.http_server import JsonHTTPServer
from replog.common.openapi import OPENAPI_ROUTE, document_bytes
from replog.common.operations import operation_routes
from replog.common.reads import StreamHandler
from replog.common.web import NotFoundHandler, OpenApiHandler
from replog.master.handlers import HealthHandler, LogHandler, RegisterHandler, SecondaryHandler
from replog.master.node import MasterNode
from replog.master.ui import UiEventsHandler, UiHandler


def make_app(node: MasterNode) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/", LogHandler, {"node": node}),
            (r"/register", RegisterHandler, {"node": node}),
            (r"/health", HealthHandler, {"node": node}),
            (r"/stream", StreamHandler, {"node": node}),
            (r"/ui", UiHandler),
            (r"/ui/events", UiEventsHandler, {"node": node}),
            *operation_routes(node),
            (r"/secondaries/([^/]+)", SecondaryHandler, {"node": node}),
            (OPENAPI_ROUTE, OpenApiHandler, {"document": document_bytes("master")}),
        ],
        default_handler_class=NotFoundHandler,
        log_function=lambda handler: None,
        # Internal handlers (`internal = True`) require it when set (common.web.JsonHandler).
        cluster_token=node.config.cluster_token,
    )


def make_server(node: MasterNode) -> JsonHTTPServer:
    """The routes behind the body limit (a 413 over --max-body-bytes, read no further),
    the HTTP timeouts, and JSON answers to malformed requests (common.http_server)."""
    config = node.config
    return JsonHTTPServer(
        make_app(node),
        max_body_size=config.max_body_bytes,
        limit_hint=" (--max-body-bytes)",
        idle_connection_timeout=config.timeouts.idle,
        body_timeout=config.timeouts.body,
        ssl_options=config.tls.server_context(),
    )
