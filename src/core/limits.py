"""The replication stream's bounds: how much the master ever puts in flight to
one secondary, and so how much a secondary ever needs to hold for it.

The master keeps at most MAX_INFLIGHT_BATCHES unacknowledged batches on a
stream, each at most MAX_BATCH_ENTRIES entries and MAX_BATCH_BYTES bytes on
the wire (or a single entry, if that one entry is larger). A secondary
acknowledges only a contiguous prefix, so every entry a correct master sends
lies within MAX_AHEAD seqs of that prefix, and whatever waits in its buffer
ahead of a gap (or in its artificial --delay) came in at most
MAX_INFLIGHT_BATCHES frames. Anything beyond that is not the master's doing:
the secondary drops the stream (see FollowerLog.apply), and the master
resumes from the secondary's next hello.
"""

from __future__ import annotations

MAX_BATCH_ENTRIES = 1000
MAX_BATCH_BYTES = 1 << 20
MAX_INFLIGHT_BATCHES = 32
# How far beyond its contiguous prefix a secondary accepts an entry.
MAX_AHEAD = MAX_INFLIGHT_BATCHES * MAX_BATCH_ENTRIES
# Epoch runs in a hello: a log has one run per master epoch that wrote to it.
# A secondary whose log has more reports only the prefix the first ones cover
# (the master truncates the rest at sync and sends it again).
MAX_EPOCH_RUNS = 10_000

# Seqs and epochs anywhere in the protocol stay within 0..MAX_INT (an epoch also
# travels as a query parameter of at most 18 digits; the clock-based epochs of
# an in-memory master are about 2e12).
MAX_INT = 10**15
# The highest epoch a master takes from a secondary's report as "seen" (and so
# opens above at its next start): half the range, so that a forged report
# leaves room for as many restarts as anyone will ever make.
MAX_ADOPTED_EPOCH = MAX_INT // 2

# How long a commit point that no append carries waits before a heartbeat tells
# a secondary (core.stream.MasterStream.poll): its `read=majority` readers lag by
# at most this much more, and sequential writes share one frame.
COMMIT_NOTICE_SECONDS = 0.01
