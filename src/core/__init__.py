"""replog's pure replication core: no I/O, no Tornado. Tests drive it with events."""

from core.entry import ClientId, Entry
from core.follower_log import ApplyResult, FollowerLog
from core.health import HEALTHY, SUSPECTED, UNHEALTHY, HealthPolicy
from core.recovery import (
    LENIENT,
    OPEN,
    STRICT,
    LogReport,
    Recovery,
    RecoveryPlan,
    next_epoch,
    other_cluster,
    start_mode,
)
from core.replication_log import (
    MASTER,
    Appended,
    Batch,
    IdConflict,
    MemberConflict,
    ReadOnly,
    RemovedMember,
    ReplicationLog,
    Satisfied,
    SecondaryProgress,
    StatusChange,
)
from core.write_request import (
    MAJORITY,
    RequestError,
    WriteItem,
    WriteRequest,
    parse_write,
    resolve_w,
)

__all__ = [
    "HEALTHY",
    "LENIENT",
    "MAJORITY",
    "MASTER",
    "OPEN",
    "STRICT",
    "SUSPECTED",
    "UNHEALTHY",
    "Appended",
    "ApplyResult",
    "Batch",
    "ClientId",
    "Entry",
    "FollowerLog",
    "HealthPolicy",
    "IdConflict",
    "LogReport",
    "MemberConflict",
    "ReadOnly",
    "Recovery",
    "RecoveryPlan",
    "RemovedMember",
    "ReplicationLog",
    "RequestError",
    "Satisfied",
    "SecondaryProgress",
    "StatusChange",
    "WriteItem",
    "WriteRequest",
    "next_epoch",
    "other_cluster",
    "parse_write",
    "resolve_w",
    "start_mode",
]
