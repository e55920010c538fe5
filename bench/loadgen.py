"""Load generator: N concurrent HTTP/1.1 keep-alive clients POSTing unique writes.

Runs as its own process (python -m bench.loadgen ...) and prints one JSON
object: requests, errors, writes/s and latency percentiles. Each client
sends a request, waits for the whole response, then sends the next, as a
real client on a keep-alive connection would. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import orjson


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def body_for(client: int, n: int, args: argparse.Namespace, payload: str) -> tuple[bytes, list]:
    """The request body, and the ids it sends (a batch's answer names seqs, not ids)."""
    ident = f"{args.run}-{client}-{n}"
    if args.batch:
        ids = [f"{ident}-{k}" for k in range(args.batch)]
        doc = {"messages": [{"message": payload, "id": i} for i in ids], "w": args.w}
        return orjson.dumps(doc), ids
    return orjson.dumps({"message": payload, "w": args.w, "id": ident}), [ident]


async def client(
    index: int, args: argparse.Namespace, deadline: float, latencies: list, acked: list
) -> int:
    parts = urlsplit(args.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = f"POST / HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
    payload = "x" * args.payload
    errors = 0
    n = 0
    try:
        while time.perf_counter() < deadline:
            body, ids = body_for(index, n, args, payload)
            n += 1
            request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            response = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            if status in (200, 201):
                if args.record:
                    answer = orjson.loads(response)
                    if args.batch:
                        answer["sent_ids"] = ids
                    acked.append(answer)
            else:
                errors += 1
    finally:
        writer.close()
    return errors


async def run(args: argparse.Namespace) -> dict:
    latencies: list[float] = []
    acked: list[dict] = []
    started = time.perf_counter()
    deadline = started + args.duration
    errors = await asyncio.gather(
        *(client(i, args, deadline, latencies, acked) for i in range(args.concurrency))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    requests = len(latencies)
    result = {
        "requests": requests,
        "errors": sum(errors),
        "seconds": round(elapsed, 3),
        "requests_per_s": round(requests / elapsed, 1),
        "messages_per_s": round(requests * max(args.batch, 1) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 3),
        "p90_ms": round(percentile(latencies, 90) * 1000, 3),
        "p99_ms": round(percentile(latencies, 99) * 1000, 3),
    }
    if args.record:
        result["acked"] = acked
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--payload", type=int, default=100, help="message size in bytes")
    parser.add_argument("--w", default=1, type=lambda v: v if v == "majority" else int(v))
    parser.add_argument("--batch", type=int, default=0, help="messages per request (0: single)")
    parser.add_argument("--run", default="r", help="prefix that makes ids unique per run")
    parser.add_argument(
        "--record",
        action="store_true",
        help="include acknowledged responses (a batch's with the ids it sent, as sent_ids)",
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
