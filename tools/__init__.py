"""Tooling beside the product: the fault campaign, the shared process/HTTP harness.

Nothing here is installed with replog; run it from the repository root
(`make chaos`, `make bench`, `make test`).
"""
