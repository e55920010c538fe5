"""structlog set-up: one JSON object per line on stdout, or a console format for people.

`--log-format auto` (the default) picks the console format when stdout is a terminal and JSON
otherwise (piped, in a container, under a test). The console format is coloured where
`use_colors` says so: on a terminal, unless `NO_COLOR` is set; `FORCE_COLOR` forces colours
(`replog up` uses it to give its children the colours of its own terminal).

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
import os
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO, TextIO

import orjson
import structlog

LOG_FORMATS = ("auto", "json", "console")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def resolve_log_format(log_format: str, stream: TextIO | None = None) -> str:
    """`json` or `console`: `auto` is `console` when `stream` (stdout) is a terminal."""
    if log_format != "auto":
        return log_format
    return "console" if _isatty(sys.stdout if stream is None else stream) else "json"


def use_colors(stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether console output to `stream` (stdout) is coloured, in the order Python uses:
    `NO_COLOR` set (non-empty) never, `FORCE_COLOR` set always, `TERM=dumb` never, else
    only on a terminal (https://no-color.org)."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    if env.get("TERM") == "dumb":
        return False
    return _isatty(sys.stdout if stream is None else stream)


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


# C0 controls, DEL and C1 controls, as \xNN: ESC (0x1b) and CSI (0x9b) start a terminal's
# escape sequences, and a client chooses the text of some fields (a message's `id`).
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROLS.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def escape_controls(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Console format only: no control character of a field's text reaches the terminal.
    (JSON escapes them itself; lists and other values are shown by repr, which does.)"""
    for key, value in event.items():
        if type(value) is str and key != "exception" and not value.isprintable():
            event[key] = value.translate(_CONTROLS)
    return event


def configure_logging(
    log_format: str = "json",
    node: str | None = None,
    buffered: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for this process, writing to `stream` (stdout).

    `log_format` is `json`, `console` or `auto` (see `resolve_log_format`). Every event
    carries `node` when given, `level` and `timestamp`, in either format."""
    out = sys.stdout if stream is None else stream
    if resolve_log_format(log_format, out) == "console":
        processors: list = [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            escape_controls,
            structlog.dev.ConsoleRenderer(colors=use_colors(out)),
        ]
        if node:
            processors.insert(0, lambda _logger, _method, event: {"node": node, **event})
        logger_factory: Any = structlog.PrintLoggerFactory(out)
    else:
        processors = [json_renderer(node)]
        writer = BufferedLineWriter(out.buffer, buffered)
        logger_factory = lambda *args: writer  # noqa: E731
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )
    # Tornado's own loggers (access log off: structlog events say more).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
