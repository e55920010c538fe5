"""The master's one config object, from flags and environment variables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from replog.common import wire
from replog.common.config import (
    EnvArgumentParser,
    HttpTimeouts,
    StorageConfig,
    add_env_flag,
    add_http_timeout_arguments,
    add_security_arguments,
    add_storage_arguments,
    cluster_token,
    http_timeouts,
    non_negative_float,
    non_negative_int,
    port,
    positive_float,
    storage_config,
    tls_config,
)
from replog.common.security import TlsConfig

DEFAULT_MAX_BODY_BYTES = wire.DEFAULT_MAX_ENTRY_BYTES
# An entry travels in one replication frame, which secondaries bound (common.wire).
MAX_BODY_BYTES_LIMIT = wire.MAX_ENTRY_BYTES_LIMIT


@dataclass(frozen=True)
class MasterConfig:
    host: str = "127.0.0.1"
    port: int = 5000
    secondaries: int = 0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_format: str = "json"
    retry_initial: float = 0.05
    retry_max: float = 1.0
    heartbeat_interval: float = 0.2
    suspect_after: float = 0.6
    unhealthy_after: float = 2.0
    wtimeout_ms: int = 0
    recovery_grace: float = 5.0
    storage: StorageConfig = field(default_factory=StorageConfig)
    # The shared secret internal requests carry (None: internal endpoints are open).
    cluster_token: str | None = field(default=None, repr=False)
    tls: TlsConfig = field(default_factory=TlsConfig)
    recover: bool = False
    timeouts: HttpTimeouts = field(default_factory=HttpTimeouts)

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
    parser.add_env_argument(
        "--host", env=["REPLOG_HOST"], default="127.0.0.1", help="address to listen on"
    )
    parser.add_env_argument(
        "--port", env=["REPLOG_PORT"], default=5000, type=port, help="port to listen on"
    )
    parser.add_env_argument(
        "--secondaries",
        env=["REPLOG_SECONDARIES"],
        default=0,
        type=non_negative_int,
        help="how many secondaries the cluster is meant to have; the cluster size N is "
        "1 + max(this, secondaries registered so far)",
    )
    parser.add_env_argument(
        "--max-body-bytes",
        env=["REPLOG_MAX_BODY_BYTES"],
        default=DEFAULT_MAX_BODY_BYTES,
        type=non_negative_int,
        help="largest POST body accepted; larger ones get 413",
    )
    add_http_timeout_arguments(parser)
    parser.add_env_argument(
        "--retry-initial",
        env=["REPLOG_RETRY_INITIAL"],
        default=0.05,
        type=positive_float,
        help="first reconnect delay to a secondary, in seconds (doubles each failure)",
    )
    parser.add_env_argument(
        "--retry-max",
        env=["REPLOG_RETRY_MAX"],
        default=1.0,
        type=positive_float,
        help="cap on the reconnect delay, in seconds (jittered between half and all of it)",
    )
    parser.add_env_argument(
        "--heartbeat-interval",
        env=["REPLOG_HEARTBEAT_INTERVAL"],
        default=0.2,
        type=positive_float,
        help="seconds between heartbeats to each secondary",
    )
    parser.add_env_argument(
        "--suspect-after",
        env=["REPLOG_SUSPECT_AFTER"],
        default=0.6,
        type=positive_float,
        help="a secondary silent this many seconds is 'suspected' (still counts for quorum)",
    )
    parser.add_env_argument(
        "--unhealthy-after",
        env=["REPLOG_UNHEALTHY_AFTER"],
        default=2.0,
        type=positive_float,
        help="a secondary silent this many seconds is 'unhealthy' (does not count for "
        "quorum; its stream is dropped and reopened)",
    )
    parser.add_env_argument(
        "--wtimeout",
        env=["REPLOG_WTIMEOUT"],
        default=0,
        type=non_negative_int,
        help="default write-concern timeout in milliseconds for requests without "
        "'wtimeout'; 0: wait without limit",
    )
    parser.add_env_argument(
        "--recovery-grace",
        env=["REPLOG_RECOVERY_GRACE"],
        default=5.0,
        type=non_negative_float,
        help="in-memory master only: after a restart, once a majority has reported its "
        "log, how long to wait for the other secondaries before adopting the best log",
    )
    add_storage_arguments(parser, "master")
    add_env_flag(
        parser,
        "--recover",
        env="REPLOG_RECOVER",
        help="rebuild a master whose disk was lost: take no writes until every expected "
        "secondary (--secondaries) has reported with data, then adopt the most "
        "up-to-date log and the cluster's identity",
    )
    add_security_arguments(parser)
    parser.add_log_format()
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
    )
