"""A simulated network of message connections between named endpoints.

What it models is TCP under a message protocol (the replication WebSocket):

- A connection joins two endpoints (`connect(src, dst)` dials a listener). Each
  direction is a pipe: frames (bytes) arrive in the order sent, never duplicated,
  and never with a gap: once a frame of a direction is lost, every later frame of
  that direction is lost too (a TCP stream cannot skip a segment), so what an end
  receives is always a prefix of what the other end sent.
- Each direction of each pair of endpoints (a link) has a latency and a jitter. A
  frame's arrival is send time + latency + uniform(0, jitter), but never before
  the previous frame of its pipe (in-order). Different connections are
  independent: frames of an old connection can arrive after a new connection to
  the same peer opened.
- Faults, each counted in `faults` by kind and recorded in the trace:
  - `cut(src, dst, mode="hold")`: the link stops carrying; frames wait (TCP
    retransmits) and arrive after `heal`, in order. Nobody is told: a cut
    connection is silent, ends notice only through their own timeouts.
  - `cut(src, dst, mode="drop")`: frames that try to cross are lost, and their
    pipe is broken for good (later frames lost too). On `heal`, connections with
    a broken pipe are reset (a TCP peer that missed data cannot go on).
  - `both=True` cuts or heals both directions; `partition(groups)` cuts every
    link between groups; `heal_all()` heals every link.
  - `reset(a, b)`: every connection between a and b is reset: both ends see it
    closed at once (reads return None, `reset` is True), frames in flight lost.
  - `crash(name)`: the node stops listening, its ends close, frames to and from
    it in flight are lost, and each peer learns of it (a reset) one latency
    later, unless the link from the crashed node is cut: then the peer stays
    silent until its own timeout, as with a real kill behind a cut.
- Dialing: a dial waits while either direction is cut (a SYN retried), then
  takes one latency to reach the listener, whose acceptor runs (it may refuse with
  `DialRefused`, e.g. a 409 to the WebSocket upgrade) and one latency back. No
  listener: `ConnectionRefusedError` after a round trip. `timeout`: TimeoutError.

Not modelled: bandwidth, flow control (a writer never blocks), partial frames.
Randomness comes only from the `random.Random` given, drawn in callback order.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tornado.websocket import WebSocketClosedError

from replog.common.ws import TOO_BIG
from tools.sim.loop import SimLoop
from tools.sim.trace import Trace


class ConnectionClosed(WebSocketClosedError):
    """A write on an end known closed: Tornado's error, which the master's link expects."""


class DialRefused(ConnectionError):
    """The listener refused the connection during its handshake."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"refused with {code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass
class Link:
    """One direction between two endpoints."""

    latency: float
    jitter: float
    cut: str | None = None  # None, "hold" or "drop"


Acceptor = Callable[["SimConnection", Any], None]


@dataclass
class FrameFaults:
    """Fine-grained faults drawn per frame sent, each faithful to TCP (within a live
    connection nothing is lost, duplicated or reordered):

    - `delay`: this frame is late by uniform(delay_min, delay_max) (a retransmission, a
      queue); every frame behind it in its pipe waits too (head-of-line blocking).
      Counted as `ack_delay` when the frame goes towards the master (the secondary's
      ACKs and replies), as `frame_delay` otherwise.
    - `stall`: the pipe stops for uniform(stall_min, stall_max) from this frame on (a
      peer's receive window at zero, a long retransmission backoff): one direction
      only, the other keeps flowing.
    - `reset`: the connection is reset at this frame (an RST): the frame and all in
      flight are lost, both ends see it closed.

    The chances are per data frame; draws come from `rng` only (not the network's
    own), so a network without FrameFaults draws exactly what it drew before.
    """

    rng: Any
    delay: float = 0.1
    delay_min: float = 0.002
    delay_max: float = 0.15
    stall: float = 0.01
    stall_min: float = 0.1
    stall_max: float = 1.5
    reset: float = 0.002
    towards_master: str = "master"

    def draw(self, dst: str) -> tuple[str, float] | None:
        """The fault for one frame to `dst`: (kind, extra delay), or None."""
        x = self.rng.random()
        if x < self.reset:
            return "frame_reset", 0.0
        x -= self.reset
        if x < self.stall:
            return "stall", self.rng.uniform(self.stall_min, self.stall_max)
        x -= self.stall
        if x < self.delay:
            kind = "ack_delay" if dst == self.towards_master else "frame_delay"
            return kind, self.rng.uniform(self.delay_min, self.delay_max)
        return None


@dataclass(frozen=True, slots=True)
class _Fin:
    """A graceful close, travelling behind the frames sent before it."""

    code: int | None
    reason: str | None


_RESET = "reset"  # a peer's crash, travelling as a reset


class FramePreview:
    """A frame in the trace: its size and a readable start, formatted when printed."""

    __slots__ = ("frame",)

    def __init__(self, frame: bytes) -> None:
        self.frame = frame

    def __str__(self) -> str:
        head = self.frame[:60].decode("utf-8", "replace")
        more = "..." if len(self.frame) > 60 else ""
        return f"len={len(self.frame)} {head!r}{more}"


class _Pipe:
    """One direction of one connection: what is in flight, in order."""

    __slots__ = ("broken", "last_due", "queue", "receiver", "sender", "timer")

    def __init__(self, sender: SimConnection, receiver: SimConnection) -> None:
        self.sender = sender
        self.receiver = receiver
        self.queue: deque[tuple[float, bytes | _Fin | str]] = deque()
        self.last_due = 0.0
        self.broken = False  # a frame was lost: nothing more gets through
        self.timer: asyncio.TimerHandle | None = None


class SimConnection:
    """One end of a connection, with the read/write/close surface of a WebSocket.

    It is a `replog.master.replicator.Connection` (what the master's SecondaryLink
    reads and writes) and a `replog.secondary.replication.Pipe` (`send`, what a
    ReplicationSession writes to), so the real link and session run on it.
    """

    def __init__(self, network: SimNetwork, conn_id: int, local: str, remote: str) -> None:
        self.network = network
        self.id = conn_id
        self.local = local
        self.remote = remote
        self.closed = False
        self.reset = False  # closed by a reset or the peer's crash, not by a close
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.peer: SimConnection = self
        self._out: _Pipe | None = None
        # The largest frame this end reads (Tornado's max_message_size), None: any.
        # A larger one closes the connection with 1009 unread, as Tornado does.
        self.max_message_size: int | None = None
        self._inbox: deque[bytes] = deque()
        self._reader: asyncio.Future[bytes | None] | None = None

    def __repr__(self) -> str:
        state = "reset" if self.reset else "closed" if self.closed else "open"
        return f"<conn {self.id} {self.local}->{self.remote} {state}>"

    def write_message(self, frame: bytes) -> asyncio.Future[None]:
        """Send a frame. The Future is done at once: no flow control, a write never
        waits (Tornado's is done once the frame is in the socket's buffer)."""
        if self.closed:
            raise ConnectionClosed(f"connection {self.id} {self.local}->{self.remote} is closed")
        assert self._out is not None
        self.network._send(self._out, frame)
        written: asyncio.Future[None] = self.network.loop.create_future()
        written.set_result(None)
        return written

    def pending_frames(self) -> int:
        """Frames written here that the peer has not read: in flight or in its inbox."""
        in_flight = 0 if self._out is None else len(self._out.queue)
        return in_flight + len(self.peer._inbox)

    def send(self, frame: bytes) -> None:
        """Send a frame; on a closed end, drop it (the secondary's `Pipe`)."""
        if not self.closed:
            self.write_message(frame)

    def read_message(self) -> asyncio.Future[bytes | None]:
        """The next frame, or None once the connection is closed (a Future, as Tornado's)."""
        future: asyncio.Future[bytes | None] = self.network.loop.create_future()
        if self._inbox:
            future.set_result(self._inbox.popleft())
        elif self.closed:
            future.set_result(None)
        elif self._reader is not None:
            raise RuntimeError("read_message: a read is already pending")
        else:
            self._reader = future
        return future

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close gracefully: the peer sees it after the frames already sent."""
        if self.closed:
            return
        self._mark_closed(code, reason)
        self._inbox.clear()
        self._wake_reader()
        self.network._closed_by_end(self, _Fin(code, reason))

    # --- called by the network -------------------------------------------------

    def _receive(self, frame: bytes) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            if not reader.done():
                reader.set_result(frame)
                return
        self._inbox.append(frame)

    def _mark_closed(self, code: int | None, reason: str | None) -> None:
        self.closed = True
        self.close_code = code
        self.close_reason = reason

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._inbox:
            reader, self._reader = self._reader, None
            if not reader.done():
                reader.set_result(None)


class SimNetwork:
    def __init__(
        self,
        loop: SimLoop,
        rng: Any,
        trace: Trace | None = None,
        *,
        latency: float = 0.0005,
        jitter: float = 0.0,
    ) -> None:
        self.loop = loop
        self.rng = rng
        self.trace = trace if trace is not None else Trace(loop.time)
        self.default_latency = latency
        self.default_jitter = jitter
        self.faults: Counter[str] = Counter()  # faults injected, by kind
        self.stats: Counter[str] = Counter()  # frames sent, delivered, lost...
        self._links: dict[tuple[str, str], Link] = {}
        self._listeners: dict[str, Acceptor] = {}
        self._live: dict[int, tuple[SimConnection, SimConnection]] = {}
        self._ids = itertools.count(1)
        # Bumped by crash(): a dial begun before a crash of either end fails.
        self._crashes: Counter[str] = Counter()
        self._healed: asyncio.Future[None] | None = None
        # Per-frame faults (delays, stalls, resets); None: none.
        self.frame_faults: FrameFaults | None = None

    # --- topology --------------------------------------------------------------

    def link(self, src: str, dst: str) -> Link:
        key = (src, dst)
        found = self._links.get(key)
        if found is None:
            found = self._links[key] = Link(self.default_latency, self.default_jitter)
        return found

    def listen(self, name: str, acceptor: Acceptor) -> None:
        """`name` accepts connections: `acceptor(server_end, request)` runs for each."""
        self._listeners[name] = acceptor
        self.trace.record("listen", name)

    def stop_listening(self, name: str) -> None:
        self._listeners.pop(name, None)

    def connections(self, name: str | None = None) -> list[SimConnection]:
        """Open ends (at `name`, or all), oldest connection first."""
        ends = [end for pair in self._live.values() for end in pair if not end.closed]
        return [end for end in ends if name is None or end.local == name]

    def _delay(self, src: str, dst: str) -> float:
        link = self.link(src, dst)
        if link.jitter:
            return link.latency + self.rng.uniform(0.0, link.jitter)
        return link.latency

    def _path_cut(self, a: str, b: str) -> bool:
        return self.link(a, b).cut is not None or self.link(b, a).cut is not None

    # --- dialing ---------------------------------------------------------------

    async def connect(
        self, src: str, dst: str, request: Any = None, *, timeout: float | None = None
    ) -> SimConnection:
        """Dial `dst` from `src`; returns `src`'s end once the handshake is done."""
        self.stats["dials"] += 1
        self.trace.record("dial", f"{src}->{dst}")
        crashes = (self._crashes[src], self._crashes[dst])

        def check_alive() -> None:
            if (self._crashes[src], self._crashes[dst]) != crashes:
                raise ConnectionResetError(f"dial {src}->{dst}: a crash ended it")

        try:
            async with asyncio.timeout(timeout):
                await self._wait_path(src, dst)
                await asyncio.sleep(self._delay(src, dst))  # the SYN, the upgrade request
                check_alive()
                acceptor = self._listeners.get(dst)
                if acceptor is None:
                    await asyncio.sleep(self._delay(dst, src))
                    self.trace.record("refused", f"{src}->{dst}", "nobody listening")
                    raise ConnectionRefusedError(f"{dst} is not listening")
                client, server = self._open(src, dst)
                try:
                    acceptor(server, request)
                except DialRefused as refused:
                    self._drop(client.id)
                    await asyncio.sleep(self._delay(dst, src))
                    self.trace.record("refused", f"{src}->{dst}", refused.code, refused.reason)
                    raise
                except BaseException:
                    self._drop(client.id)
                    raise
                try:
                    await self._wait_path(src, dst)
                    await asyncio.sleep(self._delay(dst, src))  # the answer
                    check_alive()
                except BaseException:
                    # The server end may live on, silent, as a half-open TCP connection.
                    if not client.closed:
                        client.close()
                    raise
                self.trace.record("connected", f"{src}->{dst}", f"conn={client.id}")
                return client
        except TimeoutError:
            self.trace.record("dial_timeout", f"{src}->{dst}")
            raise

    async def _wait_path(self, src: str, dst: str) -> None:
        while self._path_cut(src, dst):
            if self._healed is None:
                self._healed = self.loop.create_future()
            await asyncio.shield(self._healed)

    def _open(self, src: str, dst: str) -> tuple[SimConnection, SimConnection]:
        conn_id = next(self._ids)
        client = SimConnection(self, conn_id, src, dst)
        server = SimConnection(self, conn_id, dst, src)
        client.peer, server.peer = server, client
        client._out = _Pipe(client, server)
        server._out = _Pipe(server, client)
        self._live[conn_id] = (client, server)
        self.trace.record("accept", f"{dst}<-{src}", f"conn={conn_id}")
        return client, server

    def _drop(self, conn_id: int) -> None:
        pair = self._live.pop(conn_id, None)
        if pair is None:
            return
        for end in pair:
            assert end._out is not None
            _cancel(end._out)
            end._out.queue.clear()

    # --- frames ----------------------------------------------------------------

    def _send(self, pipe: _Pipe, item: bytes | _Fin | str) -> None:
        src, dst = pipe.sender.local, pipe.receiver.local
        if isinstance(item, bytes):
            self.stats["sent"] += 1
            self.trace.record("send", f"{src}->{dst}", f"conn={pipe.sender.id}", FramePreview(item))
        if pipe.broken:
            self._lose(pipe, item, "broken")
            return
        link = self.link(src, dst)
        extra = 0.0
        if self.frame_faults is not None and isinstance(item, bytes) and link.cut is None:
            drawn = self.frame_faults.draw(dst)
            if drawn is not None:
                kind, extra = drawn
                self._fault(kind, f"{src}->{dst}", f"conn={pipe.sender.id}", f"{extra:.4f}")
                if kind == "frame_reset":
                    self._lose(pipe, item, "reset")
                    self._reset_pair(pipe.sender.id, "fault at frame")
                    return
        due = max(self.loop.time() + self._delay(src, dst) + extra, pipe.last_due)
        pipe.last_due = due
        pipe.queue.append((due, item))
        if link.cut == "drop":
            self._break(pipe)
        elif link.cut is None and pipe.timer is None:
            pipe.timer = self.loop.call_at(pipe.queue[0][0], self._deliver_due, pipe)

    def _deliver_due(self, pipe: _Pipe) -> None:
        pipe.timer = None
        link = self.link(pipe.sender.local, pipe.receiver.local)
        if link.cut == "drop":
            self._break(pipe)
            return
        if link.cut == "hold":
            return  # heal() re-arms it
        now = self.loop.time()
        while pipe.queue and pipe.queue[0][0] <= now:
            _, item = pipe.queue.popleft()
            self._arrive(pipe, item)
        if pipe.queue:
            pipe.timer = self.loop.call_at(pipe.queue[0][0], self._deliver_due, pipe)

    def _arrive(self, pipe: _Pipe, item: bytes | _Fin | str) -> None:
        receiver = pipe.receiver
        where = f"{pipe.sender.local}->{receiver.local}"
        if receiver.closed:
            # It closed (or crashed) first: what was on its way is discarded, as a
            # closed socket's kernel does.
            if isinstance(item, bytes):
                self.stats["discarded"] += 1
            self._forget_if_done(receiver.id)
            return
        limit = receiver.max_message_size
        if isinstance(item, bytes) and limit is not None and len(item) > limit:
            # `len > limit`, as Tornado compares (a FrameLimit notes the length).
            self.stats["too_big"] += 1
            self.trace.record("too_big", where, f"conn={receiver.id}", len(item), limit)
            receiver.close(TOO_BIG, "message too big")
            return
        if isinstance(item, bytes):
            self.stats["delivered"] += 1
            self.trace.record("deliver", where, f"conn={receiver.id}", FramePreview(item))
            receiver._receive(item)
        elif isinstance(item, _Fin):
            self.trace.record("closed_by", where, f"conn={receiver.id}", item.code, item.reason)
            receiver._mark_closed(item.code, item.reason)
            receiver._wake_reader()
            self._forget_if_done(receiver.id)
        else:
            self.trace.record("reset_seen", where, f"conn={receiver.id}")
            self._reset_end(receiver)
            self._forget_if_done(receiver.id)

    def _lose(self, pipe: _Pipe, item: bytes | _Fin | str, why: str) -> None:
        if isinstance(item, bytes):
            self.stats["lost"] += 1
            self.trace.record("lost", f"{pipe.sender.local}->{pipe.receiver.local}", why)
        else:
            self.trace.record("lost", f"{pipe.sender.local}->{pipe.receiver.local}", why, item)

    def _break(self, pipe: _Pipe) -> None:
        _cancel(pipe)
        if not pipe.broken:
            pipe.broken = True
            self.trace.record("broken", f"{pipe.sender.local}->{pipe.receiver.local}")
        while pipe.queue:
            self._lose(pipe, pipe.queue.popleft()[1], "cut")

    def _closed_by_end(self, end: SimConnection, fin: _Fin) -> None:
        self.trace.record("close", f"{end.local}->{end.remote}", f"conn={end.id}", fin.code)
        assert end._out is not None
        self._send(end._out, fin)
        self._forget_if_done(end.id)

    def _reset_end(self, end: SimConnection) -> None:
        end.reset = True
        end._mark_closed(None, None)
        end._inbox.clear()
        end._wake_reader()

    def _forget_if_done(self, conn_id: int) -> None:
        pair = self._live.get(conn_id)
        if pair is None:
            return
        if all(end.closed and end._out is not None and not end._out.queue for end in pair):
            del self._live[conn_id]

    # --- faults ----------------------------------------------------------------

    def _fault(self, kind: str, *parts: object) -> None:
        self.faults[kind] += 1
        self.trace.record("fault", kind, *parts)

    def set_latency(
        self, src: str, dst: str, latency: float, jitter: float = 0.0, *, both: bool = False
    ) -> None:
        for a, b in _directions(src, dst, both):
            link = self.link(a, b)
            link.latency, link.jitter = latency, jitter
        self._fault("latency", f"{src}{'<->' if both else '->'}{dst}", latency, jitter)

    def cut(self, src: str, dst: str, *, mode: str = "hold", both: bool = False) -> None:
        if mode not in ("hold", "drop"):
            raise ValueError(f"mode must be 'hold' or 'drop', not {mode!r}")
        for a, b in _directions(src, dst, both):
            self.link(a, b).cut = mode
            if mode == "drop":
                # What is in flight now is lost with the link.
                for pipe in self._pipes(a, b):
                    if pipe.queue:
                        self._break(pipe)
        kind = "cut" if both else "cut_one_way"
        self._fault(kind, f"{src}{'<->' if both else '->'}{dst}", mode)

    def heal(self, src: str, dst: str, *, both: bool = False) -> None:
        self._heal_links(_directions(src, dst, both))
        self._fault("heal", f"{src}{'<->' if both else '->'}{dst}")

    def partition(self, *groups: Iterable[str], mode: str = "hold") -> None:
        """Cut every link between endpoints of different groups, both ways."""
        sets = [list(group) for group in groups]
        for i, group in enumerate(sets):
            for other in sets[i + 1 :]:
                for a in group:
                    for b in other:
                        for x, y in ((a, b), (b, a)):
                            self.link(x, y).cut = mode
                            if mode == "drop":
                                for pipe in self._pipes(x, y):
                                    if pipe.queue:
                                        self._break(pipe)
        self._fault("partition", " | ".join(",".join(group) for group in sets), mode)

    def heal_all(self) -> None:
        self._heal_links([key for key, link in self._links.items() if link.cut is not None])
        self._fault("heal_all")

    def _heal_links(self, directions: Iterable[tuple[str, str]]) -> None:
        now = self.loop.time()
        for a, b in directions:
            link = self.link(a, b)
            if link.cut is None:
                continue
            link.cut = None
            for pipe in self._pipes(a, b):
                if pipe.broken:
                    # Data was lost: TCP cannot resume this stream.
                    self._reset_pair(pipe.sender.id, "heal after loss")
                elif pipe.queue and pipe.timer is None:
                    # Held frames go out again now, still in order.
                    floor = now + link.latency
                    pipe.queue = deque((max(due, floor), item) for due, item in pipe.queue)
                    pipe.last_due = max(pipe.last_due, floor)
                    pipe.timer = self.loop.call_at(pipe.queue[0][0], self._deliver_due, pipe)
        if self._healed is not None:
            healed, self._healed = self._healed, None
            healed.set_result(None)

    def reset(self, a: str, b: str) -> int:
        """Reset every connection between `a` and `b`; returns how many."""
        ids = [
            conn_id
            for conn_id, (client, server) in self._live.items()
            if {client.local, server.local} == {a, b}
        ]
        for conn_id in ids:
            self._reset_pair(conn_id, "fault")
        self._fault("reset", f"{a}<->{b}", f"connections={len(ids)}")
        return len(ids)

    def reset_connection(self, conn: SimConnection) -> None:
        self._reset_pair(conn.id, "fault")
        self._fault("reset", f"{conn.local}<->{conn.remote}", f"conn={conn.id}")

    def _reset_pair(self, conn_id: int, why: str) -> None:
        pair = self._live.pop(conn_id, None)
        if pair is None:
            return
        self.trace.record("reset", f"{pair[0].local}<->{pair[1].local}", f"conn={conn_id}", why)
        for end in pair:
            assert end._out is not None
            _cancel(end._out)
            for _, item in end._out.queue:
                self._lose(end._out, item, "reset")
            end._out.queue.clear()
            self._reset_end(end)

    def crash(self, name: str) -> None:
        """`name`'s process dies: it stops listening and all its connections end."""
        self._crashes[name] += 1
        self.stop_listening(name)
        for conn_id, pair in list(self._live.items()):
            for end in pair:
                if end.local != name:
                    continue
                out, back = end._out, end.peer._out
                assert out is not None and back is not None
                for pipe in (out, back):
                    _cancel(pipe)
                    for _, item in pipe.queue:
                        self._lose(pipe, item, "crash")
                    pipe.queue.clear()
                self._reset_end(end)
                # The peer's kernel learns it from the crashed host's kernel, over
                # the link (a cut one keeps it silent).
                if not end.peer.closed:
                    self._send(out, _RESET)
                self._forget_if_done(conn_id)
        self._fault("crash", name)

    def _pipes(self, src: str, dst: str) -> list[_Pipe]:
        pipes = []
        for pair in self._live.values():
            for end in pair:
                if end.local == src and end.remote == dst and end._out is not None:
                    pipes.append(end._out)
        return pipes


def _cancel(pipe: _Pipe) -> None:
    if pipe.timer is not None:
        pipe.timer.cancel()
        pipe.timer = None


def _directions(src: str, dst: str, both: bool) -> list[tuple[str, str]]:
    return [(src, dst), (dst, src)] if both else [(src, dst)]
