"""A secondary: holds a replica of the master's log and serves reads."""
