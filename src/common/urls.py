"""What a node's URL may be: `http(s)://host:port`, nothing more.

A path, query, fragment or user info would make the master send its requests
somewhere else, or with credentials; an uppercase scheme, whitespace, an empty
or zero port would be taken apart differently by the HTTP client than by
whoever checked it. So a node URL is matched whole, in one strict form.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TypeGuard

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_NODE_URL = re.compile(
    rf"(?P<scheme>https?)://(?P<host>{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])"
    r":(?P<port>[1-9][0-9]{0,4})/?",
    re.ASCII,
)
MAX_URL_LENGTH = 300
EXAMPLE = "http://127.0.0.2:5001"


def is_node_url(url: object) -> TypeGuard[str]:
    """`http(s)://host:port` (an optional trailing slash): lowercase scheme, a DNS
    name (underscores allowed, as compose service names have them), an IPv4 address
    or a bracketed IPv6 address, and a port from 1 to 65535 without leading zeros."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        return False
    match = _NODE_URL.fullmatch(url)
    if match is None or int(match["port"]) > 65535:
        return False
    host = match["host"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
    return True


def node_url(raw: str) -> str:
    """An argparse type: a node URL, without its trailing slash."""
    if not is_node_url(raw):
        raise ValueError(
            f"{raw!r} is not a node URL: want http(s)://host:port and nothing more, like {EXAMPLE}"
        )
    return raw.rstrip("/")
