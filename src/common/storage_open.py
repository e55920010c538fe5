"""Opening a node's storage at start-up: clear errors, replay warnings, fatal sync failures."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import structlog

from replog.common.config import StorageConfig
from replog.storage.node_store import NodeStore, StoreError, open_store
from replog.storage.segments import CorruptLog

log = structlog.get_logger("replog.storage")

# Exit status of a node that refuses to start on its data directory.
EXIT_STORAGE = 2
# Exit status after a failed write or fsync of the log (the kernel may have dropped
# what it held, or the disk is full): the node stops and replays its disk at restart.
EXIT_SYNC_FAILED = 70


def open_node_store(prog: str, config: StorageConfig, node: str, role: str) -> NodeStore:
    """The node's store, replayed; exits with a message naming the file when it cannot be used."""
    try:
        store = open_store(
            data_dir=config.data_dir,
            node=node,
            role=role,
            fsync=config.fsync,
            segment_bytes=config.segment_bytes,
            repair=config.repair,
        )
    except CorruptLog as exc:
        log.error("log_corrupt", file=str(exc.path), offset=exc.offset, reason=exc.reason)
        refuse(
            prog,
            f"{exc}. The disk is damaged; start with --repair to truncate the log at "
            "this record (the rest is then refilled from the other nodes)",
        )
    except (StoreError, OSError) as exc:
        log.error("storage_error", error=str(exc))
        refuse(prog, str(exc))
    cuts = (("log_tail_truncated", store.replay.torn), ("log_repaired", store.replay.repaired))
    for event, cut in cuts:
        if cut is not None:
            log.warning(
                event,
                file=str(cut.path),
                offset=cut.offset,
                dropped_bytes=cut.dropped_bytes,
                removed_segments=list(cut.removed),
                reason=cut.reason,
            )
    log.info(
        "storage_opened",
        storage=store.kind,
        data_dir=None if store.data_dir is None else str(store.data_dir),
        fsync=config.fsync if store.kind == "disk" else None,
        last_seq=len(store.replay.records),
        incarnation=store.identity.incarnation,
        new=store.fresh,
    )
    store.on_failure = _sync_failed
    return store


def refuse(prog: str, message: str) -> NoReturn:
    """Exit 2 with `prog: message` on stderr: this data directory must not be used."""
    structlog.get_logger("replog").info("exiting", status=EXIT_STORAGE)
    sys.stdout.flush()
    print(f"{prog}: {message}", file=sys.stderr)
    sys.exit(EXIT_STORAGE)


def _sync_failed(exc: BaseException) -> None:
    # Like PostgreSQL after fsyncgate: never retry a failed fsync, never answer
    # as if it worked. The log on disk is replayed at the next start.
    log.critical("storage_write_failed", error=repr(exc))
    for handler in (sys.stdout, sys.stderr):
        handler.flush()
    os._exit(EXIT_SYNC_FAILED)
