"""Idle long-poll readers: hold N `GET /?from=<far beyond the end>&wait=<max>` open.

Runs as its own process (python -m bench.idle_readers ...). Opens `--count`
keep-alive connections to `--url`, each sending a long poll for a seq no write
will reach, and re-arms each that answers (the node answers `{"messages": []}`
when its wait runs out), so they stay attached. Prints `attached N` once every
connection has sent its first poll, then, on SIGTERM, one JSON object: how
many polls were answered (all must be empty), and any errors or dropped
connections (each reconnected). Standard library (and orjson) only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
from urllib.parse import urlsplit

import orjson

# A seq no benchmark write reaches.
FAR_SEQ = 1_000_000_000


def raise_fd_limit(needed: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE to what it needs (its children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} < {needed} file descriptors needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class Stats:
    def __init__(self) -> None:
        self.attached = 0
        self.answers = 0
        self.non_empty = 0
        self.errors = 0
        self.reconnects = 0


async def hold(url: str, wait: float, stats: Stats, first: asyncio.Event, gate: asyncio.Semaphore):
    parts = urlsplit(url)
    request = f"GET /?from={FAR_SEQ}&wait={wait} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    announced = False
    while True:
        try:
            async with gate:
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        except OSError:
            stats.errors += 1
            await asyncio.sleep(0.1)
            continue
        try:
            while True:
                writer.write(request)
                await writer.drain()
                if not announced:
                    announced = True
                    stats.attached += 1
                    first.set()
                status_line = await reader.readline()
                if not status_line:
                    break
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                stats.answers += 1
                if int(status_line.split()[1]) != 200:
                    stats.errors += 1
                elif orjson.loads(body)["messages"]:
                    stats.non_empty += 1
        except (OSError, asyncio.IncompleteReadError):
            stats.errors += 1
        finally:
            writer.close()
        stats.reconnects += 1


async def run(args: argparse.Namespace) -> dict:
    stats = Stats()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    gate = asyncio.Semaphore(64)  # connections being opened at once
    first = asyncio.Event()
    tasks = [
        asyncio.create_task(hold(args.url, args.wait, stats, first, gate))
        for _ in range(args.count)
    ]
    while stats.attached < args.count and not stop.is_set():
        await asyncio.sleep(0.01)
    print(f"attached {stats.attached}", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    return {
        "readers": args.count,
        "attached": stats.attached,
        "answers": stats.answers,
        "non_empty_answers": stats.non_empty,
        "errors": stats.errors,
        "reconnects": stats.reconnects,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--wait", type=float, default=30.0, help="seconds per long poll")
    args = parser.parse_args()
    raise_fd_limit(args.count + 64)
    result = asyncio.run(run(args))
    json.dump(result, sys.stdout)
    print(flush=True)


if __name__ == "__main__":
    main()
