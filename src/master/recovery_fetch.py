"""Transport for start-up recovery: read a secondary's log over HTTP, page by page."""

from __future__ import annotations

import asyncio

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.httputil import HTTPInputError

from replog.common import wire
from replog.common.loop import left_alone_if_cancelled
from replog.common.security import PeerClient
from replog.core import LogReport
from replog.core.entry import Entry

PAGE = 10_000


class FetchError(Exception):
    pass


def check_fetched(entries: list[Entry], report: LogReport) -> None:
    """The log must still be the one reported (the node may have restarted meanwhile)."""
    if len(entries) < report.length:
        raise FetchError(f"got {len(entries)} entries, {report.length} were reported")
    if report.length and entries[report.length - 1].epoch != report.last_epoch:
        raise FetchError("the log changed since it was reported")


def decode_page(body: bytes, first_seq: int, previous: Entry | None) -> list[Entry]:
    """One page: {"entries": [...]}, at most PAGE of them, continuing the log from
    `first_seq` (consecutive seqs, epochs never going back). WireError otherwise."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise wire.WireError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.keys() != {"entries"}:
        raise wire.WireError('expected {"entries": [...]}')
    page = wire.decode_entries(doc)
    if len(page) > PAGE:
        raise wire.WireError(f"{len(page)} entries, more than the {PAGE} asked for")
    if previous is not None and page and page[0].epoch < previous.epoch:
        raise wire.WireError(f"entry {page[0].seq} has an older epoch than entry {previous.seq}")
    wire.check_run(page, first_seq)
    return page


async def fetch_log(url: str, peers: PeerClient) -> list[Entry]:
    """Every entry of the secondary's contiguous log, in seq order, until an empty page
    (the requests carry the cluster token and verify an https peer as `peers` says).

    Each response is read up to wire.LOG_PAGE_LIMIT bytes (a page is at most
    wire.LOG_PAGE_BYTES, or one entry) and checked before it is kept.
    """
    limit = wire.LOG_PAGE_LIMIT
    client = AsyncHTTPClient(force_instance=True, max_body_size=limit, max_buffer_size=limit)
    entries: list[Entry] = []
    cancelled = False
    try:
        while True:
            start = len(entries) + 1
            page_url = f"{url.rstrip('/')}{wire.LOG_PATH}?from={start}&limit={PAGE}"
            try:
                response = await left_alone_if_cancelled(
                    client.fetch(peers.request(page_url, connect_timeout=3, request_timeout=30))
                )
                page = decode_page(response.body, start, entries[-1] if entries else None)
            except HTTPClientError as exc:
                if exc.code == 401:
                    raise FetchError(
                        f"{page_url}: 401 Unauthorized: the secondary has another cluster token "
                        "(or none is set here)"
                    ) from None
                raise FetchError(f"{page_url}: {exc}") from None
            except (OSError, HTTPInputError, wire.WireError) as exc:
                raise FetchError(f"{page_url}: {exc}") from None
            if not page:
                return entries
            entries.extend(page)
    except asyncio.CancelledError:
        cancelled = True
        raise
    finally:
        if not cancelled:  # else the fetch left in flight ends on its own, with its client
            client.close()
