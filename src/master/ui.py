"""The live cluster page on the master: `GET /ui` (one self-contained HTML file,
ui.html beside this module) and `GET /ui/events`, the Server-Sent Events feed it
draws from.

The feed sends a snapshot of the cluster as the master sees it at once, then
after every change (a write, a sync, an ACK, a status change), at most every
MIN_INTERVAL_S, and every REFRESH_S when nothing changes (heartbeat ages move;
it is also the feed's keepalive). Between snapshots it waits on the node's
`Changes` signal: no polling. Open like `GET /` and `/health` (no cluster
token): it shows what any client can read.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources

import orjson
import structlog

from replog.common.reads import EventStreamHandler
from replog.common.web import JsonHandler
from replog.master.node import MasterNode

log = structlog.get_logger("replog.ui")

# Snapshots follow changes at most this often (seconds).
MIN_INTERVAL_S = 0.2
# A snapshot at least this often, changes or not (seconds).
REFRESH_S = 1.0
# The last entries of the master's log in a snapshot.
TAIL_ENTRIES = 20
# A message in the tail is cut to this many characters (the page shows a column of them).
TAIL_MESSAGE_CHARS = 200

HTML_TYPE = "text/html; charset=utf-8"


def page() -> bytes:
    """The page, read from the installed package (package data: ui.html)."""
    return resources.files("replog.master").joinpath("ui.html").read_bytes()


def snapshot(node: MasterNode, master_url: str, wall_time: float) -> dict:
    """The cluster as the master sees it now: what one `GET /ui/events` event carries."""
    log_ = node.log
    now = node.clock()
    last_seq = log_.last_seq
    reason = log_.read_only_reason()
    master_status = node.node_status()
    nodes: list[dict] = [
        {
            "id": "master",
            "role": "master",
            "url": master_url,
            "status": master_status,
            "acked_seq": log_.durable_seq,
            "lag": max(0, last_seq - log_.durable_seq),
            "heartbeat_age_ms": None,
        }
    ]
    for view in node.secondary_views(now):
        age = view.pop("last_heartbeat_ms_ago")
        nodes.append(
            {**view, "role": "secondary", "status": str(view["status"]), "heartbeat_age_ms": age}
        )
    visible = log_.visible_seq
    tail = []
    for m in log_.public_page(max(1, visible - TAIL_ENTRIES + 1), TAIL_ENTRIES):
        message = str(m["message"])
        tail.append(
            {
                "seq": m["seq"],
                "id": m["id"],
                "message": message[:TAIL_MESSAGE_CHARS],
                "truncated": len(message) > TAIL_MESSAGE_CHARS,
            }
        )
    return {
        "time": round(wall_time, 3),
        "last_seq": last_seq,
        "commit_seq": log_.commit_seq,
        "read_only": reason,
        "writes": node.write_stats.summary(now),
        "nodes": nodes,
        "tail": tail,
    }


class UiHandler(JsonHandler):
    """`GET /ui`: the live cluster page."""

    def get(self) -> None:
        self.set_header("Content-Type", HTML_TYPE)
        self.set_header("Cache-Control", "no-cache")
        self.finish(page())

    # HEAD as GET, without the body (Tornado drops it): uptime checkers use it.
    head = get


class UiEventsHandler(EventStreamHandler):
    """`GET /ui/events`: snapshots of the cluster (`snapshot`) as Server-Sent Events.

    Bounded like `GET /stream`: a reader with more than --stream-buffer-bytes
    written and not yet taken is disconnected (`ui_reader_slow`).
    """

    node: MasterNode

    def initialize(self, node: MasterNode) -> None:  # type: ignore[override]
        super().initialize()
        self.node = node

    async def get(self) -> None:
        node = self.node
        master_url = f"{self.request.protocol}://{self.request.host}"
        limit = node.read_config.stream_buffer_bytes
        self._open_event_stream()
        sent, reason = 0, "client_closed"
        log.info("ui_reader_opened", peer=self.request.remote_ip)
        loop = asyncio.get_running_loop()
        try:
            while not self._gone:
                stop = await self._drain(limit)
                if stop is not None:
                    reason = stop
                    if stop == "slow":
                        log.warning(
                            "ui_reader_slow",
                            peer=self.request.remote_ip,
                            buffered_bytes=self._unflushed,
                        )
                    return
                seen = node.changes.version
                data = orjson.dumps(snapshot(node, master_url, time.time()))
                self._send(b"event: snapshot\ndata: %s\n\n" % data)
                sent += 1
                # At most one snapshot per MIN_INTERVAL_S ...
                if not await self._pause(loop.create_future(), MIN_INTERVAL_S):
                    return
                # ... then the next change, or REFRESH_S after this snapshot, whichever
                # comes first.
                waiter = node.changes.wait(seen)
                if waiter is not None and not await self._pause(waiter, REFRESH_S - MIN_INTERVAL_S):
                    return
        finally:
            log.info("ui_reader_closed", peer=self.request.remote_ip, sent=sent, reason=reason)

    async def _pause(self, future: asyncio.Future[None], timeout: float) -> bool:
        """Wait for `future` up to `timeout`; False if the reader went away meanwhile."""
        self._waiter = future
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            return False  # the client went away (on_connection_close)
        finally:
            self._waiter = None
        return not self._gone
