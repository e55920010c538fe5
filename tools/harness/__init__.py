"""What the tests, the benchmark and the fault campaign share to drive replog from outside.

- `net`: free ports and loopback addresses.
- `process`: node processes: start a console script with its argv, environment
  and log file, signal it, stop it (SIGTERM, then SIGKILL), read its log.
- `waiting`: wait on a condition with a deadline, failing early if a node died.
- `http`: a small blocking JSON client (standard library only).

Never installed and never imported by the product; each user keeps only its
own layer on top (the tests' clusters, the campaign's namespaces and faults,
the benchmark's storage modes and measurements).
"""
