"""Concurrent writers and read samplers, recording everything they see.

Every record is a JSON object with a `type`:

- `write`: one POST attempt: `client`, `id`, `message`, `w` (as sent),
  `attempt`, `t0`/`t1` (seconds since the run started), then `status` and
  `body` for an HTTP answer, or `error` ("refused", "timeout", ...) for none.
- `sample`: one `GET /` of a node: `node`, `t`, `ok`, `count`, `ranges` (the
  seqs shown, as [first, last] runs; [[1, count]] when gap-free).
- `seen`: the first time a sampler saw a (seq -> id, message) on a node, or
  saw it change: `node`, `seq`, `id`, `message`, `t`. Samples plus these are
  every read's content without storing each read in full.
- `fault`: an injected or healed fault (written by the campaign).
- `meta`: what the checker needs to know about the run (written by the campaign).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tools.harness import http
from tools.properties import ranges  # the runs a sample records; shared with the checker

W_CHOICES: tuple[int | str, ...] = (1, 2, 3, "majority")


class Recorder:
    """Thread-safe record sink: kept in memory and appended to a JSONL file."""

    def __init__(self, path: Path | None = None) -> None:
        self.records: list[dict] = []
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8") if path else None
        self.started = time.monotonic()
        self.wall_started = time.time()  # t = 0 of every record, to match the nodes' logs

    def now(self) -> float:
        return round(time.monotonic() - self.started, 4)

    def add(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":")) if self._file else None
        with self._lock:
            self.records.append(record)
            if self._file:
                self._file.write(line + "\n")

    def of_type(self, kind: str) -> list[dict]:
        with self._lock:
            return [r for r in self.records if r["type"] == kind]

    def close(self) -> None:
        with self._lock:
            if self._file:
                self._file.close()
                self._file = None


class Writers:
    """`count` client threads writing to the master until stopped.

    Each write has a fresh unique id (strings for even clients, integers for
    odd ones: both kinds of key) and a w drawn from `w_choices`. A write with
    an unknown outcome (timeout, connection lost, 5xx) is retried once with
    the same id and message half of the time, which must never append twice.
    """

    def __init__(
        self,
        master_url: Callable[[], str],
        recorder: Recorder,
        *,
        count: int = 6,
        seed: int = 0,
        timeout: float = 5.0,
        wtimeout_ms: int | None = 3000,
        pace: float = 0.02,
        w_choices: tuple[int | str, ...] = W_CHOICES,
        max_writes: int | None = None,
    ) -> None:
        self.master_url = master_url
        self.recorder = recorder
        self.count = count
        self.seed = seed
        self.timeout = timeout
        self.wtimeout_ms = wtimeout_ms
        self.pace = pace
        self.w_choices = w_choices
        self.max_writes = max_writes
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._issued = 0
        self._lock = threading.Lock()

    def start(self) -> Writers:
        for client in range(self.count):
            thread = threading.Thread(
                target=self._run, args=(client,), name=f"writer-{client}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop issuing writes and wait for the ones in flight (bounded by the client timeout)."""
        self._stop.set()
        limit = timeout if timeout is not None else self.timeout * 2 + 5
        deadline = time.monotonic() + limit
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))

    def _take_slot(self) -> bool:
        with self._lock:
            if self.max_writes is not None and self._issued >= self.max_writes:
                return False
            self._issued += 1
            return True

    def _run(self, client: int) -> None:
        rng = random.Random(f"{self.seed}-{client}")
        n = 0
        while not self._stop.is_set() and self._take_slot():
            n += 1
            client_id: int | str = f"c{client}-{n}" if client % 2 == 0 else client * 10_000_000 + n
            message = f"msg c{client} n{n}"
            w = rng.choice(self.w_choices)
            record = self._post(client, client_id, message, w, attempt=1)
            if _unknown(record) and rng.random() < 0.5 and not self._stop.is_set():
                self._post(client, client_id, message, rng.choice(self.w_choices), attempt=2)
            self._stop.wait(rng.uniform(0, 2 * self.pace))

    def _post(self, client: int, client_id: object, message: str, w: object, attempt: int) -> dict:
        body: dict = {"message": message, "w": w, "id": client_id}
        if self.wtimeout_ms is not None:
            body["wtimeout"] = self.wtimeout_ms
        record: dict = {
            "type": "write",
            "client": client,
            "id": client_id,
            "message": message,
            "w": w,
            "attempt": attempt,
            "t0": self.recorder.now(),
        }
        try:
            resp = http.attempt("POST", self.master_url() + "/", body, timeout=self.timeout)
            record["status"] = resp.status
            record["body"] = answer_body(resp)
        except http.RequestFailed as exc:
            record["status"] = None
            record["error"] = exc.kind
            record["detail"] = exc.detail[:200]
        record["t1"] = self.recorder.now()
        self.recorder.add(record)
        if record.get("error") in ("refused", "connect_error") or record["status"] == 503:
            self._stop.wait(0.2)  # the master is down, cut off or read-only: do not spin
        return record


def answer_body(resp: http.Response) -> object:
    """The JSON answer, or the start of an answer that is not JSON (the checker shows it)."""
    if resp.body is None and resp.raw:
        return {"raw": resp.raw[:200].decode(errors="replace")}
    return resp.body


def _unknown(record: dict) -> bool:
    status = record.get("status")
    return status is None or status >= 500


class Samplers:
    """One thread per node reading `GET /` in a loop until stopped."""

    def __init__(
        self,
        urls: dict[str, Callable[[], str]],
        recorder: Recorder,
        *,
        interval: float = 0.1,
        timeout: float = 3.0,
    ) -> None:
        self.urls = urls
        self.recorder = recorder
        self.interval = interval
        self.timeout = timeout
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.counts: dict[str, int] = dict.fromkeys(urls, 0)

    def start(self) -> Samplers:
        for node in self.urls:
            thread = threading.Thread(
                target=self._run, args=(node,), name=f"sampler-{node}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def sample(self, node: str, known: dict[int, tuple]) -> dict:
        t = self.recorder.now()
        try:
            messages = http.get_json(self.urls[node]() + "/", timeout=self.timeout)["messages"]
        except http.RequestFailed as exc:
            record = {"type": "sample", "node": node, "t": t, "ok": False, "error": exc.kind}
            self.recorder.add(record)
            return record
        seqs = [m["seq"] for m in messages]
        for m in messages:
            value = (m["id"], m["message"])
            if known.get(m["seq"]) != value:
                known[m["seq"]] = value
                self.recorder.add(
                    {
                        "type": "seen",
                        "node": node,
                        "seq": m["seq"],
                        "id": m["id"],
                        "message": m["message"],
                        "t": t,
                    }
                )
        record = {
            "type": "sample",
            "node": node,
            "t": t,
            "ok": True,
            "count": len(messages),
            "ranges": ranges(seqs),
        }
        self.recorder.add(record)
        self.counts[node] += 1
        return record

    def _run(self, node: str) -> None:
        known: dict[int, tuple] = {}
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample(node, known)
            took = time.monotonic() - started
            # Never spend more than about a third of the time reading big logs.
            self._stop.wait(max(self.interval, 2 * took))
