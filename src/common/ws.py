"""WebSocket helpers shared by both ends of the replication stream."""

from __future__ import annotations

# Close codes (RFC 6455): a frame that breaks the protocol, one beyond a bound
# (policy), and one larger than this end accepts (Tornado sends that one itself).
PROTOCOL_ERROR = 1002
POLICY_VIOLATION = 1008
TOO_BIG = 1009


class FrameLimit(int):
    """A connection's max_message_size that remembers being exceeded.

    Tornado refuses a frame whose header announces more than the connection's
    max_message_size (it closes with 1009 before reading the payload) and
    tells nobody. Its check is `length > max_message_size`; with an int
    subclass on the right, Python asks the subclass first (`__lt__`), and that
    is where the refused length is noted, so the refusing end can log why its
    stream ended. One instance per connection.
    """

    exceeded: int | None

    def __new__(cls, value: int) -> FrameLimit:
        limit = super().__new__(cls, value)
        limit.exceeded = None
        return limit

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, int):
            return NotImplemented  # as int.__lt__ answers
        below = int.__lt__(self, other)
        if below and self.exceeded is None:
            self.exceeded = other
        return below
