"""The `replog` subcommands: each module has `register(subparsers)` and `run(args) -> int`."""
