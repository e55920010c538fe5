"""The master's settings, declared once, and its one config object built from them.

`python -m replog.master.config --markdown` prints the README's table of them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replog.common import wire
from replog.common.config import (
    DATA_ROOT,
    HOST,
    LOG_FORMAT,
    READ_SETTINGS,
    SECURITY_SETTINGS,
    TIMEOUT_SETTINGS,
    EnvArgumentParser,
    HttpTimeouts,
    ReadConfig,
    Setting,
    StorageConfig,
    cluster_token,
    http_timeouts,
    markdown_table,
    non_negative_float,
    non_negative_int,
    port,
    positive_float,
    read_config,
    storage_config,
    storage_settings,
    tls_config,
)
from replog.common.security import TlsConfig
from replog.core import MASTER
from replog.core.health import HealthPolicy

# An entry travels in one replication frame, which secondaries bound (common.wire).
MAX_BODY_BYTES_LIMIT = wire.MAX_ENTRY_BYTES_LIMIT
# The failure detector's thresholds are the core's own defaults.
_HEALTH = HealthPolicy()

# -- every setting of the master, in the order of --help and the README ---------

PORT = Setting("--port", ("REPLOG_PORT",), 5000, "listen port", port)
SECONDARIES = Setting(
    "--secondaries",
    ("REPLOG_SECONDARIES",),
    0,
    "secondaries the cluster is meant to have; `N = 1 + max(K, registered)`",
    non_negative_int,
    metavar="K",
)
MAX_BODY_BYTES = Setting(
    "--max-body-bytes",
    ("REPLOG_MAX_BODY_BYTES",),
    wire.DEFAULT_MAX_ENTRY_BYTES,
    "largest `POST /` body; larger is `413` (at most 64 MiB; above 1 MiB, raise the "
    "secondaries' `--max-entry-bytes` with it)",
    non_negative_int,
)
RETRY_INITIAL = Setting(
    "--retry-initial",
    ("REPLOG_RETRY_INITIAL",),
    0.05,
    "first reconnect delay to a secondary (s), doubling per failure",
    positive_float,
)
RETRY_MAX = Setting(
    "--retry-max",
    ("REPLOG_RETRY_MAX",),
    1.0,
    "reconnect delay cap (s); each delay is jittered between half and all of it",
    positive_float,
)
HEARTBEAT_INTERVAL = Setting(
    "--heartbeat-interval",
    ("REPLOG_HEARTBEAT_INTERVAL",),
    0.2,
    "seconds between heartbeats to each secondary",
    positive_float,
)
SUSPECT_AFTER = Setting(
    "--suspect-after",
    ("REPLOG_SUSPECT_AFTER",),
    _HEALTH.suspect_after,
    "silence (s) after which a secondary is `suspected` (still counts for quorum)",
    positive_float,
)
UNHEALTHY_AFTER = Setting(
    "--unhealthy-after",
    ("REPLOG_UNHEALTHY_AFTER",),
    _HEALTH.unhealthy_after,
    "silence (s) after which a secondary is `unhealthy` (no longer counts for quorum; its "
    "stream is dropped and reopened)",
    positive_float,
)
WTIMEOUT = Setting(
    "--wtimeout",
    ("REPLOG_WTIMEOUT",),
    0,
    "default `wtimeout` in ms for requests without one; `0`: no limit",
    non_negative_int,
)
RECOVERY_GRACE = Setting(
    "--recovery-grace",
    ("REPLOG_RECOVERY_GRACE",),
    5.0,
    "in-memory master only: after a restart, how long to wait for the remaining "
    "secondaries once a majority reported",
    non_negative_float,
)
RECOVER = Setting(
    "--recover",
    ("REPLOG_RECOVER",),
    False,
    'rebuild a master whose disk was lost from its secondaries (see "Epochs and master '
    'restart"); needs `--secondaries`',
    switch=True,
)
SETTINGS: tuple[Setting[Any], ...] = (
    HOST,
    PORT,
    SECONDARIES,
    MAX_BODY_BYTES,
    *TIMEOUT_SETTINGS,
    *READ_SETTINGS,
    RETRY_INITIAL,
    RETRY_MAX,
    HEARTBEAT_INTERVAL,
    SUSPECT_AFTER,
    UNHEALTHY_AFTER,
    WTIMEOUT,
    RECOVERY_GRACE,
    *storage_settings(Path(DATA_ROOT) / MASTER),
    RECOVER,
    *SECURITY_SETTINGS,
    LOG_FORMAT,
)


@dataclass(frozen=True)
class MasterConfig:
    host: str = HOST.default
    port: int = PORT.default
    secondaries: int = SECONDARIES.default
    max_body_bytes: int = MAX_BODY_BYTES.default
    log_format: str = LOG_FORMAT.default
    retry_initial: float = RETRY_INITIAL.default
    retry_max: float = RETRY_MAX.default
    heartbeat_interval: float = HEARTBEAT_INTERVAL.default
    suspect_after: float = SUSPECT_AFTER.default
    unhealthy_after: float = UNHEALTHY_AFTER.default
    wtimeout_ms: int = WTIMEOUT.default
    recovery_grace: float = RECOVERY_GRACE.default
    storage: StorageConfig = field(default_factory=StorageConfig)
    # The shared secret internal requests carry (None: internal endpoints are open).
    cluster_token: str | None = field(default=None, repr=False)
    tls: TlsConfig = field(default_factory=TlsConfig)
    recover: bool = RECOVER.default
    timeouts: HttpTimeouts = field(default_factory=HttpTimeouts)
    reads: ReadConfig = field(default_factory=ReadConfig)

    @property
    def max_frame_bytes(self) -> int:
        """The largest replication frame this master sends (see common.wire)."""
        return wire.frame_limit(self.max_body_bytes)


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(
        prog="replog-master",
        description="Run the replog master: accepts writes on POST /, answers once "
        "w nodes hold them, and streams the log to every registered secondary.",
    )
    parser.add_settings(SETTINGS)
    return parser


def parse_config(argv: Sequence[str] | None = None) -> MasterConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_body_bytes > MAX_BODY_BYTES_LIMIT:
        parser.error(f"--max-body-bytes is at most {MAX_BODY_BYTES_LIMIT} (64 MiB)")
    if args.recover and args.in_memory:
        parser.error("--recover rebuilds a durable master; it makes no sense with --in-memory")
    if not args.heartbeat_interval < args.suspect_after < args.unhealthy_after:
        parser.error("need --heartbeat-interval < --suspect-after < --unhealthy-after")
    return MasterConfig(
        host=args.host,
        port=args.port,
        secondaries=args.secondaries,
        max_body_bytes=args.max_body_bytes,
        log_format=args.log_format,
        retry_initial=args.retry_initial,
        retry_max=args.retry_max,
        heartbeat_interval=args.heartbeat_interval,
        suspect_after=args.suspect_after,
        unhealthy_after=args.unhealthy_after,
        wtimeout_ms=args.wtimeout,
        recovery_grace=args.recovery_grace,
        storage=storage_config(args, "master"),
        recover=args.recover,
        cluster_token=cluster_token(parser, args),
        tls=tls_config(parser, args),
        timeouts=http_timeouts(args),
        reads=read_config(args),
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m replog.master.config --markdown")
    print(markdown_table(SETTINGS), end="")
