"""`replog`: command-line tools. `replog up` runs a local three-node cluster; `post`, `get`,
`tail` and `status` are its clients (a node's HTTP API without hand-written curl).

Exit status: 0 on success, 1 when the node answers an error or cannot be reached (the
server's `error`, or the connection error, on stderr), 2 for a bad command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from replog.cli import client
from replog.cli.commands import get, post, status, tail, up
from replog.cli.options import URL_ENV
from replog.common.config import EnvArgumentParser

# Ctrl-C in a command that was not done yet (post, get): the shell's convention.
INTERRUPTED = 130


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(
        prog="replog",
        description="replog command-line tools: run a local cluster (up), and talk to one "
        "(post, get, tail, status). Each subcommand has its own --help.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (up, post, get, tail, status):
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"replog {args.command}"
    try:
        code = args.run(args)
    except argparse.ArgumentTypeError as exc:  # a bad $REPLOG_MASTER_URL
        parser.exit(2, f"{prog}: error: ${URL_ENV}: {exc}\n")
    except client.UsageError as exc:
        parser.exit(2, f"{prog}: error: {exc}\n")
    except client.ClientError as exc:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        code = 1
    except KeyboardInterrupt:
        code = INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`replog get | head`): not an error; keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
