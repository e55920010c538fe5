"""`replog tail`: print a node's messages from N; with -f, follow `GET /stream` live."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from replog.cli import client, sse
from replog.cli.commands.get import fetch, show
from replog.cli.options import (
    add_json_option,
    add_read_options,
    add_url_option,
    terminal_width,
    url_of,
    wants_table,
)
from replog.cli.render import entry_line, message_row
from replog.common.backoff import Backoff

# The node sends a keepalive comment every 15 s when idle: silence for longer than this
# means the connection is dead even if no error says so.
READ_TIMEOUT = 45.0
# Reconnect delays: drawn in [ceiling/2, ceiling], the ceiling 0.2 s doubling up to 5 s.
BACKOFF_INITIAL = 0.2
BACKOFF_MAX = 5.0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "tail",
        help="print messages from N; -f follows the log live",
        description="Print a node's messages from --from (default 1) and exit; with -f, "
        "keep following the node's stream (GET /stream), printing each entry as it arrives. "
        "After a dropped connection it reconnects (0.1 s to 5 s later) and resumes after the "
        "last seq printed (Last-Event-ID): no gap, no duplicate. Ctrl-C ends it (exit 0). "
        "Output as `replog get`'s.",
    )
    add_url_option(parser, positional=True)
    add_read_options(parser)
    parser.add_argument("-f", "--follow", action="store_true", help="follow the log live")
    add_json_option(parser)
    parser.set_defaults(run=run)


class Follower:
    """Follows one node's stream across reconnects; `last` is the last seq printed."""

    def __init__(
        self,
        url: str,
        start: int,
        read: str | None,
        emit: Callable[[dict[str, Any]], None],
        notice: TextIO,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.start = start
        self.read = read
        self.emit = emit
        self.notice = notice
        self.sleep = sleep
        self.last: int | None = None
        self.connected_once = False
        self.backoff = Backoff(initial=BACKOFF_INITIAL, maximum=BACKOFF_MAX)

    def request(self) -> tuple[str, dict[str, str]]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last is None:
            query: dict[str, object] = {"from": self.start, "read": self.read}
        else:
            # Takes precedence over `from` on the node: resume right after what was printed.
            headers["Last-Event-ID"] = str(self.last)
            query = {"read": self.read}
        return client.endpoint(self.url, "/stream", query), headers

    def run(self) -> None:
        """Until Ctrl-C (KeyboardInterrupt) or a fatal error (a ClientError)."""
        while True:
            reason = self.follow_once()
            delay = self.backoff.next_delay()
            resume = "from the start" if self.last is None else f"after seq {self.last}"
            self.notice.write(
                f"replog tail: {reason}; reconnecting in {delay:.1f} s, resuming {resume}\n"
            )
            self.notice.flush()
            self.sleep(delay)

    def follow_once(self) -> str:
        """One connection: prints its events; answers why it ended if that is worth a retry."""
        url, headers = self.request()
        try:
            response = client.open_url(url, headers=headers, timeout=READ_TIMEOUT)
        except client.Unreachable as exc:
            if not self.connected_once:
                raise
            return str(exc)
        except client.ServerError as exc:
            # A 4xx will not get better by retrying; a 5xx (a node restarting) may.
            if not self.connected_once or exc.status < 500:
                raise
            return str(exc)
        with response:
            content_type = response.headers.get("Content-Type", "")
            if not content_type.startswith("text/event-stream"):
                raise client.ClientError(
                    f"{url} answered {content_type or 'no'} content type, not an event stream"
                )
            self.connected_once = True
            try:
                for event in sse.events(client.lines(response, url)):
                    gap = self.on_event(event)
                    if gap:
                        return gap
            except client.Unreachable as exc:
                return str(exc)
        return "the node closed the stream"

    def on_event(self, event: sse.Event) -> str | None:
        """Print the entry unless already printed; a gap (never sent by a correct node) ends
        the connection so that the next one resumes right after the last seq printed."""
        try:
            entry = json.loads(event.data)
            seq = entry["seq"]
        except (ValueError, KeyError, TypeError):
            raise client.ClientError(f"not an entry in the stream: {event.data[:200]!r}") from None
        if not isinstance(seq, int):
            raise client.ClientError(f"not an entry in the stream: {event.data[:200]!r}")
        if self.last is not None and seq <= self.last:
            return None
        if self.last is not None and seq != self.last + 1:
            return f"the stream skipped from seq {self.last} to {seq}"
        self.emit(entry)
        self.last = seq
        self.backoff.reset()
        return None


def run(args: argparse.Namespace) -> int:
    url = url_of(args)
    start = args.start or 1
    table = wants_table(args)
    if not args.follow:
        show(fetch(url, start, None, args.read), table)
        return 0
    out = sys.stdout
    width = terminal_width() if table else None
    if table:
        out.write(f"{'SEQ':>8}  {'ID':<16}  MESSAGE\n")

    def emit(entry: dict[str, Any]) -> None:
        out.write((message_row(entry, width) if table else entry_line(entry)) + "\n")
        out.flush()

    try:
        Follower(url, start, args.read, emit, sys.stderr).run()
    except KeyboardInterrupt:
        return 0
    return 0
