"""Helpers for config objects built from command-line flags and environment variables.

A flag given on the command line wins; otherwise its environment variable;
otherwise the documented default. `--help` shows the variable for each flag.
"""

from __future__ import annotations

import argparse
import math
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replog.common.logs import LOG_FORMATS
from replog.common.security import TlsConfig
from replog.storage.node_store import FSYNC_MODES
from replog.storage.segments import DEFAULT_SEGMENT_BYTES


class EnvArgumentParser(argparse.ArgumentParser):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)

    def add_env_argument(
        self,
        flag: str,
        *,
        env: Sequence[str],
        default: Any,
        type: Callable[[str], Any] = str,
        help: str,
        **kwargs: Any,
    ) -> None:
        """A flag whose default comes from the first set variable in `env`."""
        value = default
        for name in env:
            raw = os.environ.get(name)
            if raw not in (None, ""):
                try:
                    value = type(raw)
                except (TypeError, ValueError) as exc:
                    self.error(f"environment variable {name}={raw!r} is invalid: {exc}")
                break
        names = " or ".join(f"${name}" for name in env)
        self.add_argument(flag, default=value, type=type, help=f"{help} [env: {names}]", **kwargs)

    def add_log_format(self) -> None:
        self.add_env_argument(
            "--log-format",
            env=["REPLOG_LOG_FORMAT"],
            default="json",
            choices=LOG_FORMATS,
            help="json: one JSON object per line; console: readable lines for people",
        )


def non_negative_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number, 0 or more")
    return value


def positive_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a finite number above 0")
    return value


def non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("a port is 0..65535")
    return value


TRUE_WORDS = ("1", "true", "yes", "on")
DATA_ROOT = "replog-data"


@dataclass(frozen=True)
class StorageConfig:
    """Where and how a node keeps its log. `data_dir` None: in memory only."""

    data_dir: Path | None = None
    fsync: str = "always"
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    repair: bool = False

    @property
    def kind(self) -> str:
        return "memory" if self.data_dir is None else "disk"


def add_env_flag(parser: EnvArgumentParser, flag: str, *, env: str, help: str) -> None:
    """An on/off flag, also switched on by `env` set to 1, true, yes or on."""
    default = os.environ.get(env, "").strip().lower() in TRUE_WORDS
    parser.add_argument(flag, action="store_true", default=default, help=f"{help} [env: ${env}]")


# The secondary's default data directory, until its --id is known.
DATA_DIR_BY_ID = Path(DATA_ROOT) / "<id>"


def add_storage_arguments(parser: EnvArgumentParser, node_id: str | None = None) -> None:
    """The storage flags; `node_id` names the default directory (None: the --id given)."""
    parser.add_env_argument(
        "--data-dir",
        env=["REPLOG_DATA_DIR"],
        default=Path(DATA_ROOT) / node_id if node_id else DATA_DIR_BY_ID,
        type=Path,
        help="directory for this node's log and state, relative to the working directory",
    )
    add_env_flag(
        parser,
        "--in-memory",
        env="REPLOG_IN_MEMORY",
        help="keep the log in memory only (demos, tests): a restart loses it",
    )
    parser.add_env_argument(
        "--fsync",
        env=["REPLOG_FSYNC"],
        default="always",
        choices=FSYNC_MODES,
        help="always: an entry counts as held once fdatasync'ed (survives a power cut); "
        "never: once written to the OS (survives a killed process, not a power cut)",
    )
    parser.add_env_argument(
        "--segment-bytes",
        env=["REPLOG_SEGMENT_BYTES"],
        default=DEFAULT_SEGMENT_BYTES,
        type=positive_int,
        help="start a new log segment file once the current one reaches this size",
    )
    add_env_flag(
        parser,
        "--repair",
        env="REPLOG_REPAIR",
        help="start even if a log record mid-log is damaged: truncate the log there "
        "(the rest is refilled from the master, or recovered from the secondaries)",
    )


def storage_config(args: argparse.Namespace, node_id: str) -> StorageConfig:
    data_dir = args.data_dir
    if data_dir == DATA_DIR_BY_ID:
        data_dir = Path(DATA_ROOT) / node_id
    if args.in_memory:
        data_dir = None
    return StorageConfig(
        data_dir=data_dir,
        fsync=args.fsync,
        segment_bytes=args.segment_bytes,
        repair=args.repair,
    )


def positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be above 0")
    return value


TOKEN_ENV = "REPLOG_CLUSTER_TOKEN"
TOKEN_FILE_ENV = "REPLOG_CLUSTER_TOKEN_FILE"


def add_security_arguments(parser: EnvArgumentParser) -> None:
    """The cluster token and TLS flags, the same on every node."""
    # Not add_env_argument: its default (the token itself) would be printed by --help.
    parser.add_argument(
        "--cluster-token",
        default=argparse.SUPPRESS,
        metavar="TOKEN",
        help="shared secret of the cluster: internal requests (registration, replication, "
        "log export, member removal) must carry it as 'Authorization: Bearer TOKEN', and "
        "this node sends it to its peers. Without one, internal endpoints are open to "
        f"anyone who can reach the node [env: ${TOKEN_ENV}]",
    )
    parser.add_argument(
        "--cluster-token-file",
        default=argparse.SUPPRESS,
        metavar="FILE",
        type=Path,
        help="read the cluster token from FILE (surrounding whitespace stripped) instead of "
        f"--cluster-token, which keeps it out of the process list [env: ${TOKEN_FILE_ENV}]",
    )
    parser.add_env_argument(
        "--tls-cert",
        env=["REPLOG_TLS_CERT"],
        default=None,
        type=Path,
        metavar="FILE",
        help="serve HTTPS (and WSS for replication) with this PEM certificate (chain); "
        "needs --tls-key",
    )
    parser.add_env_argument(
        "--tls-key",
        env=["REPLOG_TLS_KEY"],
        default=None,
        type=Path,
        metavar="FILE",
        help="the PEM private key of --tls-cert (unencrypted)",
    )
    parser.add_env_argument(
        "--tls-ca",
        env=["REPLOG_TLS_CA"],
        default=None,
        type=Path,
        metavar="FILE",
        help="verify the https/wss peers this node dials against this PEM CA bundle instead "
        "of the system's CAs (peers are never left unverified)",
    )


def cluster_token(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The token from the flags, else from the environment; a flag on the command line
    wins over either variable. Both given at one level, an unreadable or empty file, or
    a token that cannot travel in an HTTP header: an argparse error (exit 2)."""
    token, token_file = (
        getattr(args, "cluster_token", None),
        getattr(args, "cluster_token_file", None),
    )
    source = "--cluster-token"
    if token is None and token_file is None:
        token = os.environ.get(TOKEN_ENV) or None
        raw_file = os.environ.get(TOKEN_FILE_ENV) or None
        token_file = Path(raw_file) if raw_file else None
        if token is not None and token_file is not None:
            parser.error(f"${TOKEN_ENV} and ${TOKEN_FILE_ENV} are both set: give one of them")
        source = f"${TOKEN_ENV}"
    elif token is not None and token_file is not None:
        parser.error("give one of --cluster-token and --cluster-token-file, not both")
    if token_file is not None:
        source = f"the cluster token file {token_file}"
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"cannot read the cluster token file {token_file}: {_reason(exc)}")
        if not token:
            parser.error(f"the cluster token file {token_file} is empty")
    if token is None:
        return None
    if not token:
        parser.error("--cluster-token must not be empty")
    if not all("!" <= ch <= "~" for ch in token):
        parser.error(
            f"{source}: a cluster token is printable ASCII without spaces (it travels in an "
            "HTTP header), e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return token


def tls_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> TlsConfig:
    """--tls-cert and --tls-key both or neither; every file readable, the pair matching
    and the CA bundle valid, or an argparse error (exit 2) saying which and why."""
    cert, key, ca = args.tls_cert, args.tls_key, args.tls_ca
    if (cert is None) != (key is None):
        parser.error("--tls-cert and --tls-key go together: give both or neither")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key), ("--tls-ca", ca)):
        if path is None:
            continue
        try:
            with path.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            parser.error(f"{flag} {path}: cannot read it: {_reason(exc)}")
    tls = TlsConfig(cert=cert, key=key, ca=ca)
    try:
        tls.server_context()
    except (ssl.SSLError, ValueError) as exc:
        parser.error(
            f"--tls-cert {cert} / --tls-key {key}: not a usable PEM certificate and its "
            f"matching unencrypted private key ({_reason(exc)})"
        )
    try:
        tls.client_context()
    except (ssl.SSLError, ValueError) as exc:
        parser.error(f"--tls-ca {ca}: not a PEM CA certificate bundle ({_reason(exc)})")
    return tls


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# -- HTTP timeouts (both nodes) ------------------------------------------------

DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_BODY_TIMEOUT = 60.0


@dataclass(frozen=True)
class HttpTimeouts:
    """How long an HTTP connection may sit idle or send its request (seconds)."""

    idle: float = DEFAULT_IDLE_TIMEOUT
    body: float = DEFAULT_BODY_TIMEOUT


def add_http_timeout_arguments(parser: EnvArgumentParser) -> None:
    parser.add_env_argument(
        "--idle-timeout",
        env=["REPLOG_IDLE_TIMEOUT"],
        default=DEFAULT_IDLE_TIMEOUT,
        type=positive_float,
        help="close an HTTP connection that stays idle this many seconds between requests, "
        "or whose request headers take longer to arrive (replication streams are not affected)",
    )
    parser.add_env_argument(
        "--body-timeout",
        env=["REPLOG_BODY_TIMEOUT"],
        default=DEFAULT_BODY_TIMEOUT,
        type=positive_float,
        help="close an HTTP connection whose request body takes longer than this many "
        "seconds to arrive",
    )


def http_timeouts(args: argparse.Namespace) -> HttpTimeouts:
    return HttpTimeouts(idle=args.idle_timeout, body=args.body_timeout)
