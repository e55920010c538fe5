"""The secondary's Tornado application and server."""

from __future__ import annotations

import tornado.httpserver
import tornado.web

from common import wire
from common.openapi import OPENAPI_ROUTE, document_bytes
from common.web import NotFoundHandler, OpenApiHandler
from secondary.handlers import HealthHandler, LogExportHandler, LogHandler, ReplicationHandler
from secondary.node import SecondaryNode


def make_app(node: SecondaryNode) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/", LogHandler, {"node": node}),
            (r"/health", HealthHandler, {"node": node}),
            (wire.REPLICATION_PATH, ReplicationHandler, {"node": node}),
            (wire.LOG_PATH, LogExportHandler, {"node": node}),
            (OPENAPI_ROUTE, OpenApiHandler, {"document": document_bytes("secondary")}),
        ],
        default_handler_class=NotFoundHandler,
        log_function=lambda handler: None,
        websocket_max_message_size=wire.MAX_MESSAGE_BYTES,
        # Internal handlers (`internal = True`, and the replication WebSocket) require it.
        cluster_token=node.config.cluster_token,
    )


def make_server(node: SecondaryNode) -> tornado.httpserver.HTTPServer:
    return tornado.httpserver.HTTPServer(
        make_app(node), ssl_options=node.config.tls.server_context()
    )
