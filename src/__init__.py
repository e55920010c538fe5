"""replog: a small replicated log (one master, any number of secondaries).

The source folders are the subpackages: `replog.core` (the pure replication rules),
`replog.storage`, `replog.common` (the shared HTTP/WebSocket shell), `replog.master`,
`replog.secondary` and `replog.cli`. See ARCHITECTURE in the README.
"""
