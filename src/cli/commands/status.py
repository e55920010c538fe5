"""`replog status`: the cluster at a glance, from the master's /health and each secondary's."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from replog.cli import client
from replog.cli.options import add_url_option, positive_seconds, url_of
from replog.cli.render import json_line, table

# A secondary that does not answer its /health in this long is shown as unreachable.
NODE_TIMEOUT = 3.0
HEADERS = ("NODE", "ROLE", "URL", "STATUS", "SEQ", "COMMIT", "LAG", "HEARTBEAT", "STORAGE")
CLEAR_SCREEN = "\x1b[H\x1b[2J"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "status",
        help="the cluster at a glance",
        description="A table of the cluster from the master's GET /health and each "
        "secondary's (at the URLs the master lists): node, role, URL, status (the master's: "
        "ok, read_only, recovering; a secondary's as the master sees it: healthy, suspected, "
        "unhealthy), SEQ (the master's last_seq; what each secondary acknowledged), COMMIT "
        "(commit_seq, on nodes that report it), lag, heartbeat age, storage. Exits 1 if the "
        "master does not answer (with --watch, shows the error and keeps trying).",
    )
    add_url_option(parser, positional=False)
    parser.add_argument(
        "--watch",
        nargs="?",
        const=1.0,
        default=None,
        type=positive_seconds,
        metavar="SECONDS",
        help="redraw every SECONDS (default 1) until Ctrl-C",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print what was collected as one JSON line: {"url", "master": its /health, '
        '"secondaries": {id: its /health, or {"error": ...}}}',
    )
    parser.set_defaults(run=run)


def health(url: str, timeout: float) -> dict[str, Any]:
    answer = client.call(client.endpoint(url, "/health"), timeout=timeout)
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise client.ClientError(f"{url}/health answered something else than a JSON object")
    return body


def collect(master_url: str) -> dict[str, Any]:
    """The master's /health (its failure is the command's) and each listed secondary's."""
    master = health(master_url, client.DEFAULT_TIMEOUT)
    secondaries: dict[str, Any] = {}
    for entry in master.get("secondaries") or []:
        ident, url = entry.get("id"), entry.get("url")
        if not isinstance(ident, str):
            continue
        if not isinstance(url, str):
            secondaries[ident] = {"error": "the master lists no URL for it"}
            continue
        try:
            secondaries[ident] = health(url, NODE_TIMEOUT)
        except client.ClientError as exc:
            secondaries[ident] = {"error": str(exc)}
    return {"url": master_url, "master": master, "secondaries": secondaries}


def heartbeat(ms_ago: Any) -> str:
    if not isinstance(ms_ago, int | float):
        return "-"
    return f"{ms_ago / 1000:.1f} s ago" if ms_ago >= 1000 else f"{int(ms_ago)} ms ago"


def storage(node: Mapping[str, Any]) -> str:
    kind = node.get("storage")
    if not isinstance(kind, str):
        return "?"
    fsync = node.get("fsync")
    return f"{kind} (fsync {fsync})" if kind == "disk" and fsync else kind


def rows(collected: Mapping[str, Any]) -> tuple[list[list[Any]], list[str]]:
    """The table's rows, and the notes under it (a secondary that did not answer)."""
    master = collected["master"]
    out: list[list[Any]] = [
        [
            "master",
            "master",
            collected["url"],
            master.get("status"),
            master.get("last_seq"),
            master.get("commit_seq"),
            None,
            None,
            storage(master),
        ]
    ]
    notes = []
    for entry in master.get("secondaries") or []:
        own = collected["secondaries"].get(entry.get("id"), {})
        if "error" in own:
            notes.append(f"{entry.get('id')}: {own['error']}")
        out.append(
            [
                entry.get("id"),
                "secondary",
                entry.get("url"),
                entry.get("status"),
                entry.get("acked_seq"),
                own.get("commit_seq"),
                entry.get("lag"),
                heartbeat(entry.get("last_heartbeat_ms_ago")),
                "unreachable" if "error" in own else storage(own),
            ]
        )
    return out, notes


def render(collected: Mapping[str, Any]) -> str:
    body, notes = rows(collected)
    return "\n".join([table(HEADERS, body), *notes])


def show_once(url: str, as_json: bool) -> None:
    collected = collect(url)
    print(json_line(collected) if as_json else render(collected), flush=True)


def watch(url: str, every: float, as_json: bool) -> None:
    clear = sys.stdout.isatty() and not as_json
    while True:
        try:
            collected = collect(url)
            text = json_line(collected) if as_json else render(collected)
        except client.ClientError as exc:
            text = json_line({"url": url, "error": str(exc)}) if as_json else f"master: {exc}"
        if clear:
            stamp = datetime.now().strftime("%H:%M:%S")
            text = f"{CLEAR_SCREEN}{url} at {stamp}, every {every:g} s (Ctrl-C stops)\n\n{text}"
        print(text, flush=True)
        time.sleep(every)


def run(args: argparse.Namespace) -> int:
    url = url_of(args)
    if args.watch is None:
        show_once(url, args.json)
        return 0
    try:
        watch(url, args.watch, args.json)
    except KeyboardInterrupt:
        return 0
    return 0
