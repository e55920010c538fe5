"""Settings declared once, and the parser and config objects built from them.

Each role lists its `Setting`s (master.config, secondary.config; the shared ones
are here). A flag given on the command line wins; otherwise its environment
variable; otherwise the declared default. `--help` shows each flag's variables
and default, and the README's flag tables are generated from the same list.
"""

from __future__ import annotations

import argparse
import math
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from replog.common.logs import LOG_FORMATS
from replog.common.security import TlsConfig
from replog.storage.node_store import FSYNC_MODES
from replog.storage.segments import DEFAULT_SEGMENT_BYTES

T = TypeVar("T")


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One configuration value, declared once: its flag, environment variables, default
    and help. The parser, the config dataclasses' defaults, `--help` and the README's
    flag tables all come from these declarations.

    `help` and `shown` may hold `code` spans: the README shows them as Markdown,
    `--help` without the backticks.
    """

    flag: str
    env: tuple[str, ...]
    default: T
    help: str
    # Turns the text of the flag or of a variable into the value (ValueError: refused).
    parse: Callable[[str], T] | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    # On/off: the flag alone switches it on, or its variable set to 1, true, yes or on.
    switch: bool = False
    # Never shown by --help; the flag and its variables are read by the caller
    # (cluster_token), which must weigh the flag, the file and both variables together.
    secret: bool = False
    # The default as documented, when `default` itself does not read well.
    shown: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def default_markdown(self) -> str:
        if self.shown is not None:
            return self.shown
        if self.switch:
            return "off"
        if self.default is None:
            return "none"
        return f"`{self.default}`"

    def env_markdown(self) -> str:
        if self.switch:
            return " or ".join(f"`{name}=1`" for name in self.env)
        return " or ".join(f"`{name}`" for name in self.env)

    def help_text(self) -> str:
        """What --help shows: the help, the variables and the documented default."""
        names = " or ".join(f"${name}{'=1' if self.switch else ''}" for name in self.env)
        text = f"{plain(self.help)} [env: {names}] (default: {plain(self.default_markdown())})"
        return text.replace("%", "%%")  # argparse formats help with %


def plain(markdown: str) -> str:
    return markdown.replace("`", "")


def markdown_table(settings: Sequence[Setting[Any]]) -> str:
    """The README's flag table for one role."""
    rows = ["| flag | env | default | meaning |", "|---|---|---|---|"]
    for setting in settings:
        flag = setting.flag if setting.metavar is None else f"{setting.flag} {setting.metavar}"
        cells = (f"`{flag}`", setting.env_markdown(), setting.default_markdown(), setting.help)
        rows.append(f"| {' | '.join(cells)} |")
    return "\n".join(rows) + "\n"


class EnvArgumentParser(argparse.ArgumentParser):
    """A parser whose flags fall back on environment variables; a flag on the command
    line wins. A variable with a bad value is an error (exit 2) naming it."""

    def add_setting(self, setting: Setting[Any]) -> None:
        kwargs: dict[str, Any] = {"help": setting.help_text(), "dest": setting.dest}
        if setting.metavar is not None:
            kwargs["metavar"] = setting.metavar
        if setting.secret:
            # No default at all: --help must never print the value (a token).
            self.add_argument(
                setting.flag, default=argparse.SUPPRESS, **kwargs, type=setting.parse or str
            )
            return
        if setting.switch:
            default = any(
                os.environ.get(name, "").strip().lower() in TRUE_WORDS for name in setting.env
            )
            self.add_argument(setting.flag, action="store_true", default=default, **kwargs)
            return
        parse = setting.parse or str
        value: Any = setting.default
        for name in setting.env:
            raw = os.environ.get(name)
            if raw not in (None, ""):
                try:
                    value = parse(raw)
                except (TypeError, ValueError) as exc:
                    self.error(f"environment variable {name}={raw!r} is invalid: {exc}")
                break
        if setting.choices is not None:
            kwargs["choices"] = setting.choices
        self.add_argument(setting.flag, default=value, type=parse, **kwargs)

    def add_settings(self, settings: Sequence[Setting[Any]]) -> None:
        for setting in settings:
            self.add_setting(setting)


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


def positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be above 0")
    return value


# -- settings every node has ------------------------------------------------------

HOST = Setting("--host", ("REPLOG_HOST",), "127.0.0.1", "listen address")
IDLE_TIMEOUT = Setting(
    "--idle-timeout",
    ("REPLOG_IDLE_TIMEOUT",),
    60.0,
    "close an HTTP connection idle this many seconds between requests, or whose request "
    "headers take longer to arrive (replication streams are not affected)",
    positive_float,
)
BODY_TIMEOUT = Setting(
    "--body-timeout",
    ("REPLOG_BODY_TIMEOUT",),
    60.0,
    "close an HTTP connection whose request body takes longer than this many seconds to arrive",
    positive_float,
)
TIMEOUT_SETTINGS = (IDLE_TIMEOUT, BODY_TIMEOUT)
MAX_WAIT = Setting(
    "--max-wait",
    ("REPLOG_MAX_WAIT",),
    30.0,
    "longest long poll (s): a `GET /?wait=` asking for more waits this long",
    non_negative_float,
)
STREAM_BUFFER_BYTES = Setting(
    "--stream-buffer-bytes",
    ("REPLOG_STREAM_BUFFER_BYTES",),
    1 << 20,
    "a `GET /stream` reader with more bytes than this written and not yet taken by its "
    "socket is disconnected (`stream_reader_slow`)",
    positive_int,
)
READ_SETTINGS = (MAX_WAIT, STREAM_BUFFER_BYTES)


def data_dir_setting(default: Path) -> Setting[Path]:
    """--data-dir, whose default names the node (the secondary's: its --id, once known)."""
    return Setting(
        "--data-dir",
        ("REPLOG_DATA_DIR",),
        default,
        "the node's log and state, relative to the working directory (see "
        '"Storage and durability")',
        Path,
        metavar="DIR",
        shown=f"`./{default}`",
    )


IN_MEMORY = Setting(
    "--in-memory",
    ("REPLOG_IN_MEMORY",),
    False,
    "keep the log in memory only (demos, tests): a restart loses it",
    switch=True,
)
FSYNC = Setting(
    "--fsync",
    ("REPLOG_FSYNC",),
    "always",
    "`always`: an entry is held once `fdatasync`ed (group commit; survives a power cut); "
    "`never`: once written to the OS (survives a killed process, not a power cut)",
    metavar="MODE",
    choices=FSYNC_MODES,
)
SEGMENT_BYTES = Setting(
    "--segment-bytes",
    ("REPLOG_SEGMENT_BYTES",),
    DEFAULT_SEGMENT_BYTES,
    "start a new segment file once the current one reaches this size",
    positive_int,
)
REPAIR = Setting(
    "--repair",
    ("REPLOG_REPAIR",),
    False,
    "start even if a record mid-log is damaged: truncate the log there (the rest is "
    "refilled from the master, or recovered from the secondaries)",
    switch=True,
)


def storage_settings(data_dir: Path) -> tuple[Setting[Any], ...]:
    return (data_dir_setting(data_dir), IN_MEMORY, FSYNC, SEGMENT_BYTES, REPAIR)


TOKEN_ENV = "REPLOG_CLUSTER_TOKEN"
TOKEN_FILE_ENV = "REPLOG_CLUSTER_TOKEN_FILE"
CLUSTER_TOKEN: Setting[str | None] = Setting(
    "--cluster-token",
    (TOKEN_ENV,),
    None,
    "shared secret: internal requests (registration, replication, log export, member "
    "removal) must carry `Authorization: Bearer TOKEN`, and the node sends it to its "
    'peers; without one, internal endpoints are open (warned at start, `"auth": false` '
    "in `/health`)",
    metavar="TOKEN",
    secret=True,
)
CLUSTER_TOKEN_FILE: Setting[Path | None] = Setting(
    "--cluster-token-file",
    (TOKEN_FILE_ENV,),
    None,
    "read the token from `FILE` (surrounding whitespace stripped; keeps it out of `ps`); "
    "not with `--cluster-token`",
    Path,
    metavar="FILE",
    secret=True,
)
TLS_CERT: Setting[Path | None] = Setting(
    "--tls-cert",
    ("REPLOG_TLS_CERT",),
    None,
    "serve HTTPS (and WSS for replication) with this PEM certificate; needs `--tls-key`",
    Path,
    metavar="FILE",
)
TLS_KEY: Setting[Path | None] = Setting(
    "--tls-key",
    ("REPLOG_TLS_KEY",),
    None,
    "the certificate's PEM private key (unencrypted)",
    Path,
    metavar="FILE",
)
TLS_CA: Setting[Path | None] = Setting(
    "--tls-ca",
    ("REPLOG_TLS_CA",),
    None,
    "verify the https/wss peers this node dials against this PEM CA bundle (never "
    "unverified); a registration with a plain `http://` URL is then a `400`",
    Path,
    metavar="FILE",
    shown="system CAs",
)
SECURITY_SETTINGS = (CLUSTER_TOKEN, CLUSTER_TOKEN_FILE, TLS_CERT, TLS_KEY, TLS_CA)
LOG_FORMAT = Setting(
    "--log-format",
    ("REPLOG_LOG_FORMAT",),
    "auto",
    "`auto`: `console` when stdout is a terminal, else `json`; `json`: one JSON object per "
    "line; `console`: readable lines for people, coloured on a terminal unless `NO_COLOR` is "
    "set (`FORCE_COLOR` forces colours)",
    choices=LOG_FORMATS,
)


@dataclass(frozen=True)
class StorageConfig:
    """Where and how a node keeps its log. `data_dir` None: in memory only."""

    data_dir: Path | None = None
    fsync: str = FSYNC.default
    segment_bytes: int = SEGMENT_BYTES.default
    repair: bool = REPAIR.default

    @property
    def kind(self) -> str:
        return "memory" if self.data_dir is None else "disk"


# The secondary's default data directory, until its --id is known.
DATA_DIR_BY_ID = Path(DATA_ROOT) / "<id>"


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


@dataclass(frozen=True)
class HttpTimeouts:
    """How long an HTTP connection may sit idle or send its request (seconds)."""

    idle: float = IDLE_TIMEOUT.default
    body: float = BODY_TIMEOUT.default


def http_timeouts(args: argparse.Namespace) -> HttpTimeouts:
    return HttpTimeouts(idle=args.idle_timeout, body=args.body_timeout)


@dataclass(frozen=True)
class ReadConfig:
    """How readers may wait (`GET /?wait=`) and stream (`GET /stream`)."""

    max_wait: float = MAX_WAIT.default
    stream_buffer_bytes: int = STREAM_BUFFER_BYTES.default


def read_config(args: argparse.Namespace) -> ReadConfig:
    return ReadConfig(max_wait=args.max_wait, stream_buffer_bytes=args.stream_buffer_bytes)
