"""A blocking Server-Sent Events client for tests (`GET /stream`, `GET /ui/events`)."""

from __future__ import annotations

import http.client as httpclient
import json
from urllib.parse import urlsplit


class EventStream:
    """Reads one event stream: `url` with its path and query, resumed after
    `last_event_id` when given."""

    def __init__(self, url: str, last_event_id: int | str | None = None, timeout: float = 10):
        parts = urlsplit(url)
        self.conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.conn.request("GET", path, headers=headers)
        self.response = self.conn.getresponse()

    def next_event(self) -> dict | None:
        """The next event as its fields ({"id", "event", "data"}: data parsed as JSON);
        comments skipped; None once the stream ended."""
        event: dict = {}
        while True:
            line = self.response.readline()
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if text.startswith(":"):
                continue
            if not text:
                if event:
                    return event
                continue
            field, _, value = text.partition(": ")
            event[field] = json.loads(value) if field == "data" else value

    def take(self, count: int) -> list[dict]:
        events = [self.next_event() for _ in range(count)]
        assert None not in events, events
        return events  # type: ignore[return-value]

    def close(self) -> None:
        self.conn.close()
