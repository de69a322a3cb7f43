"""The daemon's HTTP API and logs, and the daemon under faults."""
