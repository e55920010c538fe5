"""structlog set-up: one JSON object per line on stdout, or a console format for people.

The JSON pipeline is kept lean because it runs several times per write: one
processor adds `node`, `level` and `timestamp` and renders with orjson. With
`buffered=True` (the master) lines are written to stdout once per event-loop
iteration instead of once per event; a process killed with SIGKILL then loses
at most that iteration's lines. Secondaries write every line at once, so their
`applied` event is on stdout before the ACK it announces leaves the process.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson
import structlog

LOG_FORMATS = ("json", "console")


class BufferedLineWriter:
    """A structlog logger: collects rendered lines, writes them in one go."""

    def __init__(self, stream: BinaryIO, buffered: bool = True) -> None:
        self._stream = stream
        self.buffered = buffered
        self._lines: list[bytes] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        atexit.register(self.flush)

    def msg(self, line: bytes) -> None:
        self._lines.append(line)
        if not self.buffered:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()  # no event loop: write at once
            return
        if self._scheduled and self._loop is loop:
            return
        # (A flush scheduled on a loop that has since closed never runs: reschedule.)
        self._scheduled = True
        self._loop = loop
        loop.call_soon(self.flush)

    info = warning = error = critical = exception = debug = msg

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        lines.append(b"")
        try:
            self._stream.write(b"\n".join(lines))
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # stdout went away; logging must never take the node down


class _Timestamp:
    """ISO-8601 UTC with microseconds; the seconds part is formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"


def json_renderer(node: str | None) -> Any:
    timestamp = _Timestamp()

    def render(logger: object, method: str, event: dict) -> bytes:
        if node is not None:
            event["node"] = node
        event["level"] = "warning" if method == "warn" else method
        event["timestamp"] = timestamp()
        exc_info = event.pop("exc_info", None)
        if exc_info:
            event["exception"] = structlog.processors.format_exc_info(
                logger, method, {"exc_info": exc_info}
            ).get("exception")
        return orjson.dumps(event, default=repr)

    return render


def configure_logging(
    log_format: str = "json", node: str | None = None, buffered: bool = False
) -> None:
    """Configure structlog for this process. Every event carries `node` when given."""
    if log_format == "console":
        processors: list = [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty()),
        ]
        if node:
            processors.insert(0, lambda _logger, _method, event: {"node": node, **event})
        logger_factory: Any = structlog.PrintLoggerFactory(sys.stdout)
    else:
        processors = [json_renderer(node)]
        writer = BufferedLineWriter(sys.stdout.buffer, buffered)
        logger_factory = lambda *args: writer  # noqa: E731
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )
    # Tornado's own loggers (access log off: structlog events say more).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
