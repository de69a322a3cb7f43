"""The engine: actors, aggregates, supervision, the journal, subscriptions (no hosts, no backends)."""
