"""A network of Linux network namespaces: one per node, joined by veth pairs.

Topology (for nodes master, s1, s2):

    root namespace (clients)
      |-- client link --> master ns      master ns --- replication link --- s1 ns
      |-- client link --> s1 ns          master ns --- replication link --- s2 ns
      `-- client link --> s2 ns

Every link is its own point-to-point veth pair with a /30 from
10.250.<subnet>.0/24, so a node is reachable only over the links it has: the
master reaches s1 only on their replication link, clients (in the root
namespace) reach every node only on its client link, and nothing is routed.
Only our own namespaces and veths are ever touched.

Cutting a link drops every packet arriving at either end (an nftables
`netdev` ingress chain bound to that veth, policy drop): a silent partition,
no RST and no ICMP, so peers find out only by their own timeouts. Healing
deletes those chains. Where nftables is unusable, cutting falls back to
setting both ends down (established connections still see silence, but new
connections fail at once with "network unreachable").

Names carry the creating process's pid (`rlc<pid hex><n>`), so leftovers of a
crashed run are recognised and removed by `cleanup_stale()`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

PREFIX = "rlc"
# rlc + 6 hex digits of pid + 1 hex digit of a per-process counter.
_TAG_RE = re.compile(rf"^{PREFIX}([0-9a-f]{{6}})([0-9a-f])")
_counter = itertools.count()
ROOT = "root"  # the pseudo-node for the root namespace, where clients run


class NetnsError(RuntimeError):
    pass


def run(*argv: str, input: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(name: str) -> bool:
    match = _TAG_RE.match(name)
    if not match:
        return False
    pid = int(match.group(1), 16)
    return pid != os.getpid() and not pid_alive(pid)


def list_namespaces() -> list[str]:
    out = run("ip", "netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def kill_namespace_processes(ns: str) -> None:
    out = run("ip", "netns", "pids", ns, check=False)
    for pid in out.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGCONT)
            os.kill(int(pid), signal.SIGKILL)


def cleanup_stale() -> list[str]:
    """Remove namespaces, root-side veths and nft tables left by dead runs."""
    removed = []
    for ns in list_namespaces():
        if _stale(ns):
            kill_namespace_processes(ns)
            run("ip", "netns", "del", ns, check=False)
            removed.append(ns)
    for line in run("ip", "-o", "link", "show", check=False).splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            dev = parts[1].strip().split("@")[0]
            if _stale(dev):
                run("ip", "link", "del", dev, check=False)
                removed.append(dev)
    if shutil.which("nft"):
        for line in run("nft", "list", "tables", "netdev", check=False).splitlines():
            words = line.split()
            if len(words) == 3 and _stale(words[2]):
                run("nft", "delete", "table", "netdev", words[2], check=False)
                removed.append(words[2])
    return removed


def availability() -> tuple[bool, str]:
    """Whether this process can build namespace topologies, and why not."""
    if os.geteuid() != 0:
        return False, f"network namespaces need root (running as uid {os.geteuid()})"
    if not shutil.which("ip"):
        return False, "the `ip` command (iproute2) is not installed"
    probe = f"{PREFIX}{os.getpid():06x}fprobe"
    try:
        run("ip", "netns", "add", probe)
        try:
            run("ip", "-n", probe, "link", "set", "lo", "up")
            run(
                "ip",
                "-n",
                probe,
                "link",
                "add",
                "rlcprobe0",
                "type",
                "veth",
                "peer",
                "name",
                "rlcprobe1",
            )
        finally:
            run("ip", "netns", "del", probe, check=False)
    except (NetnsError, OSError, subprocess.TimeoutExpired) as exc:
        return False, f"cannot create network namespaces and veth pairs: {exc}"
    return True, "ok"


@dataclass
class Link:
    index: int
    a: str  # node name (or ROOT)
    b: str
    dev_a: str
    dev_b: str
    addr_a: str
    addr_b: str
    cuts: int = 0  # reference count: a link cut by two faults heals when both heal


@dataclass
class Topology:
    """Namespaces for `nodes` (first one is the master), client and replication links."""

    nodes: list[str]
    cut_method: str = "auto"  # "nft", "link" or "auto" (nft if usable)
    tag: str = field(init=False)
    subnet: int = field(init=False, default=0)
    links: list[Link] = field(init=False, default_factory=list)
    created: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.tag = f"{PREFIX}{os.getpid():06x}{next(_counter) % 16:x}"

    @property
    def master(self) -> str:
        return self.nodes[0]

    def ns(self, node: str) -> str | None:
        return None if node == ROOT else f"{self.tag}{node}"

    def exec_prefix(self, node: str) -> list[str]:
        """Prefix an argv with this to run it inside the node's namespace."""
        return ["ip", "netns", "exec", self.ns(node)]

    # -- addresses --------------------------------------------------------

    def link(self, a: str, b: str) -> Link:
        for link in self.links:
            if {link.a, link.b} == {a, b}:
                return link
        raise KeyError(f"no link between {a} and {b}")

    def addr(self, node: str, peer: str) -> str:
        """`node`'s address on its link to `peer`."""
        link = self.link(node, peer)
        return link.addr_a if link.a == node else link.addr_b

    def client_addr(self, node: str) -> str:
        """Where clients in the root namespace reach `node`."""
        return self.addr(node, ROOT)

    def links_of(self, node: str) -> list[Link]:
        return [link for link in self.links if node in (link.a, link.b)]

    # -- build and tear down ----------------------------------------------

    def _pick_subnet(self) -> int:
        used = set(re.findall(r"inet 10\.250\.(\d+)\.", run("ip", "-o", "-4", "addr", check=False)))
        start = os.getpid() % 250
        for k in range(250):
            candidate = (start + k) % 250 + 1
            if str(candidate) not in used:
                return candidate
        raise NetnsError("no free 10.250.x.0/24 subnet for the client links")

    def create(self) -> Topology:
        self.subnet = self._pick_subnet()
        pairs = [(ROOT, n) for n in self.nodes] + [(self.master, n) for n in self.nodes[1:]]
        if len(pairs) > 16:
            raise NetnsError("at most 15 secondaries")
        self.created = True  # from here on, destroy() has something to do
        for node in self.nodes:
            ns = self.ns(node)
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        for index, (a, b) in enumerate(pairs):
            base = index * 4
            link = Link(
                index,
                a,
                b,
                dev_a=f"{self.tag}{index:x}a",
                dev_b=f"{self.tag}{index:x}b",
                addr_a=f"10.250.{self.subnet}.{base + 1}",
                addr_b=f"10.250.{self.subnet}.{base + 2}",
            )
            self.links.append(link)
            side_a = [] if a == ROOT else ["netns", self.ns(a)]
            run(
                "ip",
                "link",
                "add",
                link.dev_a,
                *side_a,
                "type",
                "veth",
                "peer",
                "name",
                link.dev_b,
                "netns",
                self.ns(b),
            )
            for node, dev, address in ((a, link.dev_a, link.addr_a), (b, link.dev_b, link.addr_b)):
                self._ip(node, "addr", "add", f"{address}/30", "dev", dev)
                self._ip(node, "link", "set", dev, "up")
        if self.cut_method == "auto":
            self.cut_method = "nft" if self._nft_usable() else "link"
        return self

    def destroy(self) -> None:
        """Kill whatever still runs in our namespaces, then delete them (and their veths)."""
        if not self.created:
            return
        for link in self.links:
            if link.cuts and self.cut_method == "nft":
                for node, _dev in ((link.a, link.dev_a), (link.b, link.dev_b)):
                    self._nft(node, f"delete table netdev {self._table(link)}", check=False)
        for node in self.nodes:
            ns = self.ns(node)
            kill_namespace_processes(ns)
            run("ip", "netns", "del", ns, check=False)
        for link in self.links:
            if link.a == ROOT:  # normally gone with its peer; make sure
                run("ip", "link", "del", link.dev_a, check=False)
        self.created = False

    # -- faults -----------------------------------------------------------

    def cut(self, a: str, b: str) -> None:
        link = self.link(a, b)
        link.cuts += 1
        if link.cuts == 1:
            self._set_cut(link, True)

    def heal(self, a: str, b: str) -> None:
        link = self.link(a, b)
        if link.cuts == 0:
            return
        link.cuts -= 1
        if link.cuts == 0:
            self._set_cut(link, False)

    def heal_all(self) -> None:
        for link in self.links:
            if link.cuts:
                link.cuts = 0
                self._set_cut(link, False)

    def is_cut(self, a: str, b: str) -> bool:
        return self.link(a, b).cuts > 0

    def _table(self, link: Link) -> str:
        return f"{self.tag}cut{link.index}"

    def _set_cut(self, link: Link, cut: bool) -> None:
        for node, dev in ((link.a, link.dev_a), (link.b, link.dev_b)):
            if self.cut_method == "nft":
                table = self._table(link)
                if cut:
                    self._nft(node, _ingress_table(table, dev, "drop"))
                else:
                    self._nft(node, f"delete table netdev {table}")
            else:
                self._ip(node, "link", "set", dev, "down" if cut else "up")

    # -- helpers ----------------------------------------------------------

    def _ip(self, node: str, *args: str) -> None:
        ns = self.ns(node)
        run("ip", *(["-n", ns] if ns else []), *args)

    def _nft(self, node: str, script: str, check: bool = True) -> None:
        ns = self.ns(node)
        argv = [*(["ip", "netns", "exec", ns] if ns else []), "nft", "-f", "-"]
        run(*argv, input=script, check=check)

    def _nft_usable(self) -> bool:
        """Try an accepting ingress chain on both ends of a client link (root + a node)."""
        if not shutil.which("nft"):
            return False
        link = self.links[0]
        table = f"{self.tag}probe"
        try:
            for node, dev in ((link.a, link.dev_a), (link.b, link.dev_b)):
                self._nft(node, _ingress_table(table, dev, "accept"))
                self._nft(node, f"delete table netdev {table}")
        except (NetnsError, OSError):
            return False
        return True


def _ingress_table(table: str, dev: str, policy: str) -> str:
    """An nftables table with one ingress chain on `dev` whose policy is `policy`."""
    return (
        f"table netdev {table} {{\n"
        f'  chain ingress_{policy} {{ type filter hook ingress device "{dev}" priority 0; '
        f"policy {policy}; }}\n"
        "}\n"
    )
