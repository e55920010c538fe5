"""Failure detection: a secondary's status from how long it has been silent.

A deadline detector (Akka's "heartbeat interval + acceptable pause"): the
master hears from each secondary at least once per heartbeat interval while
all is well. Silent longer than `suspect_after` it is `suspected`, longer
than `unhealthy_after` it is `unhealthy`. Suspected still counts towards
quorum, so one late heartbeat never makes writes flap.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Health(StrEnum):
    """A secondary's state as the master judges it; the value is what /health shows."""

    HEALTHY = "healthy"
    # Late or its stream just dropped: still counts towards quorum.
    SUSPECTED = "suspected"
    # Silent too long or never connected: does not count towards quorum.
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    suspect_after: float = 0.6
    unhealthy_after: float = 2.0

    def status(self, silent_for: float | None, connected: bool) -> Health:
        """`silent_for`: seconds since we last heard from it (None: never)."""
        if silent_for is None or silent_for >= self.unhealthy_after:
            return Health.UNHEALTHY
        if silent_for >= self.suspect_after or not connected:
            # A dropped stream is suspicious at once, but not yet a lost node.
            return Health.SUSPECTED
        return Health.HEALTHY
