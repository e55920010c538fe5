"""A secondary's settings, declared once, and its one config object built from them.

`python -m replog.secondary.config --markdown` prints the README's table of them.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from replog.common import wire
from replog.common.config import (
    CLUSTER_TOKEN,
    CLUSTER_TOKEN_FILE,
    DATA_DIR_BY_ID,
    HOST,
    LOG_FORMAT,
    READ_SETTINGS,
    TIMEOUT_SETTINGS,
    TLS_CA,
    TLS_CERT,
    TLS_KEY,
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
from replog.common.urls import node_url

# -- every setting of a secondary, in the order of --help and the README ----------

PORT = Setting("--port", ("REPLOG_PORT",), 5001, "listen port", port)
MASTER_URL: Setting[str | None] = Setting(
    "--master",
    ("MASTER_URL",),
    None,
    "the master, e.g. `http://127.0.0.2:5000`",
    node_url,
    metavar="URL",
    shown="required",
)
SECONDARY_ID: Setting[str | None] = Setting(
    "--id",
    ("SECONDARY_ID",),
    None,
    f"unique name (not `master`): 1 to {wire.MAX_ID_CHARS} characters, none a control character",
    metavar="NAME",
    shown="required",
)
DELAY = Setting(
    "--delay",
    ("SECONDARY_DELAY", "SECONDARY_DELAYS"),
    0.0,
    "hold each replication batch `S` seconds before applying and acknowledging it",
    non_negative_float,
    metavar="S",
)
ADVERTISE: Setting[str | None] = Setting(
    "--advertise",
    ("SECONDARY_ADVERTISE_URL",),
    None,
    "URL the master uses to reach this node (needed behind Docker or NAT)",
    node_url,
    metavar="URL",
    shown="`http://HOST:PORT` (`https://` with `--tls-cert`)",
)
RETRY_INITIAL = Setting(
    "--retry-initial",
    ("REPLOG_RETRY_INITIAL",),
    0.05,
    "first registration retry delay (s), doubling per failure",
    positive_float,
)
RETRY_MAX = Setting(
    "--retry-max",
    ("REPLOG_RETRY_MAX",),
    1.0,
    "registration retry delay cap (s)",
    positive_float,
)
MASTER_TIMEOUT = Setting(
    "--master-timeout",
    ("REPLOG_MASTER_TIMEOUT",),
    3.0,
    "drop the stream and register again after this many seconds without a message (batch "
    "or heartbeat) from the master",
    positive_float,
)
MAX_ENTRY_BYTES = Setting(
    "--max-entry-bytes",
    ("REPLOG_MAX_ENTRY_BYTES",),
    wire.DEFAULT_MAX_ENTRY_BYTES,
    "largest entry the master may send: set it to the master's `--max-body-bytes` (at most "
    "64 MiB); a replication frame over `max(1 MiB, this) + 1 KiB` drops the stream",
    non_negative_int,
)
SECONDARY_TLS_CERT = replace(
    TLS_CERT,
    help=f"{TLS_CERT.help}; the default `--advertise` becomes `https://HOST:PORT`",
)
SECONDARY_TLS_CA = replace(
    TLS_CA,
    help="verify the master's certificate when registering over https against this PEM CA "
    "bundle (never unverified); `--master` must then be `https://`",
)
SETTINGS: tuple[Setting[Any], ...] = (
    HOST,
    PORT,
    MASTER_URL,
    SECONDARY_ID,
    DELAY,
    ADVERTISE,
    RETRY_INITIAL,
    RETRY_MAX,
    MASTER_TIMEOUT,
    *TIMEOUT_SETTINGS,
    *READ_SETTINGS,
    MAX_ENTRY_BYTES,
    *storage_settings(DATA_DIR_BY_ID),
    CLUSTER_TOKEN,
    CLUSTER_TOKEN_FILE,
    SECONDARY_TLS_CERT,
    TLS_KEY,
    SECONDARY_TLS_CA,
    LOG_FORMAT,
)


@dataclass(frozen=True)
class SecondaryConfig:
    host: str
    port: int
    master_url: str
    secondary_id: str
    delay: float = DELAY.default
    advertise_url: str = ""
    log_format: str = LOG_FORMAT.default
    retry_initial: float = RETRY_INITIAL.default
    retry_max: float = RETRY_MAX.default
    master_timeout: float = MASTER_TIMEOUT.default
    # The largest entry the master may send: its --max-body-bytes.
    max_entry_bytes: int = MAX_ENTRY_BYTES.default
    storage: StorageConfig = field(default_factory=StorageConfig)
    # The shared secret internal requests carry (None: internal endpoints are open).
    cluster_token: str | None = field(default=None, repr=False)
    tls: TlsConfig = field(default_factory=TlsConfig)
    timeouts: HttpTimeouts = field(default_factory=HttpTimeouts)
    reads: ReadConfig = field(default_factory=ReadConfig)

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
    parser.add_settings(SETTINGS)
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
        reads=read_config(args),
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m replog.secondary.config --markdown")
    print(markdown_table(SETTINGS), end="")
