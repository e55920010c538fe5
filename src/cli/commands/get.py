"""`replog get`: the messages a node shows, as JSON lines or a table."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from replog.cli import client
from replog.cli.options import (
    add_json_option,
    add_read_options,
    add_url_option,
    positive_int,
    terminal_width,
    url_of,
    wants_table,
)
from replog.cli.render import entry_line, message_table


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "get",
        help="print the messages a node shows",
        description="Print the messages of any node (master or secondary): JSON lines "
        "({seq, id, message} per line) with --json or when stdout is not a terminal, "
        "a table on a terminal.",
    )
    add_url_option(parser, positional=True)
    add_read_options(parser)
    parser.add_argument(
        "--limit", type=positive_int, default=None, metavar="N", help="at most N messages"
    )
    add_json_option(parser)
    parser.set_defaults(run=run)


def fetch(url: str, start: int | None, limit: int | None, read: str | None) -> list[Any]:
    query = {"from": start, "limit": limit, "read": read}
    answer = client.call(client.endpoint(url, "/", query))
    try:
        messages = answer.json()["messages"]
    except (ValueError, KeyError, TypeError):
        raise client.ClientError(f"{url} answered something else than messages") from None
    if not isinstance(messages, list):
        raise client.ClientError(f"{url} answered something else than messages")
    return messages


def show(entries: Sequence[Mapping[str, Any]], table: bool) -> None:
    if table:
        print(message_table(entries, terminal_width()), flush=True)
        return
    out = sys.stdout
    for entry in entries:
        out.write(entry_line(entry) + "\n")
    out.flush()


def run(args: argparse.Namespace) -> int:
    show(fetch(url_of(args), args.start, args.limit, args.read), wants_table(args))
    return 0
