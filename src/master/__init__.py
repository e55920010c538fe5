"""The master: accepts writes, orders them, replicates them to secondaries."""
