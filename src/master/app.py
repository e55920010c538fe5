"""The master's Tornado application and server."""

from __future__ import annotations

import tornado.httpserver
import tornado.web

from common.openapi import OPENAPI_ROUTE, document_bytes
from common.web import BodyLimit, NotFoundHandler, OpenApiHandler
from master.handlers import HealthHandler, LogHandler, RegisterHandler, SecondaryHandler
from master.node import MasterNode

# Bodies over --max-body-bytes get a JSON 413 from BodyLimit (and are read and
# dropped); this outer bound keeps an absurd Content-Length from being read at all.
SERVER_BODY_LIMIT = 1 << 30


def make_app(node: MasterNode) -> BodyLimit:
    """The master's HTTP delegate: the routes, behind the body-size limit."""
    app = tornado.web.Application(
        [
            (r"/", LogHandler, {"node": node}),
            (r"/register", RegisterHandler, {"node": node}),
            (r"/health", HealthHandler, {"node": node}),
            (r"/secondaries/([^/]+)", SecondaryHandler, {"node": node}),
            (OPENAPI_ROUTE, OpenApiHandler, {"document": document_bytes("master")}),
        ],
        default_handler_class=NotFoundHandler,
        log_function=lambda handler: None,
        # Internal handlers (`internal = True`) require it when set (common.web.JsonHandler).
        cluster_token=node.config.cluster_token,
    )
    return BodyLimit(app, node.config.max_body_bytes)


def make_server(node: MasterNode) -> tornado.httpserver.HTTPServer:
    return tornado.httpserver.HTTPServer(
        make_app(node),
        max_body_size=max(SERVER_BODY_LIMIT, node.config.max_body_bytes),
        ssl_options=node.config.tls.server_context(),
    )
