"""The secondary's Tornado application and server."""

from __future__ import annotations

import tornado.web

from replog.common import wire
from replog.common.http_server import JsonHTTPServer
from replog.common.openapi import OPENAPI_ROUTE, document_bytes
from replog.common.operations import operation_routes
from replog.common.reads import StreamHandler
from replog.common.web import NotFoundHandler, OpenApiHandler
from replog.secondary.handlers import (
    HealthHandler,
    LogExportHandler,
    LogHandler,
    ReplicationHandler,
)
from replog.secondary.node import SecondaryNode

# A secondary takes no request bodies (its WebSocket frames have their own bound,
# from --max-entry-bytes: see common.wire). A write sent here by mistake, up to the master's default
# limit, still gets the 405 that names the master rather than a 413.
MAX_BODY_BYTES = 1 << 20


def make_app(node: SecondaryNode) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/", LogHandler, {"node": node}),
            (r"/health", HealthHandler, {"node": node}),
            (r"/stream", StreamHandler, {"node": node}),
            *operation_routes(node),
            (wire.REPLICATION_PATH, ReplicationHandler, {"node": node}),
            (wire.LOG_PATH, LogExportHandler, {"node": node}),
            (OPENAPI_ROUTE, OpenApiHandler, {"document": document_bytes("secondary")}),
        ],
        default_handler_class=NotFoundHandler,
        log_function=lambda handler: None,
        # Internal handlers (`internal = True`, and the replication WebSocket) require it.
        cluster_token=node.config.cluster_token,
    )


def make_server(node: SecondaryNode) -> JsonHTTPServer:
    """The routes behind a body limit, the HTTP timeouts, and JSON answers to
    malformed requests (common.http_server)."""
    return JsonHTTPServer(
        make_app(node),
        max_body_size=MAX_BODY_BYTES,
        idle_connection_timeout=node.config.timeouts.idle,
        body_timeout=node.config.timeouts.body,
        ssl_options=node.config.tls.server_context(),
    )
