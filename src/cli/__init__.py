"""Command-line tools: `replog up` starts a local cluster."""
