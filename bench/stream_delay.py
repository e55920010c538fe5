"""Stream delay: from a write's answer to its arrival at a `GET /stream` reader.

Runs as its own process (python -m bench.stream_delay ...) and prints one
JSON object. It follows `GET /stream` on one node (a secondary, in the
benchmark) with a raw HTTP/1.1 reader, then posts sequential writes to the
master (each sent once the previous one is answered), for each `w` in turn.
For every write, delay = the time its event arrived at the reader minus the
time the writer got its answer, both read from this process's clock: for
`w >= 2` the secondary may have sent the event before the master answered,
so a delay can be negative, and is reported as measured. Every event must be
one of the writes, at the seq its answer named, each once and in order.
Standard library (and orjson) only; one event loop for the reader and the
writer, so an arrival is timed when the loop gets to it (microseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import orjson

from bench.loadgen import percentile


class StreamBroken(Exception):
    pass


async def read_headers(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    status_line = await reader.readline()
    if not status_line:
        raise StreamBroken("connection closed before the status line")
    headers: dict[bytes, bytes] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


async def follow(url: str, arrived: dict[int, tuple[float, str]], opened: asyncio.Event) -> None:
    """Follow `url` + /stream; record each event's arrival time and id, by seq."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(f"GET /stream HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    status, headers = await read_headers(reader)
    if status != 200:
        raise StreamBroken(f"GET /stream answered {status}")
    chunked = headers.get(b"transfer-encoding", b"").lower() == b"chunked"
    opened.set()
    pending = b""
    try:
        while True:
            if chunked:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    raise StreamBroken("the stream ended")
                data = await reader.readexactly(size + 2)
                data = data[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    raise StreamBroken("the stream ended")
            now = time.perf_counter()
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.startswith(b"data: "):
                    event = orjson.loads(line[6:])
                    if event["seq"] in arrived:
                        raise StreamBroken(f"seq {event['seq']} arrived twice")
                    arrived[event["seq"]] = (now, event["id"])
    finally:
        writer.close()


async def write_all(url: str, w: int, count: int, run: str, payload: str) -> dict[int, tuple]:
    """`count` sequential writes; seq -> (answer time, id) for each."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = f"POST / HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
    answered: dict[int, tuple[float, str]] = {}
    try:
        for n in range(count):
            ident = f"{run}-w{w}-{n}"
            body = orjson.dumps({"message": payload, "w": w, "id": ident})
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status, headers = await read_headers(reader)
            response = await reader.readexactly(int(headers[b"content-length"]))
            now = time.perf_counter()
            if status not in (200, 201):
                raise StreamBroken(f"write answered {status}: {response[:200]!r}")
            answered[orjson.loads(response)["seq"]] = (now, ident)
    finally:
        writer.close()
    return answered


async def run(args: argparse.Namespace) -> dict:
    arrived: dict[int, tuple[float, str]] = {}
    opened = asyncio.Event()
    follower = asyncio.create_task(follow(args.reader, arrived, opened))
    await asyncio.wait_for(opened.wait(), 10)
    # The stream sends entries from the next new one: let its handler reach its wait.
    await asyncio.sleep(0.2)
    results: dict[str, dict] = {}
    expected_next = None
    for w in args.w:
        answered = await write_all(args.master, w, args.writes, args.run, "x" * args.payload)
        deadline = time.perf_counter() + 30
        while not answered.keys() <= arrived.keys():
            if follower.done():
                follower.result()  # raises what broke the stream
            if time.perf_counter() > deadline:
                missing = len(answered.keys() - arrived.keys())
                raise StreamBroken(f"w={w}: {missing} writes never arrived on the stream")
            await asyncio.sleep(0.01)
        seqs = sorted(answered)
        if expected_next is not None and seqs[0] != expected_next:
            raise StreamBroken(f"w={w}: first seq {seqs[0]}, expected {expected_next}")
        if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            raise StreamBroken(f"w={w}: the answers' seqs have gaps")
        expected_next = seqs[-1] + 1
        wrong = [s for s in seqs if arrived[s][1] != answered[s][1]]
        if wrong:
            raise StreamBroken(f"w={w}: {len(wrong)} events carry another write's id")
        delays = sorted((arrived[s][0] - answered[s][0]) * 1000 for s in seqs)
        results[f"w{w}"] = {
            "w": w,
            "writes": len(seqs),
            "p50_ms": round(percentile(delays, 50), 3),
            "p99_ms": round(percentile(delays, 99), 3),
            "min_ms": round(delays[0], 3),
            "max_ms": round(delays[-1], 3),
            "negative": sum(1 for d in delays if d < 0),
        }
    if set(arrived) != set(range(min(arrived), max(arrived) + 1)):
        raise StreamBroken("the stream skipped a seq")
    follower.cancel()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--master", required=True, help="URL the writes go to")
    parser.add_argument("--reader", required=True, help="URL of the node whose /stream is read")
    parser.add_argument("--writes", type=int, default=2000, help="sequential writes per w")
    parser.add_argument("--w", type=int, action="append", help="write concern (repeatable)")
    parser.add_argument("--payload", type=int, default=100, help="message size in bytes")
    parser.add_argument("--run", default="delay", help="prefix that makes ids unique")
    args = parser.parse_args()
    args.w = args.w or [1, 2]
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
