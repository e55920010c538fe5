"""Transport for start-up recovery: read a secondary's log over HTTP, page by page."""

from __future__ import annotations

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from common import wire
from core import LogReport
from core.entry import Entry

PAGE = 10_000


class FetchError(Exception):
    pass


def check_fetched(entries: list[Entry], report: LogReport) -> None:
    """The log must still be the one reported (the node may have restarted meanwhile)."""
    if len(entries) < report.length:
        raise FetchError(f"got {len(entries)} entries, {report.length} were reported")
    if report.length and entries[report.length - 1].epoch != report.last_epoch:
        raise FetchError("the log changed since it was reported")


async def fetch_log(url: str) -> list[Entry]:
    """Every entry of the secondary's contiguous log, in seq order."""
    client = AsyncHTTPClient()
    entries: list[Entry] = []
    while True:
        page_url = f"{url.rstrip('/')}{wire.LOG_PATH}?from={len(entries) + 1}&limit={PAGE}"
        try:
            response = await client.fetch(
                HTTPRequest(page_url, connect_timeout=3, request_timeout=30)
            )
            page = wire.decode_entries(orjson.loads(response.body))
        except (OSError, HTTPClientError, orjson.JSONDecodeError, wire.WireError) as exc:
            raise FetchError(f"{page_url}: {exc}") from None
        if any(e.seq != len(entries) + i for i, e in enumerate(page, start=1)):
            raise FetchError(f"{page_url}: entries out of sequence")
        entries.extend(page)
        if len(page) < PAGE:
            return entries
