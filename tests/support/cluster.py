"""Run replog's real console scripts as processes on free loopback addresses."""

from __future__ import annotations

import itertools
import shutil
import ssl
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any

from tools.harness import http
from tools.harness.net import first_bindable, free_port, process_octet
from tools.harness.process import BIN, NodeProcess
from tools.harness.waiting import wait_until

__all__ = ["BIN", "FAST_DETECTION", "Cluster", "Node", "TlsFiles", "free_port", "next_host"]

# Master flags that detect a silent secondary within a second.
FAST_DETECTION = ["--heartbeat-interval", "0.1", "--suspect-after", "0.3", "--unhealthy-after", "1"]
# Each test cluster gets its own 127.0.x.y address so clusters never collide.
_hosts = itertools.cycle(range(10, 250))


def next_host() -> str:
    prefix = f"127.0.{process_octet(1, 200)}"
    return first_bindable((f"{prefix}.{next(_hosts)}" for _ in itertools.count()), tries=240)


def messages(url: str, **kwargs: Any) -> list[dict]:
    """The messages a node shows at `url` (which must answer 200)."""
    resp = http.get(url, **kwargs)
    assert resp.status == 200, resp
    return resp.body["messages"]


@dataclass
class Node(NodeProcess):
    """A node process with the test's environment added to the inherited one."""

    _: KW_ONLY
    # Verifies the node's certificate when its url is https.
    ssl_context: ssl.SSLContext | None = None

    def messages(self) -> list[dict]:
        return messages(self.url + "/", context=self.ssl_context)

    def health(self) -> dict:
        return http.get(self.url + "/health", context=self.ssl_context).body


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for the cluster's address: every node serves HTTPS and verifies with `ca`."""

    cert: Path
    key: Path
    ca: Path

    def args(self, ca: bool = True) -> list[str]:
        out = ["--tls-cert", str(self.cert), "--tls-key", str(self.key)]
        return [*out, "--tls-ca", str(self.ca)] if ca else out

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


class Cluster:
    """A master and secondaries started as separate processes.

    `token`: every node gets it as $REPLOG_CLUSTER_TOKEN. `tls`: every node serves
    HTTPS with these files and verifies its peers against their CA.
    """

    def __init__(
        self, tmp_path: Path, secondaries: int | None = None, in_memory: bool = False
    ) -> None:
        self.tmp_path = tmp_path
        self.host = next_host()
        self.expected = secondaries
        self.in_memory = in_memory
        self.master: Node | None = None
        self.secondaries: dict[str, Node] = {}
        self.token: str | None = None
        self.tls: TlsFiles | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.context() if self.tls else None

    def node_env(self, token: str | None) -> dict[str, str]:
        return {"REPLOG_CLUSTER_TOKEN": token} if token else {}

    @property
    def master_url(self) -> str:
        assert self.master is not None
        return self.master.url

    def data_dir(self, name: str) -> Path:
        return self.tmp_path / "data" / name

    def storage_args(self, name: str) -> list[str]:
        if self.in_memory:
            return ["--in-memory"]
        return ["--data-dir", str(self.data_dir(name))]

    def wipe(self, name: str) -> None:
        """Lose a node's disk (the node must be down)."""
        shutil.rmtree(self.data_dir(name), ignore_errors=True)

    def start_master(
        self, *extra: str, port: int | None = None, tls_args: list[str] | None = None
    ) -> Node:
        """`tls_args`: None the cluster's."""
        port = port or free_port(self.host)
        argv = [str(BIN / "replog-master"), "--host", self.host, "--port", str(port)]
        argv += self.storage_args("master")
        if self.expected is not None:
            argv += ["--secondaries", str(self.expected)]
        if tls_args is None and self.tls:
            tls_args = self.tls.args()
        argv += tls_args or []
        scheme = "https" if "--tls-cert" in argv else "http"
        self.master = Node(
            "master",
            [*argv, *extra],
            f"{scheme}://{self.host}:{port}",
            self.tmp_path / "master.log",
            env=self.node_env(self.token),
            ssl_context=self.ssl_context,
        ).start()
        wait_until(
            lambda: self.master.health()["role"] == "master", what="master up", watch=[self.master]
        )
        return self.master

    def add_secondary(
        self,
        name: str,
        delay: float = 0.0,
        port: int | None = None,
        wait: bool = True,
        token: str | None = "",
        tls_args: list[str] | None = None,
        extra: list[str] | None = None,
    ) -> Node:
        """`token`: "" the cluster's, None none; `tls_args`: None the cluster's;
        `extra`: more flags."""
        port = port or free_port(self.host)
        argv = [
            str(BIN / "replog-secondary"),
            "--host",
            self.host,
            "--port",
            str(port),
            "--master",
            self.master_url,
            "--id",
            name,
            "--delay",
            str(delay),
            *self.storage_args(name),
            *(extra or []),
        ]
        if tls_args is None and self.tls:
            tls_args = self.tls.args()
        argv += tls_args or []
        scheme = "https" if "--tls-cert" in argv else "http"
        node = Node(
            name,
            argv,
            f"{scheme}://{self.host}:{port}",
            self.tmp_path / f"{name}.log",
            env=self.node_env(self.token if token == "" else token),
            ssl_context=self.ssl_context,
        ).start()
        self.secondaries[name] = node
        if wait:
            self.wait_connected(name)
        return node

    def restart_secondary(self, name: str) -> Node:
        node = self.secondaries[name]
        node.kill()
        node.start()
        self.wait_connected(name)
        return node

    def wait_connected(self, name: str, timeout: float = 15.0) -> None:
        def connected() -> bool:
            for s in self.master.health()["secondaries"]:
                if s["id"] == name and s["status"] == "healthy":
                    return self.secondaries[name].health()["stream"]
            return False

        wait_until(connected, timeout, what=f"{name} connected to the master")

    def nodes(self) -> Iterator[Node]:
        if self.master:
            yield self.master
        yield from self.secondaries.values()

    def write(
        self,
        message: str,
        w: int | str | None = None,
        id: object = None,
        wtimeout: int | None = None,
        **kw,
    ) -> http.Response:
        body: dict = {"message": message}
        if w is not None:
            body["w"] = w
        if id is not None:
            body["id"] = id
        if wtimeout is not None:
            body["wtimeout"] = wtimeout
        kw.setdefault("context", self.ssl_context)
        return http.post(self.master_url + "/", body, **kw)

    def stop(self) -> None:
        for node in self.nodes():
            node.stop()
