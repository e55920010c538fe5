"""`replog-secondary`: run a secondary."""

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
from replog.secondary.app import make_server
from replog.secondary.config import SecondaryConfig, parse_config
from replog.secondary.node import SecondaryNode
from replog.secondary.registrar import Registrar
from replog.storage.node_store import StoreError

PROG = "replog-secondary"


async def run(config: SecondaryConfig, node: SecondaryNode) -> None:
    store = node.store
    server = make_server(node)
    registrar = Registrar(node)

    async def start() -> None:
        listen(server, config.port, config.host)
        logger = structlog.get_logger("replog.secondary")
        log_auth_mode(logger, config.cluster_token, config.tls)
        logger.info(
            "listening",
            host=config.host,
            port=config.port,
            tls=config.tls.enabled,
            auth=config.cluster_token is not None,
            master=config.master_url,
            url=config.url,
            delay_s=config.delay,
        )
        registrar.start()

    async def stop() -> None:
        server.stop()  # no new connections
        await server.close_all_connections()
        await registrar.stop()
        node.stop()  # the replication stream goes, and any batch still held by --delay
        store.close()

    await serve_until_signalled(start, stop)


def main(argv: Sequence[str] | None = None) -> None:
    STOP_SIGNALS.install()  # (already, unless main() is called from elsewhere)
    config = parse_config(argv)
    configure_logging(config.log_format, node=config.secondary_id)
    with starting():
        store = open_node_store(PROG, config.storage, config.secondary_id, role="secondary")
        try:
            node = SecondaryNode(config, store)
        except StoreError as exc:
            store.close()
            refuse(PROG, str(exc))
    try:
        loop.run(run(config, node))
    except ListenError as exc:
        print(f"replog-secondary: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
