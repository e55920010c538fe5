"""How the CLI prints: JSON lines for programs, an aligned table for a person at a terminal."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

MESSAGE_COLUMNS = ("seq", "id", "message")
ELLIPSIS = "…"


def json_line(value: Any) -> str:
    """One line of compact JSON (non-ASCII kept as is)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def entry_line(entry: Mapping[str, Any]) -> str:
    """A message as `get --json` prints it: {"seq","id","message"}."""
    return json_line({key: entry.get(key) for key in MESSAGE_COLUMNS})


def cell(value: Any) -> str:
    """A value on one line: a string as is but with control characters escaped
    (a message with a newline must not break the table), None as -, others as JSON."""
    if value is None:
        return "-"
    if isinstance(value, str):
        if value.isprintable():
            return value
        return json.dumps(value, ensure_ascii=False)[1:-1]
    return json.dumps(value, ensure_ascii=False)


def clip(text: str, width: int) -> str:
    if width <= 0 or len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ELLIPSIS


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None = None) -> str:
    """Columns aligned on the widest cell; with `width`, the last column is clipped so that
    each line fits (never narrower than its header)."""
    cells = [[cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    last_room = None
    if width is not None:
        used = sum(widths[:-1]) + 2 * (len(headers) - 1)
        last_room = max(len(headers[-1]), width - used)
    lines = []
    for row in [list(headers), *cells]:
        if last_room is not None:
            row = [*row[:-1], clip(row[-1], last_room)]
        padded = [text.ljust(widths[i]) for i, text in enumerate(row[:-1])]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def message_table(entries: Sequence[Mapping[str, Any]], width: int | None = None) -> str:
    rows = [[entry.get(key) for key in MESSAGE_COLUMNS] for entry in entries]
    return table([c.upper() for c in MESSAGE_COLUMNS], rows, width)


def message_row(entry: Mapping[str, Any], width: int | None = None) -> str:
    """One entry as a line of a table whose rows arrive one by one (`tail -f` on a terminal):
    fixed columns, seq right-aligned on 8, id on 16, the message clipped to `width`."""
    seq = cell(entry.get("seq")).rjust(8)
    ident = cell(entry.get("id")).ljust(16)
    head = f"{seq}  {ident}  "
    message = cell(entry.get("message"))
    return head + (clip(message, width - len(head)) if width else message)
