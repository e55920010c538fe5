"""Server-Sent Events, parsed by hand (the subset `GET /stream` uses, read as the spec says).

A line `id: <v>` sets the event's id, `data: <v>` adds a line of data, a line starting
with `:` is a comment (the server's keepalive), other fields are ignored; a blank line
ends the event. An event cut off by a dropped connection (no blank line yet) is never
dispatched, so a reader never acts on half an event."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    id: str | None
    data: str


class EventParser:
    def __init__(self) -> None:
        self._id: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """One line, without its ending; the event it completes, if any."""
        if line == "":
            if not self._data:
                self._id = None
                return None
            event = Event(self._id, "\n".join(self._data))
            self._id, self._data = None, []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


def events(lines: Iterable[str]) -> Iterator[Event]:
    parser = EventParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
