"""Every refusal a node answers a request with, as one exception hierarchy.

Each error carries what its answer says: `message` (what went wrong and how to
fix it) and `details()` (the answer's other fields, in order). Which HTTP status
each class is answered with is not the core's business: common.web maps classes
to statuses in one table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from replog.core.entry import Appended, ClientId, Entry


def show(value: object) -> str:
    """A value as the client wrote it (JSON), for error messages."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class ReplogError(Exception):
    """A request the node refuses. Nothing changed unless the subclass says otherwise."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, object]:
        """The answer's fields besides `error`, in the order they are sent."""
        return {}

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, **self.details()}


class InvalidRequest(ReplogError):
    """The request itself is malformed or out of bounds; `message` says how to fix it."""


class IdConflict(ReplogError):
    """The idempotency key is already used by a different message."""

    def __init__(self, client_id: ClientId, existing: Entry) -> None:
        super().__init__(
            f"id {show(client_id)} already names message seq {existing.seq} "
            "with a different text; use a new id for a new message"
        )
        self.client_id = client_id
        self.existing = existing

    def details(self) -> dict[str, object]:
        return {"seq": self.existing.seq}


class ReadOnly(ReplogError):
    """The master takes no new writes now (recovering, or no quorum); nothing was appended."""

    def __init__(self, reason: str, *, quorum: bool, nodes_up: int, cluster_size: int) -> None:
        super().__init__(
            f"read-only: {reason}; nothing was appended. Reads still work, and "
            "writes resume by themselves once enough secondaries are back"
        )
        self.reason = reason
        self.quorum = quorum
        self.nodes_up = nodes_up
        self.cluster_size = cluster_size

    def details(self) -> dict[str, object]:
        return {
            "read_only": True,
            "quorum": self.quorum,
            "nodes_up": self.nodes_up,
            "cluster_size": self.cluster_size,
        }


class WriteConcernTimeout(ReplogError):
    """`w` was not reached within wtimeout; the entries stay and keep replicating."""

    def __init__(
        self,
        appended: Sequence[Appended],
        w: int,
        acked_by: tuple[str, ...],
        wtimeout_ms: int,
        *,
        batch: bool = False,
    ) -> None:
        seqs = [a.entry.seq for a in appended]
        where = f"at seq {seqs[0]}" if len(seqs) == 1 else f"at seqs {seqs[0]}..{seqs[-1]}"
        super().__init__(
            f"write concern w={w} not met within {wtimeout_ms} ms; the message "
            f"is in the log {where} and keeps replicating (not rolled back)"
        )
        self.appended = list(appended)
        self.w = w
        self.acked_by = acked_by
        self.wtimeout_ms = wtimeout_ms
        self.batch = batch

    def details(self) -> dict[str, object]:
        where: dict[str, object] = (
            {"seqs": [a.entry.seq for a in self.appended]}
            if self.batch
            else {"seq": self.appended[0].entry.seq, "id": self.appended[0].entry.id}
        )
        return {
            **where,
            "w": self.w,
            "acks": len(self.acked_by),
            "acked_by": list(self.acked_by),
        }


class ClusterMismatch(ReplogError):
    """A secondary holding another cluster's data asked to join this one; it keeps its data."""

    def __init__(self, secondary_id: str, theirs: str, ours: str) -> None:
        super().__init__(
            f"secondary {secondary_id!r} holds data of cluster {theirs}, and this master's "
            f"cluster is {ours}: it is refused and keeps its data (start it with an empty "
            "--data-dir to join this cluster, or point it at its own cluster's master)"
        )
        self.secondary_id = secondary_id
        self.theirs = theirs
        self.ours = ours

    def details(self) -> dict[str, object]:
        return {"conflict": "cluster", "cluster_id": self.ours}


class MemberConflict(ReplogError):
    """A secondary id is bound to another node, which is up."""

    def __init__(self, secondary_id: str, url: str, incarnation: str) -> None:
        super().__init__(
            f"secondary id {secondary_id!r} belongs to another node (at {url}, "
            f"incarnation {incarnation!r}) that is up; give this node another id"
        )
        self.secondary_id = secondary_id
        self.url = url
        self.incarnation = incarnation

    def details(self) -> dict[str, object]:
        return {"conflict": "id", "secondary": self.secondary_id, "url": self.url}


class RemovedMember(ReplogError):
    """This node (id and incarnation) was removed from the cluster."""

    def __init__(self, secondary_id: str, incarnation: str) -> None:
        super().__init__(
            f"secondary {secondary_id!r} (incarnation {incarnation!r}) was removed from "
            "the cluster; to join again, start it with an empty data directory or another id"
        )
        self.secondary_id = secondary_id
        self.incarnation = incarnation

    def details(self) -> dict[str, object]:
        return {"conflict": "removed", "secondary": self.secondary_id}


class UnknownSecondary(ReplogError):
    """No member of the cluster has this id."""

    def __init__(self, secondary_id: str) -> None:
        super().__init__(f"no secondary {secondary_id!r} in this cluster")
        self.secondary_id = secondary_id

    def details(self) -> dict[str, object]:
        return {"secondary": self.secondary_id}


class StillRecovering(ReplogError):
    """The master has not opened its log yet, so membership cannot change."""

    def __init__(self) -> None:
        super().__init__("the master is recovering its log; remove members once it has opened")


class NotMaster(ReplogError):
    """A write sent to a secondary: clients write to the master."""

    def __init__(self, master_url: str) -> None:
        super().__init__(
            f"this is a read-only secondary; send writes to the master at {master_url}/"
        )
        self.master_url = master_url

    def details(self) -> dict[str, object]:
        return {"master": self.master_url}
