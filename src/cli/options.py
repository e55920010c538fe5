"""What the client commands share: the node's URL, argument types, how output is shaped."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from typing import TextIO, TypeVar

from replog.common import config

_T = TypeVar("_T")

# The master of `replog up`.
DEFAULT_URL = "http://127.0.0.2:5000"
URL_ENV = "REPLOG_MASTER_URL"


def default_url() -> str:
    return os.environ.get(URL_ENV, "").strip() or DEFAULT_URL


def node_url(raw: str) -> str:
    """A node's base URL: `http(s)://host:port`; a bare `host:port` means http."""
    url = raw.strip()
    if not url:
        raise argparse.ArgumentTypeError("empty URL")
    if "://" not in url:
        url = "http://" + url
    scheme = url.split("://", 1)[0]
    if scheme not in ("http", "https"):
        raise argparse.ArgumentTypeError(f"{raw!r} is not an http:// or https:// URL")
    return url.rstrip("/")


def write_concern(raw: str) -> int | str:
    """-w: an integer from 1, or `majority` (the server checks the upper bound)."""
    if raw == "majority":
        return raw
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 or 'majority', not {raw!r}")
    return int(raw)


def _argument(check: Callable[[str], _T], wording: str) -> Callable[[str], _T]:
    """A settings parser (common.config) as an argparse type whose error names the
    value: `must be <wording>, not '<raw>'`."""

    def parse(raw: str) -> _T:
        try:
            return check(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wording}, not {raw!r}") from None

    parse.__name__ = check.__name__
    return parse


positive_int = _argument(config.positive_int, "a positive integer")
non_negative_int = _argument(config.non_negative_int, "an integer, 0 or more")
positive_seconds = _argument(config.positive_float, "a number of seconds above 0")


def add_url_option(parser: argparse.ArgumentParser, positional: bool) -> None:
    """`get`/`tail` take the node's URL as an optional argument (any node, master or
    secondary); `post`/`status` as --master."""
    help_text = (
        f"the node's URL (default: ${URL_ENV}, else {DEFAULT_URL}, the master of `replog up`)"
    )
    if positional:
        parser.add_argument("url", nargs="?", type=node_url, default=None, help=help_text)
    else:
        parser.add_argument("--master", dest="url", type=node_url, default=None, help=help_text)


def url_of(args: argparse.Namespace) -> str:
    return args.url or node_url(default_url())


def add_read_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="start",
        type=positive_int,
        default=None,
        metavar="N",
        help="the first seq to show (default 1)",
    )
    parser.add_argument(
        "--read",
        choices=("local", "majority"),
        default=None,
        help="read concern: local (the node's own prefix, the server's default) or majority "
        "(only entries a majority of the cluster holds)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="JSON lines, one {seq, id, message} per line (the default when stdout is not "
        "a terminal; on a terminal the default is a table)",
    )


def wants_table(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    return not args.json and (stream or sys.stdout).isatty()


def terminal_width() -> int:
    return shutil.get_terminal_size((100, 24)).columns
