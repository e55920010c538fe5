"""`replog-master`: run the master."""

# ruff: noqa: E402  (signals are caught before the slow imports below)
from __future__ import annotations

from replog.common.signals import STOP_SIGNALS

# First thing: from here on SIGINT/SIGTERM stop the process cleanly (common.signals).
STOP_SIGNALS.install()

import sys
from collections.abc import Sequence

import structlog

from replog.common import loop
from replog.common.logs import configure_logging
from replog.common.process import ListenError, listen, serve_until_signalled, starting
from replog.common.security import log_auth_mode
from replog.common.storage_open import open_node_store, refuse
from replog.master.app import make_server
from replog.master.config import MasterConfig, parse_config
from replog.master.node import MasterNode
from replog.storage.node_store import NodeStore, StoreError

PROG = "replog-master"


def make_node(config: MasterConfig, store: NodeStore) -> MasterNode:
    """The node on its store, or exit 2 saying why the data directory cannot serve."""
    try:
        node = MasterNode(config, store)
    except StoreError as exc:
        store.close()
        refuse(PROG, str(exc))
    recovery = node.recovery
    if config.recover and recovery is not None and recovery.expected == 0:
        store.close()
        refuse(
            PROG,
            "recovering the log needs the secondaries: pass --secondaries K (how many "
            "secondaries hold the cluster's data)",
        )
    return node


async def run(config: MasterConfig, node: MasterNode) -> None:
    store = node.store
    server = make_server(node)

    async def start() -> None:
        listen(server, config.port, config.host)
        node.start()
        logger = structlog.get_logger("replog.master")
        log_auth_mode(logger, config.cluster_token, config.tls)
        logger.info(
            "listening",
            host=config.host,
            port=config.port,
            tls=config.tls.enabled,
            auth=config.cluster_token is not None,
            expected_secondaries=config.secondaries,
            max_body_bytes=config.max_body_bytes,
        )

    async def stop() -> None:
        server.stop()  # no new connections
        # Open client connections go (a waiting write's client gets no answer: its
        # outcome is unknown, as after any lost connection; a retry with its id is safe).
        await server.close_all_connections()
        await node.stop()
        store.close()

    await serve_until_signalled(start, stop)


def main(argv: Sequence[str] | None = None) -> None:
    STOP_SIGNALS.install()  # (already, unless main() is called from elsewhere)
    config = parse_config(argv)
    # Buffered: several events per write, written once per event-loop iteration.
    configure_logging(config.log_format, node="master", buffered=True)
    with starting():
        store = open_node_store(PROG, config.storage, "master", role="master")
        node = make_node(config, store)
    try:
        loop.run(run(config, node))
    except ListenError as exc:
        print(f"replog-master: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
