"""The secondary's one config object, from flags and environment variables."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from replog.common import wire
from replog.common.config import (
    EnvArgumentParser,
    HttpTimeouts,
    StorageConfig,
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
from replog.common.urls import node_url


@dataclass(frozen=True)
class SecondaryConfig:
    host: str
    port: int
    master_url: str
    secondary_id: str
    delay: float = 0.0
    advertise_url: str = ""
    log_format: str = "json"
    retry_initial: float = 0.05
    retry_max: float = 1.0
    master_timeout: float = 3.0
    # The largest entry the master may send: its --max-body-bytes.
    max_entry_bytes: int = wire.DEFAULT_MAX_ENTRY_BYTES
    storage: StorageConfig = field(default_factory=StorageConfig)
    # The shared secret internal requests carry (None: internal endpoints are open).
    cluster_token: str | None = field(default=None, repr=False)
    tls: TlsConfig = field(default_factory=TlsConfig)
    timeouts: HttpTimeouts = field(default_factory=HttpTimeouts)

    @property
    def max_frame_bytes(self) -> int:
        """The largest replication frame this secondary accepts (see common.wire)."""
        return wire.frame_limit(self.max_entry_bytes)

    @property
    def url(self) -> str:
        """The URL the master uses to reach this secondary (https when it serves TLS)."""
        if self.advertise_url:
            return self.advertise_url.rstrip("/")
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.tls.enabled else "http"
        return f"{scheme}://{host}:{self.port}"


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(
        prog="replog-secondary",
        description="Run a replog secondary: registers with the master (retrying until it "
        "answers), receives the log over a replication stream and serves GET /.",
    )
    parser.add_env_argument(
        "--host", env=["REPLOG_HOST"], default="127.0.0.1", help="address to listen on"
    )
    parser.add_env_argument(
        "--port", env=["REPLOG_PORT"], default=5001, type=port, help="port to listen on"
    )
    parser.add_env_argument(
        "--master",
        env=["MASTER_URL"],
        default=None,
        type=node_url,
        help="the master's URL, e.g. http://127.0.0.2:5000 (required)",
    )
    parser.add_env_argument(
        "--id",
        env=["SECONDARY_ID"],
        default=None,
        help="this secondary's name, unique in the cluster (required)",
    )
    parser.add_env_argument(
        "--delay",
        env=["SECONDARY_DELAY", "SECONDARY_DELAYS"],
        default=0.0,
        type=non_negative_float,
        help="artificial delay: hold each replication batch this many seconds before "
        "applying and acknowledging it",
    )
    parser.add_env_argument(
        "--advertise",
        env=["SECONDARY_ADVERTISE_URL"],
        default=None,
        type=node_url,
        help="URL the master should use to reach this node [default: http://HOST:PORT, "
        "https://HOST:PORT with --tls-cert]",
    )
    parser.add_env_argument(
        "--retry-initial",
        env=["REPLOG_RETRY_INITIAL"],
        default=0.05,
        type=positive_float,
        help="first registration retry delay, in seconds (doubles each failure)",
    )
    parser.add_env_argument(
        "--retry-max",
        env=["REPLOG_RETRY_MAX"],
        default=1.0,
        type=positive_float,
        help="cap on the registration retry delay, in seconds",
    )
    parser.add_env_argument(
        "--master-timeout",
        env=["REPLOG_MASTER_TIMEOUT"],
        default=3.0,
        type=positive_float,
        help="drop the replication stream and register again after this many seconds "
        "without a message (batch or heartbeat) from the master",
    )
    parser.add_env_argument(
        "--max-entry-bytes",
        env=["REPLOG_MAX_ENTRY_BYTES"],
        default=wire.DEFAULT_MAX_ENTRY_BYTES,
        type=non_negative_int,
        help="largest entry the master may send: set it to the master's --max-body-bytes "
        f"(at most {wire.MAX_ENTRY_BYTES_LIMIT}); a replication frame over "
        "max(1 MiB, this) + 1 KiB drops the stream",
    )
    add_http_timeout_arguments(parser)
    add_storage_arguments(parser)
    add_security_arguments(parser)
    parser.add_log_format()
    return parser


def parse_config(argv: Sequence[str] | None = None) -> SecondaryConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.master:
        parser.error("--master (or $MASTER_URL) is required")
    if not args.id:
        parser.error("--id (or $SECONDARY_ID) is required")
    if args.id == "master":
        parser.error('--id must not be "master" (that name is the master\'s)')
    if not wire.valid_id(args.id):
        parser.error(f"--id must be 1 to {wire.MAX_ID_CHARS} characters, none a control one")
    if args.tls_ca and args.master.startswith("http://"):
        # --tls-ca says this cluster uses TLS: never send the token or the log in clear.
        parser.error("--tls-ca is set, so --master must be an https:// URL")
    if args.max_entry_bytes > wire.MAX_ENTRY_BYTES_LIMIT:
        parser.error(f"--max-entry-bytes is at most {wire.MAX_ENTRY_BYTES_LIMIT} (64 MiB)")
    return SecondaryConfig(
        host=args.host,
        port=args.port,
        master_url=args.master,
        secondary_id=args.id,
        delay=args.delay,
        advertise_url=args.advertise or "",
        log_format=args.log_format,
        retry_initial=args.retry_initial,
        retry_max=args.retry_max,
        master_timeout=args.master_timeout,
        max_entry_bytes=args.max_entry_bytes,
        storage=storage_config(args, args.id),
        cluster_token=cluster_token(parser, args),
        tls=tls_config(parser, args),
        timeouts=http_timeouts(args),
    )
