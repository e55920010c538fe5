"""Helpers for config objects built from command-line flags and environment variables.

A flag given on the command line wins; otherwise its environment variable;
otherwise the documented default. `--help` shows the variable for each flag.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.logs import LOG_FORMATS
from storage.node_store import FSYNC_MODES
from storage.segments import DEFAULT_SEGMENT_BYTES


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
