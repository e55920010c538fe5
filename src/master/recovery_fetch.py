"""Transport for start-up recovery: read a secondary's log over HTTP, page by page."""

from __future__ import annotations

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from common import wire
from common.loop import left_alone_if_cancelled
from common.security import PeerClient
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


async def fetch_log(url: str, peers: PeerClient) -> list[Entry]:
    """Every entry of the secondary's contiguous log, in seq order (the request
    carries the cluster token and verifies an https peer as `peers` says)."""
    client = AsyncHTTPClient()
    entries: list[Entry] = []
    while True:
        page_url = f"{url.rstrip('/')}{wire.LOG_PATH}?from={len(entries) + 1}&limit={PAGE}"
        try:
            response = await left_alone_if_cancelled(
                client.fetch(peers.request(page_url, connect_timeout=3, request_timeout=30))
            )
            page = wire.decode_entries(orjson.loads(response.body))
        except HTTPClientError as exc:
            if exc.code == 401:
                raise FetchError(
                    f"{page_url}: 401 Unauthorized: the secondary has another cluster token "
                    "(or none is set here)"
                ) from None
            raise FetchError(f"{page_url}: {exc}") from None
        except (OSError, orjson.JSONDecodeError, wire.WireError) as exc:
            raise FetchError(f"{page_url}: {exc}") from None
        if any(e.seq != len(entries) + i for i, e in enumerate(page, start=1)):
            raise FetchError(f"{page_url}: entries out of sequence")
        entries.extend(page)
        if len(page) < PAGE:
            return entries
