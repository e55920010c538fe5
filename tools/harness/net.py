"""Free ports and loopback addresses.

Every 127.x.y.z address is loopback on Linux, so each user picks addresses from
a range of its own and runs never collide: the tests 127.0.P.x, the fault
campaign 127.(64+P).y.z (P derived from the process id), the benchmark a
fixed 127.0.0.5.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable


def free_port(host: str) -> int:
    """A TCP port on `host` that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def first_bindable(candidates: Iterable[str], tries: int = 250, port: int = 0) -> str:
    """The first address of `candidates` this machine lets us bind to (on `port`, if given)."""
    for _, host in zip(range(tries), candidates, strict=False):
        try:
            with socket.socket() as sock:
                sock.bind((host, port))
            return host
        except OSError:
            continue
    raise RuntimeError("no usable loopback address")


def process_octet(base: int, span: int) -> int:
    """An address octet in `base .. base + span - 1` that differs between concurrent processes."""
    return base + os.getpid() % span
