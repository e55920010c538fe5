"""Deterministic simulation of a replog cluster in one process (issue 10).

`loop`: a virtual-time asyncio event loop; `network`: simulated connections with
faults; `trace`: the bounded event trace both record into. See README.md.
"""
