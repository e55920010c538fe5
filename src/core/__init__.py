"""replog's pure replication core: no I/O, no Tornado. Tests drive it with events."""

from core.entry import ClientId, Entry
from core.follower_log import ApplyResult, FollowerLog
from core.replication_log import (
    MASTER,
    Appended,
    Batch,
    IdConflict,
    ReplicationLog,
    Satisfied,
    SecondaryProgress,
)
from core.write_request import MAJORITY, RequestError, WriteRequest, parse_write, resolve_w

__all__ = [
    "MAJORITY",
    "MASTER",
    "Appended",
    "ApplyResult",
    "Batch",
    "ClientId",
    "Entry",
    "FollowerLog",
    "IdConflict",
    "ReplicationLog",
    "RequestError",
    "Satisfied",
    "SecondaryProgress",
    "WriteRequest",
    "parse_write",
    "resolve_w",
]
