"""Where the node glue gets time and randomness: injectable, today's sources by default.

The servers run with the defaults below. A deterministic simulator (issue 10)
runs the same nodes on a virtual clock with seeded ids and jitter: it passes
its own `clock`, `wall_clock_ms`, `tokens` and `rng` to the node constructors
(master.node.MasterNode, secondary.node.SecondaryNode), which hand them on to
their links, registrar and backoffs. Timers need nothing here: the glue arms
them on the running event loop (`loop.time()`), which a simulated loop provides.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

# Seconds on a monotonic clock: ages, heartbeats, latencies.
Clock = Callable[[], float]
# Milliseconds since the Unix epoch: only to open a lenient recovery's epoch above
# every earlier one (core.recovery).
WallClockMs = Callable[[], int]
# A random token of `nbytes` bytes, as hex (secrets.token_hex): cluster ids, instances.
Tokens = Callable[[int], str]

monotonic: Clock = time.monotonic
token_hex: Tokens = secrets.token_hex


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
