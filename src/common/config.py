"""Helpers for config objects built from command-line flags and environment variables.

A flag given on the command line wins; otherwise its environment variable;
otherwise the documented default. `--help` shows the variable for each flag.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from common.logs import LOG_FORMATS


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
