"""structlog set-up: one JSON object per line on stdout, or a console format for people."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

LOG_FORMATS = ("json", "console")


def configure_logging(log_format: str = "json", node: str | None = None) -> None:
    """Configure structlog for this process. Every event carries `node` when given."""
    processors: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_format == "console":
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty()))
        logger_factory = structlog.PrintLoggerFactory(sys.stdout)
    else:
        processors.append(structlog.processors.JSONRenderer(serializer=orjson.dumps))
        logger_factory = structlog.BytesLoggerFactory(sys.stdout.buffer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    if node:
        structlog.contextvars.bind_contextvars(node=node)
    # Tornado's own loggers (access log off: structlog events say more).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
