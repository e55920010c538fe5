"""`replog post`: append messages on the master, one, several as one batch, or stdin's lines."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from replog.cli import client
from replog.cli.options import (
    add_url_option,
    non_negative_int,
    positive_int,
    url_of,
    write_concern,
)

DEFAULT_BATCH = 100
# The master's own limit on a batch (items per POST).
MAX_BATCH = 10_000


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "post",
        help="append messages on the master",
        description="Append MESSAGE on the master and print its JSON answer (one line). "
        "Several MESSAGEs go as one atomic batch. `-` reads one message per line from stdin "
        "and sends them in batches of --batch, printing one answer line per batch.",
    )
    add_url_option(parser, positional=False)
    parser.add_argument(
        "-w",
        type=write_concern,
        default=None,
        metavar="W",
        help="write concern: nodes that must hold the messages before the answer, master "
        "included (an integer from 1, or majority; default: the master's, all nodes)",
    )
    parser.add_argument(
        "--id",
        default=None,
        help="idempotency key, sent as a string; with several messages (or -) the ids "
        "are ID-0, ID-1, ... in order",
    )
    parser.add_argument(
        "--wtimeout",
        type=non_negative_int,
        default=None,
        metavar="MS",
        help="milliseconds to wait for W before the master answers 504 (0: no limit)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"with -: messages per request (default {DEFAULT_BATCH}, at most {MAX_BATCH})",
    )
    parser.add_argument("messages", nargs="+", metavar="MESSAGE", help="the text, or - for stdin")
    parser.set_defaults(run=run)


def concern(args: argparse.Namespace) -> dict[str, Any]:
    fields = {"w": args.w, "wtimeout": args.wtimeout}
    return {k: v for k, v in fields.items() if v is not None}


def single_body(args: argparse.Namespace, message: str) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, **concern(args)}
    if args.id is not None:
        body["id"] = args.id
    return body


def batch_body(args: argparse.Namespace, messages: list[str], first_index: int) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for index, message in enumerate(messages, first_index):
        item: dict[str, Any] = {"message": message}
        if args.id is not None:
            item["id"] = f"{args.id}-{index}"
        items.append(item)
    return {"messages": items, **concern(args)}


def stdin_lines(stream: TextIO) -> Iterator[str]:
    for line in stream:
        yield line.removesuffix("\n").removesuffix("\r")


def batches(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Progress:
    """`sent N messages (R/s)` on stderr, redrawn in place; only on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = stream.isatty()
        self.started = time.monotonic()
        self.sent = 0

    def add(self, count: int) -> None:
        self.sent += count
        if self.shown:
            elapsed = max(time.monotonic() - self.started, 1e-6)
            rate = self.sent / elapsed
            self.stream.write(f"\rsent {self.sent:,} messages ({rate:,.0f}/s)")
            self.stream.flush()

    def done(self) -> None:
        if self.shown and self.sent:
            self.stream.write("\n")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    url = client.endpoint(url_of(args), "/")
    if args.messages == ["-"]:
        if args.batch > MAX_BATCH:
            raise client.UsageError(f"--batch is at most {MAX_BATCH}, got {args.batch}")
        progress = Progress(sys.stderr)
        try:
            for batch in batches(stdin_lines(sys.stdin), args.batch):
                answer = client.call(
                    url, method="POST", body=batch_body(args, batch, progress.sent), timeout=None
                )
                print(answer.text.strip(), flush=True)
                progress.add(len(batch))
        finally:
            progress.done()
        return 0
    if "-" in args.messages:
        raise client.UsageError("- (stdin) cannot be mixed with messages on the command line")
    if len(args.messages) == 1:
        body = single_body(args, args.messages[0])
    else:
        body = batch_body(args, args.messages, 0)
    answer = client.call(url, method="POST", body=body, timeout=None)
    print(answer.text.strip(), flush=True)
    return 0
