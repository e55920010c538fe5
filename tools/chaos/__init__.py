"""Fault injection for replog: a cluster whose nodes can be killed, paused and
cut off from each other while clients write, and a checker that reads what the
clients saw and what every node holds and lists every broken promise.

- `netns`: one Linux network namespace per node, joined by veth pairs; links
  are cut (silently) and healed.
- `cluster`: the node processes, in namespaces or on loopback addresses.
- `clients`: concurrent writers with mixed write concerns, and read samplers.
- `checker`: records and final logs to violations, judged by `tools.properties`.
- `campaign`: a seeded, bounded fault schedule driving all of the above.

Run it with `make chaos` (or `python -m tools.chaos` from the repository root).
Nothing here imports the tests.
"""
