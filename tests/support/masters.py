"""An open MasterNode for in-process tests: no real secondaries, quorum in its core."""

from __future__ import annotations

import time
from typing import Any

from replog.master.config import MasterConfig
from replog.master.node import MasterNode


def open_master(secondaries: tuple[str, ...] = ("s1", "s2"), **config: Any) -> MasterNode:
    """A master in epoch 1 whose core counts `secondaries` as streaming and healthy
    (so there is quorum), though nothing replicates to them."""
    node = MasterNode(MasterConfig(secondaries=len(secondaries), **config))
    node.log.adopt([], epoch=1)
    now = time.monotonic()
    for name in secondaries:
        node.log.register(name, f"http://{name}", 0, now=now)
        node.log.stream_opened(name, 0, now=now)
    node.log.update_health(now)
    return node
